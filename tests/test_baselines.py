"""The classical registrars on real elastix: recovery of known motions, geometry, failures, no stray files."""

import os
import tempfile

import numpy as np
import pytest
import SimpleITK as sitk

from regkit import RigidTransform, get_registrar
from regkit.case import Case
from regkit.image import make_image, read_image
from regkit.sre import sre
from regkit.starts import make_starts
from regkit.transform import rotation_matrix


def moved_copy(mr: sitk.Image, label: sitk.Image, truth: RigidTransform) -> sitk.Image:
    """The MR seen through ``truth`` (fixed → moving) on an oblique, isotropic grid of another size."""
    ref = sitk.Image([90, 80, 70], sitk.sitkFloat32)
    ref.SetSpacing([1.3, 1.3, 1.3])
    direction = rotation_matrix([15, -10, 30])
    ref.SetDirection(direction.ravel().tolist())
    centre = truth.apply(np.array(mr.TransformContinuousIndexToPhysicalPoint(
        [(s - 1) / 2 for s in mr.GetSize()])))
    ref.SetOrigin((centre - direction @ (np.array([90, 80, 70]) * 1.3 / 2)).tolist())
    # moving(q) = fixed(truth⁻¹ q): resample the MR through truth⁻¹ onto the moving grid
    return sitk.Resample(sitk.Cast(mr, sitk.sitkFloat32), ref, truth.inverse().to_sitk(), sitk.sitkLinear, 0.0)


def self_case(mr, label) -> Case:
    from regkit.surface import surface_from_label

    pts = surface_from_label(label)
    truth = RigidTransform.from_params([4.0, -3.0, 2.0, 5.0, -4.0, 6.0], pts.mean(0))
    return Case("self", mr, moved_copy(mr, label, truth), label, ground_truth=truth, surface_points=pts)


def check_recovery(case: Case, method: str, **options):
    reg = get_registrar(method, **options)
    for start in make_starts([case], "6mm", 2, seed=1):
        res = reg.register(case, start.transform)
        assert res.ok, res.message
        assert sre(res.transform, case.ground_truth, case.surface_points) < 0.5


@pytest.mark.parametrize("method", ["mi", "mind"])
def test_recovers_a_known_motion_of_a_real_mr(itk_loaded, shared_data, method):
    mr = read_image(shared_data / "prostate_mr" / "case0_t2.nii.gz")
    label = read_image(shared_data / "prostate_mr" / "case0_gland.nii.gz")
    check_recovery(self_case(mr, label), method)


@pytest.mark.parametrize("method", ["mi", "mind"])
def test_recovers_a_known_motion_of_a_phantom_mr(itk_loaded, phantom_case, method):
    check_recovery(self_case(phantom_case.fixed, phantom_case.fixed_label), method)


@pytest.mark.parametrize("method", ["mi", "mind"])
def test_phantom_preset_recovers_the_same_motion(itk_loaded, phantom_case, method):
    check_recovery(self_case(phantom_case.fixed, phantom_case.fixed_label), method, preset="phantom")


def test_the_pyramid_smooths_in_millimetres(itk_loaded, phantom_case):
    """elastix's smoothing pyramid ignores a smoothing schedule; regkit's generic one applies it, in mm: the
    metric at the first iteration changes with sigma, and a sigma scaled with the spacing gives the same."""
    from regkit.baselines.elastix import run_elastix
    from regkit.baselines.recipes import rigid_parameter_map

    pm = rigid_parameter_map(smoothing_mm=(2.0, 0.0), iterations=1)
    assert pm["FixedImagePyramid"] == ["FixedGenericImagePyramid"]
    assert pm["FixedImagePyramidSmoothingSchedule"] == ["2.0"] * 3 + ["0.0"] * 3
    assert pm["FixedImagePyramidRescaleSchedule"] == ["1"] * 6  # no down-sampling

    def first_metric(image_spacing: float, sigma: float) -> float:
        rng = np.random.default_rng(0)
        a = rng.random((24, 24, 24)).astype(np.float32)
        f = make_image(a, (image_spacing,) * 3)
        m = make_image(a ** 2, (image_spacing,) * 3)
        run = run_elastix([f], [m], rigid_parameter_map(smoothing_mm=(sigma,), iterations=1, spatial_samples=4000),
                          RigidTransform.identity(), threads=1)
        return float(run.levels[0].metric[0])

    assert first_metric(1.0, 0.0) != pytest.approx(first_metric(1.0, 2.0), abs=1e-3)
    assert first_metric(1.0, 2.0) == pytest.approx(first_metric(10.0, 20.0), abs=1e-9)


