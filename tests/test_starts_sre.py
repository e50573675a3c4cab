"""The starting-transform protocol and SRE, checked against analytic values."""

import numpy as np
import pytest

from regkit import RigidTransform
from regkit.errors import InputError
from regkit.sre import sre
from regkit.starts import (
    SRE_TOLERANCE_MM,
    InitSpec,
    make_starts,
    parse_init,
    read_starts,
    scale_to_sre,
    write_starts,
)


def fibonacci_sphere(n, r, centre):
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return centre + r * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def test_sre_of_a_translation_is_its_length():
    pts = np.random.default_rng(0).normal(0, 20, (500, 3))
    gt = RigidTransform.from_params([5, 6, 7, 10, 20, 30])
    t = RigidTransform.from_params([3, -4, 12, 0, 0, 0]) @ gt
    assert sre(t, gt, pts) == pytest.approx(13.0, abs=1e-9)


@pytest.mark.parametrize("angle", [5.0, 30.0, 90.0])
def test_sre_of_a_rotation_about_the_sphere_centre(angle):
    # points on a sphere of radius r at polar angle φ from the axis move 2 r sinφ sin(θ/2); the area mean of
    # sinφ over the sphere is π/4, so SRE = (π/2) r sin(θ/2)
    r, c = 20.0, np.array([10.0, -5.0, 3.0])
    pts = fibonacci_sphere(20000, r, c)
    rot = RigidTransform.from_params([0, 0, 0, 0, 0, angle], center=c)
    expected = np.pi / 2 * r * np.sin(np.deg2rad(angle) / 2)
    assert sre(rot, RigidTransform.identity(), pts) == pytest.approx(expected, rel=2e-3)


def test_sre_is_vectorised_over_transforms():
    pts = np.random.default_rng(1).normal(0, 10, (300, 3))
    gt = RigidTransform.identity()
    ts = RigidTransform.from_params(np.random.default_rng(2).normal(0, 5, (1100, 6)))
    batched = sre(ts, gt, pts)
    assert batched.shape == (1100,)
    np.testing.assert_allclose(batched[[0, 700, 1099]], [sre(ts[i], gt, pts) for i in (0, 700, 1099)])


def test_parse_init():
    assert parse_init("8mm") == [InitSpec(8, 8)]
    assert parse_init("0-20mm") == [InitSpec(0, 20)]
    assert parse_init("[0,20]mm") == [InitSpec(0, 20)]
    assert [s.label for s in parse_init("8mm,16mm")] == ["8mm", "16mm"]
    for bad in ("eight", "20-0mm", ""):
        with pytest.raises(InputError):
            parse_init(bad)


def test_scaling_meets_the_target(phantom_case):
    pts = phantom_case.surface_points
    for target in (0.5, 8.0, 16.0, 20.0):
        p, _s = scale_to_sre(np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0]), pts.mean(0), pts, target)
        assert abs(sre(p, RigidTransform.identity(), pts) - target) < SRE_TOLERANCE_MM
    # linear scaling alone is not exact when rotations are involved
    _p1, s1 = scale_to_sre(np.array([0.0, 0, 0, 6.0, 6.0, 6.0]), np.zeros(3), pts, 8.0)
    _p2, s2 = scale_to_sre(np.array([0.0, 0, 0, 6.0, 6.0, 6.0]), np.zeros(3), pts, 16.0)
    assert s2 != pytest.approx(2 * s1, rel=1e-3)


def test_starts_hit_targets_and_files_are_reproducible(tmp_path, phantom_dataset):
    cases = [phantom_dataset.load(c) for c in phantom_dataset.case_ids()]
    a = make_starts(cases, "8mm,0-20mm", 4, seed=3)
    b = make_starts(cases, "8mm,0-20mm", 4, seed=3)
    for s in a:
        case = next(c for c in cases if c.case_id == s.case)
        assert abs(sre(s.transform, case.ground_truth, case.surface_points) - s.target_sre) < 0.01
    assert {s.init for s in a} == {"8mm", "0-20mm"}
    ranged = [s.target_sre for s in a if s.init == "0-20mm"]
    assert all(0 <= t <= 20 for t in ranged) and len(set(ranged)) == len(ranged)
    p1, p2 = write_starts(a, tmp_path / "a.csv"), write_starts(b, tmp_path / "b.csv")
    assert p1.read_bytes() == p2.read_bytes()
    back = read_starts(p1)
    assert [(s.case, s.start_id, s.init) for s in back] == [(s.case, s.start_id, s.init) for s in a]
    np.testing.assert_allclose(np.stack([s.transform.matrix for s in back]),
                               np.stack([s.transform.matrix for s in a]), atol=1e-12)
    # a case's starts do not depend on the other cases in the set
    alone = make_starts(cases[2:3], "8mm", 4, seed=3)
    np.testing.assert_array_equal(alone[0].transform.matrix,
                                  next(s for s in a if s.case == cases[2].case_id).transform.matrix)
    assert make_starts(cases[:1], "8mm", 1, seed=4)[0].transform.matrix.tolist() != a[0].transform.matrix.tolist()
