"""Tissue classes of the synthetic pelvis and how each looks in T2 MR and in TRUS.

Each tissue has a T2 signal, an ultrasound echogenicity (mean backscatter amplitude), an acoustic impedance
(reflections at interfaces) and an attenuation (shadowing). The columns are deliberately *not* a function of
one another: fat, urine, venous blood and seminal fluid are all bright in T2, but fat is echogenic and the
fluids are anechoic; fibrous septa are dark in T2 but bright in TRUS; calcifications and bone cortex are
dark in T2 and the brightest, most shadowing things in TRUS. This is what breaks intensity-based
similarity measures on real MR–TRUS pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tissue:
    name: str
    t2: float  # relative T2-weighted signal (fat = 1)
    echo: float  # relative echogenicity (backscatter amplitude), 0..~2
    impedance: float  # relative acoustic impedance (MRayl-like scale)
    attenuation: float  # amplitude attenuation per mm (one way), after time-gain compensation of 0.012/mm


TISSUES: tuple[Tissue, ...] = (
    Tissue("fat", 1.00, 0.75, 1.38, 0.012),
    Tissue("fibrous", 0.30, 0.90, 1.66, 0.020),
    Tissue("peripheral_zone", 0.62, 0.42, 1.58, 0.015),
    Tissue("transition_zone", 0.36, 0.33, 1.60, 0.017),
    Tissue("anterior_stroma", 0.14, 0.27, 1.66, 0.020),
    Tissue("urethra", 0.45, 0.13, 1.55, 0.010),
    Tissue("nodule_bright", 0.55, 0.38, 1.59, 0.015),
    Tissue("nodule_dark", 0.25, 0.29, 1.62, 0.017),
    Tissue("calcification", 0.06, 1.70, 4.50, 0.900),
    Tissue("lesion", 0.25, 0.24, 1.61, 0.016),
    Tissue("capsule", 0.18, 0.50, 1.69, 0.020),
    Tissue("venous_plexus", 1.10, 0.11, 1.55, 0.010),
    Tissue("urine", 1.25, 0.02, 1.50, 0.001),
    Tissue("bladder_wall", 0.20, 0.66, 1.66, 0.020),
    Tissue("seminal_fluid", 1.05, 0.17, 1.52, 0.005),
    Tissue("seminal_wall", 0.25, 0.45, 1.62, 0.015),
    Tissue("rectal_wall", 0.25, 0.56, 1.64, 0.018),
    Tissue("rectal_lumen", 0.03, 0.05, 1.00, 0.300),
    Tissue("muscle", 0.16, 0.31, 1.66, 0.020),
    Tissue("bone_cortex", 0.03, 1.80, 7.00, 2.000),
    Tissue("bone_marrow", 0.75, 0.30, 2.50, 0.600),
    Tissue("surgical_capsule", 0.20, 0.55, 1.66, 0.020),
)

INDEX = {t.name: i for i, t in enumerate(TISSUES)}


def property_tables(rng: np.random.Generator, jitter: float = 0.08) -> dict[str, np.ndarray]:
    """Per-case look-up tables (tissue index → value), jittered to model scanner and gain differences."""
    out = {}
    for key in ("t2", "echo", "impedance", "attenuation"):
        base = np.array([getattr(t, key) for t in TISSUES], dtype=np.float32)
        scale = 1.0 + jitter * rng.standard_normal(len(base)).astype(np.float32)
        out[key] = base * np.clip(scale, 0.75, 1.25) if key != "impedance" else base.copy()
    return out
