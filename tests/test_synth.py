"""The phantom: deterministic, geometrically consistent, non-rigid, and written in the dataset layout."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from regkit.app.cli import main
from regkit.image import ImageGeometry, read_image
from regkit.synth.phantom import synth_case, synth_case_from_mr
from regkit.transform import fit_rigid


@pytest.mark.slow
def test_deterministic_by_seed_and_index():
    a, b, c = synth_case(5, 1), synth_case(5, 1), synth_case(5, 2)
    for img in ("fixed", "moving", "fixed_label"):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(getattr(a, img)),
                                      sitk.GetArrayViewFromImage(getattr(b, img)))
    np.testing.assert_array_equal(a.ground_truth.matrix, b.ground_truth.matrix)
    assert not np.allclose(a.ground_truth.matrix, c.ground_truth.matrix)


def test_phantom_geometry_and_physics(phantom_case):
    c = phantom_case
    mr, us = ImageGeometry.of(c.fixed), ImageGeometry.of(c.moving)
    # each modality has its own grid; the TRUS sits obliquely in the tracker frame
    assert not np.allclose(us.spacing, mr.spacing)
    assert not np.allclose(us.direction, np.eye(3), atol=1e-3)
    trus = sitk.GetArrayViewFromImage(c.moving)
    assert trus.dtype == np.uint8 and 0.2 < (trus > 0).mean() < 0.9  # black outside the fan
    # the ground truth is the least-squares rigid fit of a non-rigid deformation: the SRE floor is above zero
    floor = c.metadata["sre_floor_mm"]
    assert 0.1 < floor < 3.0
    # ground truth maps the MR gland onto the TRUS gland: their labels overlap well (not perfectly)
    warped = sitk.Resample(c.moving_label, c.fixed_label, c.ground_truth.to_sitk(), sitk.sitkNearestNeighbor, 0)
    a = sitk.GetArrayViewFromImage(c.fixed_label) > 0
    b = sitk.GetArrayViewFromImage(warped) > 0
    fov = sitk.GetArrayViewFromImage(sitk.Resample(c.moving, c.fixed_label, c.ground_truth.to_sitk(),
                                                   sitk.sitkNearestNeighbor, 0)) > 0
    dice = 2 * (a & b & fov).sum() / ((a & fov).sum() + (b & fov).sum())
    assert 0.8 < dice < 0.99


def test_gland_texture_differs_between_modalities(phantom_case):
    """No functional intensity relation: MR and TRUS intensities inside the gland are barely correlated."""
    c = phantom_case
    us_in_mr = sitk.GetArrayFromImage(sitk.Resample(c.moving, c.fixed, c.ground_truth.to_sitk(), sitk.sitkLinear, 0.0))
    mr = sitk.GetArrayFromImage(c.fixed).astype(float)
    region = sitk.GetArrayViewFromImage(sitk.BinaryDilate(c.fixed_label, [10, 10, 4])) > 0
    region &= us_in_mr > 0
    r = np.corrcoef(mr[region], us_in_mr[region])[0, 1]
    assert abs(r) < 0.5


def test_from_real_mr(shared_data):
    mr = read_image(shared_data / "prostate_mr" / "case1_t2.nii.gz")
    lab = read_image(shared_data / "prostate_mr" / "case1_gland.nii.gz")
    c = synth_case_from_mr(mr, lab, seed=3)
    assert c.fixed is mr
    pts = c.surface_points
    assert np.linalg.norm(c.ground_truth.apply(pts) - fit_rigid(pts, c.ground_truth.apply(pts)).apply(pts)) < 1e-6
    assert c.moving_label is not None and sitk.GetArrayViewFromImage(c.moving_label).any()


@pytest.mark.slow
def test_synth_cli_writes_a_resumable_dataset(tmp_path):
    out = tmp_path / "ds"
    r = CliRunner().invoke(main, ["synth", "--cases", "3", "--out", str(out), "--seed", "4"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "dataset.json").read_text())
    assert doc["splits"] == {"train": [], "val": [], "test": ["case000", "case001", "case002"]}  # evaluation only
    gt = (out / "case001" / "ground_truth.txt").read_text()
    stamp = (out / "case001" / "mr.nii.gz").stat().st_mtime_ns
    (out / "case002" / "case.json").unlink()  # as if interrupted before finishing case002
    r = CliRunner().invoke(main, ["synth", "--cases", "3", "--out", str(out), "--seed", "4"])
    assert r.exit_code == 0
    assert (out / "case001" / "mr.nii.gz").stat().st_mtime_ns == stamp  # kept
    assert (out / "case002" / "case.json").exists()
    assert (out / "case001" / "ground_truth.txt").read_text() == gt


def test_small_datasets_are_for_evaluation_and_larger_ones_keep_two_test_cases():
    from regkit.errors import InputError
    from regkit.synth.dataset import default_splits, split_sizes

    for n in range(1, 10):
        assert split_sizes(n) == {"train": 0, "val": 0, "test": n}
    assert split_sizes(10) == {"train": 6, "val": 2, "test": 2}
    assert split_sizes(84) == {"train": 58, "val": 13, "test": 13}
    assert default_splits(4, {"train": 2, "val": 1, "test": 1})["test"] == ["case003"]
    with pytest.raises(InputError, match="add up"):
        default_splits(4, {"train": 2, "val": 1, "test": 2})
    r = CliRunner().invoke(main, ["synth", "--cases", "2", "--out", "/tmp/x", "--split-sizes", "a,b"])
    assert r.exit_code == 2 and "split-sizes" in r.output


def test_randomised_tissue_tables_carry_no_intensity_relation():
    from regkit.synth.randomise import Randomisation, random_tables

    rng = np.random.default_rng(0)
    tables = [random_tables(rng, Randomisation()) for _ in range(200)]
    t2 = np.concatenate([t["t2"] for t in tables])
    echo = np.log(np.concatenate([t["echo"] for t in tables]))
    assert abs(np.corrcoef(t2, echo)[0, 1]) < 0.05  # drawn independently for each tissue and case
    fat = [t["t2"][0] for t in tables]
    assert np.ptp(fat) > 1.0  # one tissue's contrast varies over most of the range


@pytest.mark.slow
def test_randomised_phantom_is_deterministic_wide_and_leaves_the_phantom_alone():
    from regkit.synth.randomise import Randomisation

    r = Randomisation()
    a, b = synth_case(5, 1, randomise=r), synth_case(5, 1, randomise=r)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a.moving), sitk.GetArrayViewFromImage(b.moving))
    assert a.metadata["randomised"] and a.metadata["trus_label_visible_fraction"] >= r.min_visible_fraction
    plain = synth_case(5, 1)
    assert not plain.metadata["randomised"]
    assert a.fixed.GetSpacing() != plain.fixed.GetSpacing()  # its own random stream
    pts = a.surface_points
    assert np.abs(a.ground_truth.apply(pts) - fit_rigid(pts, a.ground_truth.apply(pts)).apply(pts)).max() < 1e-6


@pytest.mark.slow
def test_randomised_from_real_mr_rescales_and_deforms_the_anatomy(shared_data):
    from regkit.synth.randomise import Randomisation

    mr = read_image(shared_data / "prostate_mr" / "case1_t2.nii.gz")
    lab = read_image(shared_data / "prostate_mr" / "case1_gland.nii.gz")
    r = Randomisation(gland_volume_ml=(60.0, 61.0), anisotropy=0.0, deformation_mm=(3.0, 3.0))
    c = synth_case_from_mr(mr, lab, seed=3, randomise=r)
    assert 58.0 < c.metadata["gland_volume_ml"] < 63.0  # deformation changes the volume a little
    assert c.fixed.GetSize() == mr.GetSize() and c.fixed.GetSpacing() != mr.GetSpacing()
    assert c.metadata["trus_label_visible_fraction"] >= r.min_visible_fraction
    assert sitk.GetArrayViewFromImage(c.fixed_label).any()


def test_no_progress_bar_for_nothing_to_do(capsys, monkeypatch):
    from regkit.progress import progress

    monkeypatch.delenv("REGKIT_NO_PROGRESS", raising=False)
    with progress(total=0, desc="synth", unit="case") as bar:
        bar.update(0)
    for _ in progress([], desc="load"):
        pass
    assert capsys.readouterr().err == ""
    with progress(total=2, desc="synth", unit="case") as bar:
        bar.update(2)
    assert "synth" in capsys.readouterr().err


def test_the_builtin_benchmark_renders_only_the_cases_asked_for_and_the_rest_later(tmp_path, monkeypatch):
    """``regkit compare --cases N`` renders N cases of the built-in split, not all of it; a later call renders
    more and keeps what is there (a case's seed follows its index in the full benchmark, so it is the same case
    whichever call renders it)."""
    from regkit.benchmark import benchmark_path, benchmark_splits, builtin_benchmark

    val = benchmark_splits()["val"]
    monkeypatch.setenv("REGKIT_CACHE", str(tmp_path))
    assert builtin_benchmark(("val",), workers=1, show_progress=False, cases=1).splits == {"val": val[:1]}
    first = (benchmark_path() / val[0] / "trus.nii.gz").read_bytes()
    assert builtin_benchmark(("val",), workers=1, show_progress=False, cases=2).splits == {"val": val[:2]}
    assert builtin_benchmark(("val",), workers=1, show_progress=False, cases=1).splits == {"val": val[:2]}
    assert (benchmark_path() / val[0] / "trus.nii.gz").read_bytes() == first
    assert sorted(p.name for p in benchmark_path().iterdir() if p.name.startswith("case")) == val[:2]
