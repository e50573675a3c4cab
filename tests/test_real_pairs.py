"""``mi`` and ``mind`` on real multimodal MR pairs, through ``regkit register`` as a user runs it.

The pairs, their reference transforms, evaluation points and seeded-start protocol are those of
``../shared/data/real_multimodal_dev`` (see its README); the tests skip when the folder is absent. The full
protocol (every pair, 8 and 16 mm, 4 starts) is ``bench/real_pairs.py``; here a few starts keep the suite lean.
"""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from regkit.transform import RigidTransform

PAIRS = ("prostatex0001_t2_adc", "prostatex0218_t2_adc", "spine_t2_t2s")  # the README's pair indices


@pytest.fixture(scope="module")
def dev(shared_data):
    if not (shared_data / "real_multimodal_dev").is_dir():
        pytest.skip("../shared/data/real_multimodal_dev is not present")
    return shared_data / "real_multimodal_dev"


def readme_start(dev, pair: str, target: float, k: int, seed: int = 0
                 ) -> tuple[RigidTransform, RigidTransform, np.ndarray]:
    """The README's start ``ref ∘ P`` (P: ±6° and ±5 mm, R = Rz·Rx·Ry about the points' centroid, scaled by
    bisection to a mean point displacement of ``target`` mm), with the reference and the points."""
    ref = RigidTransform.from_sitk(sitk.ReadTransform(str(dev / pair / "reference.tfm")))
    pts = np.loadtxt(dev / pair / "points.txt", comments="#")
    c = pts.mean(axis=0)
    d = np.random.default_rng([seed, PAIRS.index(pair), k])
    d = np.concatenate([d.uniform(-6, 6, 3), d.uniform(-5, 5, 3)])

    def perturbation(s):
        ax, ay, az = np.deg2rad(d[:3] * s)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        r = rz @ rx @ ry
        return RigidTransform.from_rotation_translation(r, c - r @ c + d[3:] * s)

    lo, hi = 0.0, 4.0
    for _ in range(100):
        mid = (lo + hi) / 2
        shift = np.linalg.norm(perturbation(mid).apply(pts) - pts, axis=1).mean()
        lo, hi = (mid, hi) if shift < target else (lo, mid)
    return ref @ perturbation((lo + hi) / 2), ref, pts


def register_from(dev, pair: str, target: float, k: int, method: str, tmp_path) -> tuple[float, dict]:
    """``regkit register`` from the README's start; the final error (mm) and result.json."""
    from click.testing import CliRunner

    from regkit.app.cli import main

    begin, ref, pts = readme_start(dev, pair, target, k)
    assert np.linalg.norm(begin.apply(pts) - ref.apply(pts), axis=1).mean() == pytest.approx(target, abs=1e-6)
    init = tmp_path / "start.tfm"
    sitk.WriteTransform(begin.to_sitk(pts.mean(axis=0)), str(init))
    out = CliRunner().invoke(main, ["register", "--fixed", str(dev / pair / "fixed.nii.gz"), "--moving",
                                    str(dev / pair / "moving.nii.gz"), "--method", method,
                                    "--initial-transform", str(init), "--out", str(tmp_path / "out"), "--no-qa"])
    assert out.exit_code == 0, out.output
    result = RigidTransform.from_sitk(sitk.ReadTransform(str(tmp_path / "out" / "transform.tfm")))
    error = float(np.linalg.norm(result.apply(pts) - ref.apply(pts), axis=1).mean())
    return error, json.loads((tmp_path / "out" / "result.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("pair", "target", "k"), [("prostatex0218_t2_adc", 16, 0), ("spine_t2_t2s", 8, 0)])
def test_mi_recovers_real_starts(dev, itk_loaded, tmp_path, pair, target, k):
    error, doc = register_from(dev, pair, target, k, "mi", tmp_path)
    assert error < 2.0 and doc["status"] == "ok", (error, doc["message"])
    assert doc["info"]["moving_mask"].startswith("none")  # an MR moving image gets no fan mask


@pytest.mark.slow
def test_mind_recovers_a_real_prostate_start(dev, itk_loaded, tmp_path):
    error, doc = register_from(dev, "prostatex0001_t2_adc", 8, 0, "mind", tmp_path)
    assert error < 3.0 and doc["status"] == "ok", (error, doc["message"])
