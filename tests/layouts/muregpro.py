"""A small µ-RegPro data set in exactly the published layout.

``nifti_data/{train,val}/{mr_images,us_images,mr_labels,us_labels}/case000NNN.nii.gz``; MR 120×128×128 and TRUS
81×118×88 voxels at 0.8 mm (NIfTI x, y, z); 4-D ``(x, y, z, k)`` uint8 labels, channel 0 the gland and 0 to 5
landmark channels (one case with a landmark channel empty on the TRUS side); the TRUS headers point another way
(RAS-like) than the MR's. Each case's known offset (MR physical → TRUS physical) is returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from layouts.common import MUREGPRO_MR, MUREGPRO_US, Pair, four_d, make_pair

US_DIRECTION = np.diag([-1.0, -1.0, 1.0])  # the TRUS header in a RAS-like orientation; the MR's is LPS


def write_case(root: Path, split: str, name: str, pair: Pair) -> None:
    folder = root / "nifti_data" / split
    for sub, img in (("mr_images", pair.mr), ("us_images", pair.us), ("mr_labels", four_d(pair.mr_labels)),
                     ("us_labels", four_d(pair.us_labels))):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(folder / sub / f"{name}.nii.gz"), True)


def make_muregpro(root: Path, cases: int = 10, seeds=(0, 1), val: int = 3, mr_grid=MUREGPRO_MR,
                  us_grid=MUREGPRO_US) -> dict[str, Pair]:
    """Write ``cases`` cases (the last ``val`` in val/, the others in train/) under ``root/nifti_data``; return
    the pairs by case name. Landmark counts cycle 4, 5, 3, 2, 0 (fewer than 3: the surfaces alone)."""
    pairs = {}
    counts = (4, 5, 3, 2, 0)
    for i in range(cases):
        rng = np.random.default_rng(1000 + i)
        pair = make_pair(seeds[i % len(seeds)], rng, mr_grid, us_grid, landmarks=counts[i % len(counts)],
                         us_direction=US_DIRECTION)
        if i == 1:  # one landmark drawn on the MR only: its TRUS channel is empty
            pair.us_labels[-1] = pair.us_labels[-1] * 0
        name = f"case{i:06d}"
        write_case(root, "val" if i >= cases - val else "train", name, pair)
        pairs[name] = pair
    return pairs