def test_levels_take_their_own_samples_and_step_lengths(itk_loaded, phantom_case):
    """Samples and the longest step per level reach elastix: twice the step ratio, about twice the first step."""
    from regkit.baselines.elastix import run_elastix
    from regkit.baselines.recipes import rigid_parameter_map

    pm = rigid_parameter_map(smoothing_mm=(1.0, 0.0), iterations=1, spatial_samples=[1000, 4000], step_ratio=[2, 1])
    assert pm["NumberOfSpatialSamples"] == ["1000", "4000"]
    assert pm["MaximumStepLengthRatio"] == ["2.0", "1.0"]
    start = phantom_case.ground_truth @ RigidTransform.from_params([0, 0, 0, 4, -3, 2], phantom_case.surface_centroid)

    def first_step(ratio: float) -> float:
        pm = rigid_parameter_map(smoothing_mm=(0.0,), iterations=1, spatial_samples=2000, step_ratio=ratio)
        run = run_elastix([phantom_case.fixed], [phantom_case.moving], pm, start, threads=1)
        return float(np.linalg.norm(run.transform.matrix[:3, 3] - start.matrix[:3, 3]))

    assert 1.6 < first_step(2.0) / first_step(1.0) < 3.0
    # a given length replaces elastix's automatic one, scaled by the ratio (levels on binned images)
    assert rigid_parameter_map(smoothing_mm=(1.0, 0.0), iterations=1, step_ratio=[2, 1],
                               max_step_mm=0.5)["MaximumStepLength"] == ["1.0", "0.5"]


def test_mi_records_the_step_ratio_each_level_ran_with(itk_loaded, phantom_case):
    """The phantom's MR (0.82 mm in-plane) is binned at the 4 and 2 mm levels, whose longest step is then the full
    grid's mean spacing (ratio 1); the 1 mm level runs at full resolution, with coarse_step."""
    res = get_registrar("mi", preset="general", iterations=3, coarse_step=2.0).register(phantom_case,
                                                                                      phantom_case.ground_truth)
    assert res.info["step_ratio"] == (1.0, 1.0, 2.0, 1.0)


def test_coarse_levels_run_on_images_binned_to_their_sigma(itk_loaded):
    from regkit.baselines.mi import level_grids

    general = {**get_registrar("mi").recipes["general"], "smoothing_mm": (4.0, 2.0, 1.0, 0.0), "shrink": True}
    t2, adc = (0.5, 0.5, 3.0), (2.0, 2.0, 3.0)
    assert level_grids(general, t2, adc) == [(0, 1, (8, 8, 1), (2, 2, 1)), (1, 2, (4, 4, 1), (1, 1, 1)),
                                             (2, 3, (2, 2, 1), (1, 1, 1)), (3, 4, (1, 1, 1), (1, 1, 1))]
    assert level_grids(general, adc, adc) == [(0, 1, (2, 2, 1), (2, 2, 1)), (1, 4, (1, 1, 1), (1, 1, 1))]
    assert level_grids({**general, "shrink": False}, t2, adc) == [(0, 4, (1, 1, 1), (1, 1, 1))]


def test_label_as_fixed_input(itk_loaded, phantom_case):
    start = make_starts([phantom_case], "8mm", 1, seed=2)[0].transform
    res = get_registrar("mi", fixed="label").register(phantom_case, start)
    assert res.ok, res.message
    assert res.info["fixed"] == "label"
    # MIND on a label: the label is softened first, so its descriptors vary around the gland boundary
    from regkit.baselines.mind import MINDRegistrar

    fixed, _, _, _ = MINDRegistrar(fixed="label").descriptors(phantom_case, start, 1.5)
    ch = sitk.GetArrayFromImage(fixed[0])
    assert ch.min() < 0.9 and ch.max() == pytest.approx(1.0)


