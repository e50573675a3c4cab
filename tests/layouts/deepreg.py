"""A small DeepReg paired data set, as h5 files and as NIfTI folders.

h5: ``{train,valid}/{moving,fixed}_{images,labels}.h5`` with keys ``obs000``, ...; images ``(W, H, D)`` float in
[0, 255], labels ``(W, H, D, n)`` float in [0, 1] (channel 0 the gland, then landmarks); moving = MR (DeepReg's
MR–US demo). The arrays hold no geometry: they are written on grids of the stated spacing, identity direction,
centred on the origin (``frame="centre"``), so the known offset is between those physical frames.
NIfTI: the same arrays as ``{moving,fixed}_{images,labels}/<key>.nii.gz`` with their headers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from layouts.common import Pair, four_d, make_pair
from regkit.image import ImageGeometry
from regkit.transform import RigidTransform

MR_GRID = ((64, 64, 48), (0.8, 0.8, 0.8))
US_GRID = ((72, 64, 56), (0.8, 0.8, 0.8))


def recentred(pair: Pair) -> Pair:
    """The pair with both grids moved so that each is centred on the origin (an h5 array's frame), the offset
    changed to match."""
    moves = []
    for img in (pair.mr, pair.us):
        moves.append(-ImageGeometry.of(img).center)
    t_mr = RigidTransform.from_params(np.r_[moves[0], 0, 0, 0])
    t_us = RigidTransform.from_params(np.r_[moves[1], 0, 0, 0])

    def shift(img, d):
        out = sitk.Image(img)
        out.SetOrigin(tuple(np.array(img.GetOrigin()) + d))
        return out

    return Pair(shift(pair.mr, moves[0]), shift(pair.us, moves[1]), [shift(x, moves[0]) for x in pair.mr_labels],
                [shift(x, moves[1]) for x in pair.us_labels], t_us @ pair.offset @ t_mr.inverse(),
                t_mr.apply(pair.landmarks_mm), pair.names)


def array(img: sitk.Image) -> np.ndarray:
    """DeepReg's (W, H, D) order: voxel (x, y, z)."""
    return np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))


def make_deepreg(root: Path, cases: int = 4, seeds=(0, 1), valid: int = 1, nifti: bool = False) -> dict[str, Pair]:
    """Write ``cases`` pairs (moving = MR) under ``root/{train,valid}``; return them by key, recentred (the
    offsets are those between the h5 arrays' frames)."""
    import h5py

    pairs = {}
    for i in range(cases):
        rng = np.random.default_rng(2000 + i)
        pair = recentred(make_pair(seeds[i % len(seeds)], rng, MR_GRID, US_GRID, landmarks=(4, 3)[i % 2]))
        key = f"obs{i:03d}"
        split = "valid" if i >= cases - valid else "train"
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        mr = array(pair.mr)
        mr = (255 * (mr - mr.min()) / max(mr.max() - mr.min(), 1e-6)).astype(np.float32)
        us = array(pair.us).astype(np.float32)
        labels = {side: np.stack([array(c) for c in ch], axis=-1).astype(np.float32)
                  for side, ch in (("moving", pair.mr_labels), ("fixed", pair.us_labels))}
        if nifti:
            for name, img in (("moving_images", pair.mr), ("fixed_images", pair.us),
                              ("moving_labels", four_d(pair.mr_labels)), ("fixed_labels", four_d(pair.us_labels))):
                (folder / name).mkdir(exist_ok=True)
                sitk.WriteImage(img, str(folder / name / f"{key}.nii.gz"), True)
        else:
            for name, a in (("moving_images", mr), ("fixed_images", us), ("moving_labels", labels["moving"]),
                            ("fixed_labels", labels["fixed"])):
                with h5py.File(folder / f"{name}.h5", "a") as f:
                    f.create_dataset(key, data=a, compression="gzip")
        pairs[key] = pair
    return pairs
