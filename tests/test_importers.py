"""Tests for ``regkit.importers``: small synthetic fixtures in the µ-RegPro / DeepReg paired layout and the UroNav
export, imported, loaded and evaluated end to end, plus the error and resume paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from regkit.dataset import load_dataset
from regkit.errors import InputError
from regkit.image import ImageGeometry, make_image
from regkit.importers import (
    ground_truth_from_uronav_coreg,
    ground_truth_from_us2mr,
    import_paired_folders,
    import_uronav,
)
from regkit.registry import get_registrar
from regkit.sre import sre
from regkit.surface import label_from_mesh, label_mesh, read_mesh, read_mesh_points, write_mesh
from regkit.transform import RigidTransform

CENTRE = np.array([12.0, -40.0, 25.0])  # gland centre, MR physical mm
RADII = np.array([11.0, 8.0, 6.5])
MR_SIZE, MR_SPACING = (40, 40, 20), (0.9, 0.8, 1.5)
MR_ORIGIN = CENTRE - np.array(MR_SIZE) * np.array(MR_SPACING) / 2 + [0.37, -0.21, 0.55]
US_SIZE, US_SPACING, US_ORIGIN = (44, 40, 24), (0.8, 0.85, 1.2), np.array([-30.0, 15.0, -8.0])


# --------------------------------------------------------------------------- fixture helpers
def ellipsoid(size, spacing, origin, centre=CENTRE, radii=RADII, transform: RigidTransform | None = None):
    """Binary ellipsoid on a grid; with ``transform`` (MR → grid space) the ellipsoid is mapped by it."""
    img = make_image(np.zeros(size[::-1], np.uint8), spacing, origin)
    geo = ImageGeometry.of(img)
    zz, yy, xx = np.indices(size[::-1])
    p = geo.to_physical(np.stack([xx, yy, zz], -1).reshape(-1, 3))
    if transform is not None:
        p = transform.inverse().apply(p)
    inside = (((p - centre) / radii) ** 2).sum(1) <= 1.0
    return make_image(inside.reshape(size[::-1]).astype(np.uint8), spacing, origin)


def intensity(label: sitk.Image, seed: int) -> sitk.Image:
    a = sitk.GetArrayFromImage(label).astype(np.float32) * 100 + np.random.default_rng(seed).normal(20, 5, 1)[0]
    img = sitk.GetImageFromArray(a)
    img.CopyInformation(label)
    return img


def four_d(label: sitk.Image) -> sitk.Image:
    """A 4-D (x, y, z, k) label: channel 0 the gland, channel 1 a small landmark."""
    landmark = sitk.GetArrayFromImage(label) * 0
    landmark[10, 20, 20] = 1
    other = sitk.GetImageFromArray(landmark)
    other.CopyInformation(label)
    return sitk.JoinSeries([label, other])


def make_paired(root: Path, names, naming="mu", labels_4d=True, skip=()):
    """One paired folder. ``skip`` holds (folder, name) pairs to leave out."""
    folders = {"mu": ("mr_images", "us_images", "mr_labels", "us_labels"),
               "deepreg-mr-moving": ("moving_images", "fixed_images", "moving_labels", "fixed_labels")}[naming]
    gland = ellipsoid(MR_SIZE, MR_SPACING, MR_ORIGIN)
    for i, name in enumerate(names):
        mr, us = intensity(gland, i), intensity(gland, 100 + i) * 0.5
        lab = four_d(gland) if labels_4d else gland
        for folder, img in zip(folders, (mr, us, lab, lab), strict=True):
            if (folder, name) in skip:
                continue
            (root / folder).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(img, str(root / folder / f"{name}.nii.gz"))
    return gland


def known_transform(seed: int) -> RigidTransform:
    """A rigid MR → TRUS transform that maps the gland into the TRUS volume."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-15, 15, 3)
    us_centre = US_ORIGIN + (np.array(US_SIZE) - 1) * np.array(US_SPACING) / 2
    return RigidTransform.from_params(np.r_[us_centre - CENTRE + rng.uniform(-2, 2, 3), angles], center=CENTRE)


