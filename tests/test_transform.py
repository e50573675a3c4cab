"""The conventions of regkit.transform and the round trips between transform representations."""

import numpy as np
import pytest
import SimpleITK as sitk

from regkit.errors import InputError
from regkit.transform import RigidTransform, fit_rigid, rotation_angles, rotation_matrix
from regkit.transform_io import (
    elastix_euler_rotation,
    elastix_map_from_transform,
    parse_elastix_text,
    read_transform,
    transform_from_elastix_map,
    transform_from_elastix_maps,
    write_matrix_text,
    write_transform,
)

RNG = np.random.default_rng(42)


def random_params(n):
    return np.concatenate([RNG.uniform(-30, 30, (n, 3)), RNG.uniform(-80, 80, (n, 3))], axis=1)


def test_euler_order_is_rz_ry_rx_against_hand_computed_rotations():
    # 90° about x maps +y to +z; 90° about y maps +z to +x; 90° about z maps +x to +y
    np.testing.assert_allclose(rotation_matrix([90, 0, 0]) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix([0, 90, 0]) @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix([0, 0, 90]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # x first, then y, then z (fixed axes): +y --Rx90--> +z --Ry90--> +x --Rz90--> +y
    np.testing.assert_allclose(rotation_matrix([90, 90, 90]) @ [0, 1, 0], [0, 1, 0], atol=1e-12)
    # the other order (Rx·Ry·Rz) would send +y elsewhere: the composition is not commutative
    rx, ry, rz = rotation_matrix([90, 0, 0]), rotation_matrix([0, 90, 0]), rotation_matrix([0, 0, 90])
    np.testing.assert_allclose(rotation_matrix([90, 90, 90]), rz @ ry @ rx, atol=1e-12)
    assert not np.allclose(rx @ ry @ rz, rz @ ry @ rx)
    # a hand-expanded small-angle case: Rz(c)Ry(b)Rx(a) entry (2, 0) is -sin(b)
    r = rotation_matrix([10, 20, 30])
    assert r[2, 0] == pytest.approx(-np.sin(np.deg2rad(20)))
    assert r[0, 0] == pytest.approx(np.cos(np.deg2rad(30)) * np.cos(np.deg2rad(20)))


def test_angles_round_trip_including_gimbal_lock():
    angles = np.concatenate([RNG.uniform(-179, 179, (200, 1)), RNG.uniform(-89, 89, (200, 1)),
                             RNG.uniform(-179, 179, (200, 1))], axis=1)
    np.testing.assert_allclose(rotation_angles(rotation_matrix(angles)), angles, atol=1e-9)
    for ay in (90.0, -90.0):
        r = rotation_matrix([25.0, ay, 40.0])
        np.testing.assert_allclose(rotation_matrix(rotation_angles(r)), r, atol=1e-9)


def test_params_round_trip_about_a_centre_and_centre_is_fixed_by_rotation():
    params = random_params(50)
    params[:, 3:] = np.clip(params[:, 3:], -85, 85)
    center = np.array([12.0, -40.0, 7.5])
    t = RigidTransform.from_params(params, center)
    np.testing.assert_allclose(t.to_params(center), params, atol=1e-9)
    pure_rotation = RigidTransform.from_params([0, 0, 0, 10, -20, 30], center)
    np.testing.assert_allclose(pure_rotation.apply(center), center, atol=1e-12)
    shifted = RigidTransform.from_params([1, 2, 3, 0, 0, 0], center)
    np.testing.assert_allclose(shifted.apply([[0, 0, 0]]), [[1, 2, 3]], atol=1e-12)


def test_compose_inverse_apply_batched():
    a = RigidTransform.from_params(random_params(7))
    b = RigidTransform.from_params(random_params(7))
    pts = RNG.normal(0, 50, (11, 3))
    ab = a @ b
    np.testing.assert_allclose(ab.apply(pts), np.stack([a[i].apply(b[i].apply(pts)) for i in range(7)]),
                               atol=1e-9)
    np.testing.assert_allclose((a @ a.inverse()).matrix, np.broadcast_to(np.eye(4), (7, 4, 4)), atol=1e-12)
    assert a.apply(pts).shape == (7, 11, 3)
    assert a[0].apply(pts[0]).shape == (3,)
    # a single transform broadcasts against a batch
    np.testing.assert_allclose((a[0] @ b).matrix, a[0].matrix @ b.matrix, atol=1e-12)


def test_rigidity_checks_name_the_problem():
    with pytest.raises(InputError, match="not rigid"):
        RigidTransform(np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="singular"):
        RigidTransform(np.diag([0.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="reflection"):
        RigidTransform(np.diag([-1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="last row"):
        m = np.eye(4)
        m[3, 0] = 1
        RigidTransform(m)
    # a few stored digits are accepted with orthonormalize=True
    r = np.round(rotation_matrix([10, 20, 30]), 4)
    m = np.eye(4)
    m[:3, :3] = r
    t = RigidTransform.from_matrix(m, orthonormalize=True, tolerance=1e-3)
    np.testing.assert_allclose(t.rotation, rotation_matrix([10, 20, 30]), atol=1e-4)


def test_sitk_euler_round_trip_and_point_mapping():
    for p in random_params(20):
        p[3:] = np.clip(p[3:], -85, 85)
        center = RNG.normal(0, 20, 3)
        t = RigidTransform.from_params(p)
        e = t.to_sitk(center)
        assert e.GetComputeZYX()
        back = RigidTransform.from_sitk(e)
        np.testing.assert_allclose(back.matrix, t.matrix, atol=1e-9)
        q = RNG.normal(0, 30, 3)
        np.testing.assert_allclose(e.TransformPoint(q.tolist()), t.apply(q), atol=1e-9)


def test_sitk_composite_and_affine_and_versor():
    a = RigidTransform.from_params([1, 2, 3, 10, 0, 0])
    b = RigidTransform.from_params([0, -5, 2, 0, 0, 25])
    comp = sitk.CompositeTransform([a.to_sitk(), b.to_sitk()])  # ITK applies the last-added first
    np.testing.assert_allclose(RigidTransform.from_sitk(comp).matrix, (a @ b).matrix, atol=1e-9)
    aff = sitk.AffineTransform(3)
    aff.SetMatrix(a.rotation.ravel().tolist())
    aff.SetTranslation(a.translation.tolist())
    np.testing.assert_allclose(RigidTransform.from_sitk(aff).matrix, a.matrix, atol=1e-12)
    v = sitk.VersorRigid3DTransform()
    v.SetMatrix(b.rotation.ravel().tolist())
    v.SetTranslation(b.translation.tolist())
    np.testing.assert_allclose(RigidTransform.from_sitk(v).matrix, b.matrix, atol=1e-9)
    scaled = sitk.AffineTransform(3)
    scaled.SetMatrix([2, 0, 0, 0, 1, 0, 0, 0, 1])
    with pytest.raises(InputError, match="not rigid"):
        RigidTransform.from_sitk(scaled)


@pytest.mark.parametrize("suffix", [".tfm", ".h5", ".txt", ".mat"])
def test_file_round_trips(tmp_path, suffix):
    t = RigidTransform.from_params([3.25, -7.5, 11.0, 4.0, -12.0, 33.0], center=[5, 6, 7])
    path = write_transform(t, tmp_path / f"t{suffix}", center=[10.0, -3.0, 2.0])
    back = read_transform(path)
    np.testing.assert_allclose(back.matrix, t.matrix, atol=1e-9)


def test_matrix_text_is_commented_and_parses_variants(tmp_path):
    t = RigidTransform.from_params([1, 2, 3, 4, 5, 6])
    p = write_matrix_text(t, tmp_path / "m.txt")
    assert "fixed (MR) points to moving (TRUS)" in p.read_text()
    (tmp_path / "three_by_four.txt").write_text("\n".join(" ".join(f"{v:.12f}" for v in row)
                                                          for row in t.matrix[:3]))
    np.testing.assert_allclose(read_transform(tmp_path / "three_by_four.txt").matrix, t.matrix, atol=1e-9)
    (tmp_path / "bad.txt").write_text("1 2 3\nfoo")
    with pytest.raises(InputError, match="bad.txt"):
        read_transform(tmp_path / "bad.txt")
    (tmp_path / "short.txt").write_text("1 0 0 0\n0 1 0 0\n")
    with pytest.raises(InputError, match="16 numbers"):
        read_transform(tmp_path / "short.txt")


def test_elastix_map_round_trip_and_default_euler_order():
    t = RigidTransform.from_params([3, -4, 5, 10, -20, 30])
    center = np.array([1.0, 2.0, 3.0])
    pmap = elastix_map_from_transform(t, center)
    np.testing.assert_allclose(transform_from_elastix_map(pmap).matrix, t.matrix, atol=1e-9)
    # elastix's default EulerTransform order is Rz·Rx·Ry, which differs from Rz·Ry·Rx
    a = np.deg2rad([10, 20, 30])
    rz = rotation_matrix([0, 0, 30])
    rx = rotation_matrix([10, 0, 0])
    ry = rotation_matrix([0, 20, 0])
    np.testing.assert_allclose(elastix_euler_rotation(a, compute_zyx=False), rz @ rx @ ry, atol=1e-12)
    np.testing.assert_allclose(elastix_euler_rotation(a, compute_zyx=True), rz @ ry @ rx, atol=1e-12)
    text = """(Transform "EulerTransform")
(NumberOfParameters 6)
(TransformParameters 0.1 0.2 0.3 1 2 3)
(CenterOfRotationPoint 4 5 6)
(InitialTransformParameterFileName "NoInitialTransform")"""
    m = transform_from_elastix_map(parse_elastix_text(text))
    c = np.array([4.0, 5.0, 6.0])
    np.testing.assert_allclose(m.apply(c), c + [1, 2, 3], atol=1e-12)  # T(p) = R (p - c) + c + t
    np.testing.assert_allclose(m.rotation, elastix_euler_rotation([0.1, 0.2, 0.3]), atol=1e-12)
    # a chain: initial first
    init = RigidTransform.from_params([1, 0, 0, 0, 0, 0])
    total = transform_from_elastix_maps([elastix_map_from_transform(init), pmap])
    np.testing.assert_allclose(total.matrix, (t @ init).matrix, atol=1e-9)


def test_elastix_parameter_file_chain(tmp_path):
    init = RigidTransform.from_params([0, 0, 5, 0, 0, 10])
    new = RigidTransform.from_params([1, 0, 0, 5, 0, 0])

    def write(pmap, path):
        path.write_text("\n".join(f'({k} {" ".join(v)})' for k, v in pmap.items()))

    m0 = elastix_map_from_transform(init)
    write(m0, tmp_path / "TransformParameters.0.txt")
    m1 = elastix_map_from_transform(new)
    m1["InitialTransformParameterFileName"] = [str(tmp_path / "TransformParameters.0.txt")]
    write(m1, tmp_path / "TransformParameters.1.txt")
    np.testing.assert_allclose(read_transform(tmp_path / "TransformParameters.1.txt").matrix,
                               (new @ init).matrix, atol=1e-9)


def test_fit_rigid_recovers_a_known_transform():
    t = RigidTransform.from_params([10, -3, 7, 15, -25, 40])
    pts = RNG.normal(0, 20, (100, 3))
    np.testing.assert_allclose(fit_rigid(pts, t.apply(pts)).matrix, t.matrix, atol=1e-9)