def test_start_passes_through_exactly_with_zero_iterations(itk_loaded, phantom_case):
    from regkit.baselines.elastix import run_elastix
    from regkit.baselines.recipes import rigid_parameter_map

    pm = rigid_parameter_map(iterations=0, smoothing_mm=(0.0,))
    for params in ([0, 0, 0, 0, 0, 0], [5, -3, 2, 10, 20, 30]):
        start = phantom_case.ground_truth @ RigidTransform.from_params(params, phantom_case.surface_centroid)
        out = run_elastix([phantom_case.fixed], [phantom_case.moving], pm, start)
        np.testing.assert_allclose(out.transform.matrix, start.matrix, atol=1e-9)


def test_failure_becomes_a_failed_result_with_its_log_and_no_stray_files(itk_loaded, phantom_case, tmp_path,
                                                                          monkeypatch):
    scratch = tmp_path / "tmp"  # this test's own temporary folder: other processes' runs do not count
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cwd_before = set(os.listdir("."))
    ok = get_registrar("mi", iterations=20).register(phantom_case, phantom_case.ground_truth)
    assert ok.status != "failed", ok.message
    # a moving image with (nearly) nothing in it: elastix cannot sample it and fails (a wholly blank one is refused
    # as the case is made, see tests/bad_inputs/kinds.md)
    empty = sitk.Image(phantom_case.moving) * 0
    empty[0, 0, 0] = 1
    broken = Case("broken", phantom_case.fixed, empty, phantom_case.fixed_label,
                  ground_truth=phantom_case.ground_truth)
    res = get_registrar("mi", log_dir=str(tmp_path / "logs"), mask_mm=None).register(broken,
                                                                                     phantom_case.ground_truth)
    assert res.status == "failed" and "elastix" in res.message
    assert res.transform.allclose(phantom_case.ground_truth)
    assert list((tmp_path / "logs").glob("*.log"))
    assert not list(scratch.iterdir())
    assert set(os.listdir(".")) == cwd_before


def test_mind_grids_share_orientation_and_spacing(itk_loaded, phantom_case):
    from regkit.baselines.mind import MINDRegistrar

    reg = MINDRegistrar(spacing_mm=(2.0,))
    start = make_starts([phantom_case], "8mm", 1, seed=3)[0].transform
    fixed, moving, fmask, mmask = reg.descriptors(phantom_case, start, 2.0)
    assert len(fixed) == len(moving) == 12
    assert fixed[0].GetSpacing() == moving[0].GetSpacing() == (2.0, 2.0, 2.0)
    f_dir = np.array(fixed[0].GetDirection()).reshape(3, 3)
    m_dir = np.array(moving[0].GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(m_dir, start.rotation @ f_dir, atol=1e-9)
    assert sitk.GetArrayViewFromImage(mmask).any() and sitk.GetArrayViewFromImage(fmask).any()


def test_anisotropic_oblique_images_of_different_fov(itk_loaded):
    # a synthetic blob scene with anisotropic voxels and an oblique fixed direction
    zz, yy, xx = np.mgrid[:30, :64, :72].astype(float)
    a = np.exp(-(((xx - 30) / 8) ** 2 + ((yy - 30) / 6) ** 2 + ((zz - 14) / 4) ** 2))
    a += 0.6 * np.exp(-(((xx - 50) / 5) ** 2 + ((yy - 40) / 9) ** 2 + ((zz - 10) / 3) ** 2))
    fixed = make_image(a.astype(np.float32) * 100, (0.8, 0.9, 2.5), (10, -20, 5), rotation_matrix([0, 0, 20]))
    label = make_image((a > 0.5).astype(np.uint8), (0.8, 0.9, 2.5), (10, -20, 5), rotation_matrix([0, 0, 20]))
    case = self_case(fixed, label)
    check_recovery(case, "mi")
