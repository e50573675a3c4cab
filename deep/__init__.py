"""Deep registrars: Attention-Reg, Feature-Reg, MSReg and DVNet, their input pipeline, training and weights."""
