"""The synthetic MR/TRUS phantom (see :mod:`regkit.synth.phantom` for what each effect models)."""

from regkit.synth.dataset import synth_dataset
from regkit.synth.phantom import PhantomSettings, synth_case, synth_case_from_mr

__all__ = ["PhantomSettings", "synth_case", "synth_case_from_mr", "synth_dataset"]
