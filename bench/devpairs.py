"""The real multimodal dev pairs (``../shared/data/real_multimodal_dev``) and their start protocol.

Everything here follows that folder's README: the pairs in its table order, the point error against the
reference (``mean_p |T(p) - ref(p)|``), and the seeded starts ``start = ref ∘ P`` with ``P`` drawn from
``numpy.random.default_rng([seed, pair_index, k])`` (angles ±6°, shifts ±5 mm, ITK ``Euler3DTransform`` order
R = Rz·Rx·Ry about the points' centroid) and scaled by bisection to the target error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.transform import RigidTransform

PAIRS = ("prostatex0001_t2_adc", "prostatex0218_t2_adc", "spine_t2_t2s")  # pair_index = position here
DEV = Path(os.environ.get("REGKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "real_multimodal_dev"


@dataclass
class DevPair:
    name: str
    index: int
    folder: Path
    reference: RigidTransform
    points: np.ndarray

    @property
    def fixed(self) -> Path:
        return self.folder / "fixed.nii.gz"

    @property
    def moving(self) -> Path:
        return self.folder / "moving.nii.gz"

    def error(self, t: RigidTransform) -> float:
        """Mean distance (mm) between ``t(p)`` and ``ref(p)`` over the evaluation points."""
        return float(np.linalg.norm(t.apply(self.points) - self.reference.apply(self.points), axis=1).mean())


def load_pair(name: str, root: Path = DEV) -> DevPair:
    folder = Path(root) / name
    ref = RigidTransform.from_sitk(sitk.ReadTransform(str(folder / "reference.tfm")))
    points = np.loadtxt(folder / "points.txt", comments="#")
    return DevPair(name, PAIRS.index(name), folder, ref, points)


def _euler_zxy(d: np.ndarray, s: float, c: np.ndarray) -> RigidTransform:
    ax, ay, az = np.deg2rad(np.asarray(d[:3]) * s)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    r = rz @ rx @ ry
    return RigidTransform.from_rotation_translation(r, c - r @ c + np.asarray(d[3:]) * s)


def perturbation(pair: DevPair, target: float, seed: int, k: int) -> RigidTransform:
    """The README's perturbation ``P`` for start ``k`` with mean point displacement ``target`` mm."""
    c = pair.points.mean(axis=0)
    rng = np.random.default_rng([seed, pair.index, k])
    d = np.concatenate([rng.uniform(-6, 6, 3), rng.uniform(-5, 5, 3)])

    def disp(s: float) -> float:
        p = _euler_zxy(d, s, c)
        return float(np.linalg.norm(p.apply(pair.points) - pair.points, axis=1).mean())

    lo, hi = 0.0, 1.0
    while disp(hi) < target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if disp(mid) < target else (lo, mid)
        if hi - lo < 1e-15:
            break
    return _euler_zxy(d, 0.5 * (lo + hi), c)


def start(pair: DevPair, target: float, seed: int = 0, k: int = 0) -> RigidTransform:
    """``ref ∘ P``: a start whose error is ``target`` mm."""
    return pair.reference @ perturbation(pair, target, seed, k)


def write_start(t: RigidTransform, center: np.ndarray, path: Path) -> Path:
    """The start as an ITK ``Euler3DTransform`` file about ``center`` (what ``regkit register --initial-transform``
    reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteTransform(t.to_sitk(center), str(path))
    return path
