"""How clearly a dataset's TRUS shows the prostate: the gland against a shell around it, after light smoothing.

    python bench/trus_gland_contrast.py --data runs/data/val-prostate-mr --data runs/data/val-promise12 \
        --data runs/data/promise12 --data builtin:val --cases 8

Per case (on the TRUS grid, inside the fan only): Cohen's d between the smoothed TRUS intensity of the gland's
interior (the TRUS label eroded by 2 mm) and of a 5 mm shell outside it. Speckle is smoothed first (Gaussian,
``--smooth-mm``), so d measures regional contrast, the cue a registration can hold on to, not speckle.
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk
from _util import cases_of
from scipy import ndimage


def gland_contrast(case, smooth_mm: float = 1.0, shell_mm: float = 5.0, erode_mm: float = 2.0) -> float:
    """Cohen's d of the smoothed TRUS, gland interior against the shell around the gland (negative: darker)."""
    us = sitk.GetArrayFromImage(case.moving).astype(np.float32)
    gland = sitk.GetArrayFromImage(case.moving_label) > 0
    spacing = np.array(case.moving.GetSpacing())[::-1]
    smooth = ndimage.gaussian_filter(us, smooth_mm / spacing)
    in_fan = us > 0
    shell = ndimage.binary_dilation(gland, iterations=round(shell_mm / spacing.min())) & ~gland & in_fan
    inner = ndimage.binary_erosion(gland, iterations=round(erode_mm / spacing.min())) & in_fan
    a, b = smooth[inner], smooth[shell]
    return float((a.mean() - b.mean()) / np.sqrt(0.5 * (a.var() + b.var())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, help="a dataset folder, or builtin:val")
    ap.add_argument("--cases", type=int, default=8, help="the first N cases of each dataset (0: all)")
    ap.add_argument("--smooth-mm", type=float, default=1.0)
    a = ap.parse_args()
    for spec in a.data:
        cases = cases_of(spec)
        cases = [c for c in (cases[: a.cases] if a.cases else cases) if c.moving_label is not None]
        d = [gland_contrast(c, a.smooth_mm) for c in cases]
        print(f"{spec}: {len(d)} cases, mean |d| {np.mean(np.abs(d)):.2f}; per case "
              + " ".join(f"{x:+.2f}" for x in d), flush=True)


if __name__ == "__main__":
    main()