def uronav_files(t_gt: RigidTransform, mr_origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two registration files the lab's code reads, for a known MR → TRUS transform.

    ``coreg.txt``: UroNav's block, rotation in M[1:, 1:], translation in M[1:, 0] (row 0 unused).
    ``coreg_refined.txt``: us2mr, converted from that block exactly as the lab's ``load_UroNav_registration``.
    """
    block = np.zeros((4, 4))
    block[0] = [1.0, 0.0, 0.0, 0.0]
    block[1:, 1:] = t_gt.rotation
    block[1:, 0] = t_gt.translation
    mat_mr2us = np.identity(4)
    mat_mr2us[:3, :3] = block[1:, 1:]
    mat_mr2us[:3, 3] = block[1:, 0]
    mat_shift = np.identity(4)
    mat_shift[:3, 3] = -np.asarray(mr_origin)
    us2mr = mat_shift.dot(np.linalg.inv(mat_mr2us))
    return block, us2mr


@pytest.fixture(scope="module")
def gland_mesh():
    """A fine marching-cubes mesh of the gland ellipsoid, MR physical mm."""
    fine = ellipsoid((42, 34, 28), (0.65, 0.6, 0.6), CENTRE - [14, 10, 8])
    return label_mesh(fine)


def write_binary_stl(mesh, path: Path) -> None:
    """A binary STL, as UroNav exports (faster to read than regkit's default ASCII ``write_mesh``)."""
    import meshio

    meshio.write(str(path), meshio.Mesh(mesh[0], [("triangle", mesh[1])]), binary=True)


def make_uronav_case(folder: Path, t_gt: RigidTransform, mesh, files=("refined", "coreg")):
    folder.mkdir(parents=True)
    gland = ellipsoid(MR_SIZE, MR_SPACING, MR_ORIGIN)
    sitk.WriteImage(intensity(gland, 1), str(folder / "MRVol.mhd"))
    us_gland = ellipsoid(US_SIZE, US_SPACING, US_ORIGIN, transform=t_gt)
    assert sitk.GetArrayViewFromImage(us_gland).sum() > 100  # the fixture maps the gland into the TRUS
    sitk.WriteImage(intensity(us_gland, 2), str(folder / "USVol.mhd"))
    write_binary_stl(mesh, folder / "segmentationrtss.uronav.stl")
    block, us2mr = uronav_files(t_gt, MR_ORIGIN)
    if "coreg" in files:
        np.savetxt(folder / "coreg.txt", block)
    if "refined" in files:
        np.savetxt(folder / "coreg_refined.txt", us2mr)


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2.0 * (x & y).sum() / (x.sum() + y.sum())


def check_sre_and_registrar(case, t_gt: RigidTransform):
    pts = case.surface_points
    assert sre(case.ground_truth, t_gt, pts) < 1e-6
    assert sre(case.ground_truth, case.ground_truth, pts) == pytest.approx(0.0, abs=1e-9)
    t = np.array([3.0, -4.0, 12.0])  # a pure translation in TRUS space moves every point by |t| = 13
    shifted = RigidTransform.from_params(np.r_[t, 0, 0, 0]) @ case.ground_truth
    assert sre(shifted, case.ground_truth, pts) == pytest.approx(13.0, abs=1e-9)
    result = get_registrar("identity").register(case, shifted)
    assert result.ok and result.transform.allclose(shifted)
    assert sre(result.transform, case.ground_truth, pts) == pytest.approx(13.0, abs=1e-9)


# --------------------------------------------------------------------------- paired layout
def test_paired_splits_labels_identity_ground_truth(tmp_path):
    from regkit.evaluation.measures import landmark_tre

    src = tmp_path / "nifti_data"
    gland = make_paired(src / "train", ["case000", "case001"])
    make_paired(src / "val", ["case002"])
    statuses = []
    ds = import_paired_folders(src, tmp_path / "out", progress=lambda cid, s: statuses.append((cid, s)))
    assert ds.splits["train"] == ["case000", "case001"] and ds.splits["val"] == ["case002"]
    assert ds.splits["test"] == []
    assert statuses == [("case000", "imported"), ("case001", "imported"), ("case002", "imported")]
    for cid in ds.case_ids():
        case = ds.load(cid)
        assert case.ground_truth.allclose(RigidTransform.identity())
        assert dice(case.fixed_label, gland) == 1.0  # channel 0 of the 4-D label, not the landmark channel
        assert case.moving_label is not None and dice(case.moving_label, gland) == 1.0
        assert ImageGeometry.of(case.fixed).matches(ImageGeometry.of(gland)) is None
        meta = json.loads((tmp_path / "out" / cid / "case.json").read_text())
        assert meta["importer"] == "paired" and meta["label_channels"] == {"mr": 2, "trus": 2} and "identity" in meta[
            "ground_truth_convention"]
        assert meta["landmarks"]["channels"] == [1]  # the landmark channel, present in both labels
        assert landmark_tre(case, case.ground_truth) == pytest.approx(0.0, abs=1e-9)
        assert landmark_tre(case, RigidTransform.from_params([3, 4, 0, 0, 0, 0])) == pytest.approx(5.0)
        check_sre_and_registrar(case, RigidTransform.identity())
    # re-running resumes: nothing is rewritten
    statuses.clear()
    import_paired_folders(src, tmp_path / "out", progress=lambda cid, s: statuses.append((cid, s)))
    assert [s for _, s in statuses] == ["skipped"] * 3


def test_paired_deepreg_naming_flat_split_and_3d_labels(tmp_path):
    src = tmp_path / "deepreg"
    make_paired(src, ["case000000"], naming="deepreg-mr-moving", labels_4d=False)
    # the MR (moving_images) gets a distinctive intensity so we can tell which side was taken as MR
    mr_path = src / "moving_images" / "case000000.nii.gz"
    mr = sitk.ReadImage(str(mr_path)) + 1000.0
    sitk.WriteImage(mr, str(mr_path))
    with pytest.raises(InputError, match="deepreg_mr_side"):
        import_paired_folders(src, tmp_path / "out")
    ds = import_paired_folders(src, tmp_path / "out", split="val", deepreg_mr_side="moving")
    assert ds.splits["val"] == ["case000000"]
    case = ds.load("case000000")
    assert sitk.GetArrayViewFromImage(case.fixed).min() >= 1000.0  # moving_images became the fixed MR
    assert sitk.GetArrayViewFromImage(case.moving).max() < 1000.0
    assert case.ground_truth.allclose(RigidTransform.identity())


def test_paired_mislabelled_layout(tmp_path):
    src = tmp_path / "bad"
    (src / "MR").mkdir(parents=True)
    (src / "US").mkdir()
    with pytest.raises(InputError, match="mr_images") as err:
        import_paired_folders(src, tmp_path / "out")
    assert str(src) in str(err.value) and "MR/" in str(err.value)
    make_paired(tmp_path / "nolabels", ["a"], skip={("mr_labels", "a")})
    assert not (tmp_path / "nolabels" / "mr_labels").exists()
    with pytest.raises(InputError, match="mr_labels/ folder is missing"):
        import_paired_folders(tmp_path / "nolabels", tmp_path / "out2")


def test_paired_missing_modality_keeps_earlier_cases_and_resumes(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_paired(src, ["a", "b", "c"], skip={("us_images", "b")})
    with pytest.raises(InputError) as err:
        import_paired_folders(src, out, split="train")
    message = str(err.value)
    assert "us_images/b" in message and "TRUS image" in message and "names not in all three: b" in message
    ds = load_dataset(out)  # case a was imported and stays loadable
    assert ds.splits["train"] == ["a"]
    assert ds.load("a").ground_truth is not None
    make_paired(tmp_path / "fix", ["b"])
    (src / "us_images" / "b.nii.gz").write_bytes((tmp_path / "fix" / "us_images" / "b.nii.gz").read_bytes())
    statuses = []
    ds = import_paired_folders(src, out, split="train", progress=lambda cid, s: statuses.append((cid, s)))
    assert statuses == [("a", "skipped"), ("b", "imported"), ("c", "imported")]
    assert ds.splits["train"] == ["a", "b", "c"]
    assert not list(out.glob(".*.partial"))


def test_paired_grid_mismatch(tmp_path):
    src = tmp_path / "src"
    make_paired(src, ["a"])
    us_path = src / "us_images" / "a.nii.gz"
    us = sitk.ReadImage(str(us_path))
    us.SetOrigin(tuple(np.array(us.GetOrigin()) + np.array([5.0, 0.0, 0.0])))
    sitk.WriteImage(us, str(us_path))
    with pytest.raises(InputError, match="grid differs") as err:
        import_paired_folders(src, tmp_path / "out")
    assert "us_images/a.nii.gz" in str(err.value)
    ds = import_paired_folders(src, tmp_path / "out", geometry="voxel")  # aligned voxel to voxel
    case = ds.load("a")
    assert ImageGeometry.of(case.moving).matches(ImageGeometry.of(case.fixed)) is None


# --------------------------------------------------------------------------- UroNav conventions
def test_uronav_conventions_agree():
    t_gt = known_transform(0)
    block, us2mr = uronav_files(t_gt, MR_ORIGIN)
    from_refined = ground_truth_from_us2mr(us2mr, MR_ORIGIN)
    from_coreg = ground_truth_from_uronav_coreg(block)
    assert from_refined.allclose(t_gt, atol=1e-9) and from_coreg.allclose(t_gt, atol=1e-9)
    # the lab's own use of us2mr: a TRUS point u maps to MR point us2mr(u) + O (its markers are STL − Offset)
    x = CENTRE + np.array([3.0, -2.0, 1.0])
    u = t_gt.apply(x)
    assert np.allclose(us2mr[:3, :3] @ u + us2mr[:3, 3] + MR_ORIGIN, x, atol=1e-9)


def test_uronav_round_trip(tmp_path, gland_mesh):
    src = tmp_path / "uronav_data"
    truths = {"Case0001": known_transform(1), "Case0007": known_transform(2)}
    make_uronav_case(src / "Case0001", truths["Case0001"], gland_mesh)  # both files: refined is preferred
    make_uronav_case(src / "Case0007", truths["Case0007"], gland_mesh, files=("coreg",))
    (src / "notes").mkdir()  # not a case folder: ignored
    ds = import_uronav(src, tmp_path / "out")
    assert ds.splits["test"] == ["Case0001", "Case0007"]
    mr_gland = ellipsoid(MR_SIZE, MR_SPACING, MR_ORIGIN)
    stl_points = read_mesh_points(src / "Case0001" / "segmentationrtss.uronav.stl")
    for cid, t_gt in truths.items():
        case = ds.load(cid)
        assert case.ground_truth.allclose(t_gt, atol=1e-6)
        assert case.files["surface"].name == "mr_surface.stl"
        assert np.array_equal(case.surface_points, stl_points)  # SRE runs on the original STL points
        assert dice(case.fixed_label, mr_gland) > 0.9  # the voxelised STL overlaps the analytic ellipsoid
        assert np.allclose(case.fixed.GetOrigin(), MR_ORIGIN, atol=1e-4)
        check_sre_and_registrar(case, t_gt)
    meta1 = json.loads((tmp_path / "out" / "Case0001" / "case.json").read_text())
    meta7 = json.loads((tmp_path / "out" / "Case0007" / "case.json").read_text())
    assert meta1["source"]["registration"].endswith("coreg_refined.txt")
    assert meta1["sre_vs_coreg_mm"] < 1e-6  # the two files of the consistent fixture agree
    assert meta7["source"]["registration"].endswith("coreg.txt") and "mr2us" in meta7["ground_truth_convention"]
    # forcing the UroNav file on case 1 gives the same ground truth
    ds2 = import_uronav(src / "Case0001", tmp_path / "out_coreg", registration="coreg")
    assert ds2.load("Case0001").ground_truth.allclose(truths["Case0001"], atol=1e-6)


def test_uronav_bad_coreg_keeps_earlier_cases_and_resumes(tmp_path, gland_mesh):
    src, out = tmp_path / "src", tmp_path / "out"
    make_uronav_case(src / "Case0001", known_transform(3), gland_mesh, files=("coreg",))
    make_uronav_case(src / "Case0002", known_transform(4), gland_mesh)
    good = (src / "Case0002" / "coreg_refined.txt").read_text()
    (src / "Case0002" / "coreg_refined.txt").write_text("1 0 0 0\n0 1 0 0\nnot a number\n")
    with pytest.raises(InputError) as err:
        import_uronav(src, out)
    assert "Case0002/coreg_refined.txt" in str(err.value)
    ds = load_dataset(out)
    assert ds.case_ids() == ["Case0001"] and ds.load("Case0001").ground_truth is not None
    (src / "Case0002" / "coreg_refined.txt").write_text("1 2 3\n")
    with pytest.raises(InputError, match="4 rows of 4"):
        import_uronav(src, out)
    (src / "Case0002" / "coreg_refined.txt").write_text(good)
    statuses = []
    ds = import_uronav(src, out, progress=lambda cid, s: statuses.append((cid, s)))
    assert statuses == [("Case0001", "skipped"), ("Case0002", "imported")]
    assert ds.load("Case0002").ground_truth.allclose(known_transform(4), atol=1e-6)


def test_uronav_missing_modality_and_mislabelled_layout(tmp_path, gland_mesh):
    src = tmp_path / "src"
    make_uronav_case(src / "Case0001", known_transform(5), gland_mesh)
    for name in ("USVol.mhd", "USVol.zraw", "USVol.raw"):
        (src / "Case0001" / name).unlink(missing_ok=True)
    with pytest.raises(InputError, match="no TRUS image") as err:
        import_uronav(src, tmp_path / "out")
    assert "Case0001/USVol.mhd" in str(err.value)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="no UroNav case folders") as err:
        import_uronav(tmp_path / "empty", tmp_path / "out2")
    assert "images/" in str(err.value)


def test_uronav_direction_kept_or_ignored(tmp_path, gland_mesh):
    src = tmp_path / "src"
    make_uronav_case(src / "Case0001", known_transform(7), gland_mesh, files=("coreg",))
    mr = sitk.ReadImage(str(src / "Case0001" / "MRVol.mhd"))
    th = np.deg2rad(3.0)  # a small TransformMatrix rotation: the surface stays inside the MR volume
    mr.SetDirection([np.cos(th), -np.sin(th), 0, np.sin(th), np.cos(th), 0, 0, 0, 1])
    sitk.WriteImage(mr, str(src / "Case0001" / "MRVol.mhd"))
    with pytest.warns(UserWarning, match="TransformMatrix"):
        ds = import_uronav(src, tmp_path / "kept")
    assert np.allclose(ds.load("Case0001").fixed.GetDirection(), mr.GetDirection(), atol=1e-6)
    ds = import_uronav(src, tmp_path / "ignored", ignore_direction=True)
    assert np.allclose(ds.load("Case0001").fixed.GetDirection(), np.eye(3).ravel(), atol=1e-6)
    meta = json.loads((tmp_path / "ignored" / "Case0001" / "case.json").read_text())
    assert "ignored" in meta["direction"] and "TransformMatrix ignored" in meta["notes"][0]


def test_import_into_existing_dataset_merges_and_detects_clashes(tmp_path, gland_mesh):
    out = tmp_path / "out"
    make_paired(tmp_path / "p", ["a"])
    make_uronav_case(tmp_path / "u" / "Case0001", known_transform(6), gland_mesh, files=("coreg",))
    import_paired_folders(tmp_path / "p", out, split="train")
    ds = import_uronav(tmp_path / "u", out, split="test")
    assert ds.splits["train"] == ["a"] and ds.splits["test"] == ["Case0001"]
    assert len(json.loads((out / "dataset.json").read_text())["imported_from"]) == 2
    make_paired(tmp_path / "p2", ["a"])  # another source with a clashing case name
    with pytest.raises(InputError, match="another source"):
        import_paired_folders(tmp_path / "p2", out)
    ds = import_paired_folders(tmp_path / "p2", out, prefix="p2_")
    assert ds.splits["test"] == ["Case0001", "p2_a"]


# --------------------------------------------------------------------------- voxeliser and STL
def test_label_from_mesh_is_exact_on_its_own_grid_and_handles_rotated_grids(gland_mesh):
    label = ellipsoid(MR_SIZE, MR_SPACING, MR_ORIGIN)
    pts, faces = label_mesh(label)  # vertices lie on grid lines: the rays must miss them
    assert dice(label_from_mesh(pts, faces, label), label) == 1.0
    th = np.deg2rad(25.0)
    direction = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    ref = make_image(np.zeros(MR_SIZE[::-1], np.uint8), MR_SPACING, CENTRE - direction @ [18, 16, 15], direction)
    geo = ImageGeometry.of(ref)
    zz, yy, xx = np.indices(MR_SIZE[::-1])
    p = geo.to_physical(np.stack([xx, yy, zz], -1).reshape(-1, 3))
    analytic = make_image(((((p - CENTRE) / RADII) ** 2).sum(1) <= 1).reshape(MR_SIZE[::-1]).astype(np.uint8),
                          MR_SPACING, geo.origin, direction)
    voxelised = label_from_mesh(*gland_mesh, ref)
    assert ImageGeometry.of(voxelised).matches(geo) is None
    assert dice(voxelised, analytic) > 0.95
    outside = label_from_mesh(gland_mesh[0] + 500.0, gland_mesh[1], ref)
    assert sitk.GetArrayViewFromImage(outside).sum() == 0


def test_read_stl_binary_and_ascii(tmp_path, gland_mesh):
    pts, faces = gland_mesh
    write_binary_stl(gland_mesh, tmp_path / "b.stl")
    write_mesh(pts, faces, tmp_path / "a.stl")  # meshio writes ASCII STL by default
    for name in ("a.stl", "b.stl"):
        p, f = read_mesh(tmp_path / name)
        assert len(f) == len(faces)
        assert np.allclose(p, read_mesh_points(tmp_path / name), atol=1e-5)
    (tmp_path / "bad.stl").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match=r"bad\.stl"):
        read_mesh(tmp_path / "bad.stl")


# --------------------------------------------------------------------------- command line
def test_cli_import_paired(tmp_path):
    from click.testing import CliRunner

    from regkit.app.cli_import import import_group

    make_paired(tmp_path / "src", ["a"])
    result = CliRunner().invoke(import_group, ["paired", str(tmp_path / "src"), str(tmp_path / "out"),
                                               "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "imported 1" in result.output and "val 1" in result.output
    assert load_dataset(tmp_path / "out").splits["val"] == ["a"]


def test_cli_module_starts_without_heavy_imports():
    code = "import sys, regkit.app.cli_import; print(sorted({'SimpleITK', 'numpy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
