"""Images keep their geometry; cases and datasets load, and bad input gets errors naming the file."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from regkit import RigidTransform, load_dataset
from regkit.case import load_case
from regkit.dataset import write_case, write_manifest
from regkit.errors import InputError
from regkit.image import ImageGeometry, check_image_file, make_image, read_image, write_image
from regkit.surface import label_mesh, read_mesh_points, surface_from_label, write_mesh
from regkit.transform import rotation_matrix


def oblique_image(shape=(20, 24, 28), spacing=(0.7, 0.9, 2.5), label=False):
    rng = np.random.default_rng(0)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    if label:
        a = (((xx - 14) / 8.0) ** 2 + ((yy - 12) / 6.0) ** 2 + ((zz - 10) / 5.0) ** 2 < 1).astype(np.uint8)
    else:
        a = rng.normal(100, 20, shape).astype(np.float32)
    return make_image(a, spacing, origin=(-12.5, 40.0, 7.25), direction=rotation_matrix([10, -20, 35]))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"])
def test_image_round_trip_keeps_geometry(tmp_path, suffix):
    img = oblique_image()
    p = write_image(img, tmp_path / f"im{suffix}")
    back = read_image(p)
    g0, g1 = ImageGeometry.of(img), ImageGeometry.of(back)
    assert g0.matches(g1, tolerance=1e-5) is None
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(img), sitk.GetArrayViewFromImage(back))
    assert not list(tmp_path.glob(".*tmp*"))


def test_geometry_index_physical_round_trip():
    geo = ImageGeometry.of(oblique_image())
    idx = np.array([[0, 0, 0], [3.5, 2.25, 7.0]])
    np.testing.assert_allclose(geo.to_index(geo.to_physical(idx)), idx, atol=1e-10)
    img = oblique_image()
    np.testing.assert_allclose(geo.to_physical(idx[1]), img.TransformContinuousIndexToPhysicalPoint(idx[1].tolist()),
                               atol=1e-10)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.nii.gz.*does not exist"):
        read_image(tmp_path / "missing.nii.gz", "MR image")
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputError, match="junk.nii.gz: cannot read the MR image"):
        read_image(tmp_path / "junk.nii.gz", "MR image")


@pytest.mark.parametrize("dtype,name", [(np.int16, "mr.nii"), (np.uint8, "label.nii"), (np.float32, "mr.nii"),
                                        (np.int16, "plain.nii.gz")])
def test_an_uncompressed_nifti_cut_short_is_refused(tmp_path, dtype, name):
    # integer voxels are checked from the header and the file's size alone, floating ones while looking for NaN;
    # "plain.nii.gz" is an uncompressed file named .gz, which ITK reads too
    path = tmp_path / name
    write_image(make_image(np.arange(4 * 5 * 6).reshape(4, 5, 6).astype(dtype), (1.0, 1.0, 2.0)), tmp_path / "a.nii",
                compress=False).rename(path)
    check_image_file(path, "MR image")
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])
    with pytest.raises(InputError, match=f"{name}: the MR image file is cut short: it holds {len(whole) - 7} bytes, "
                                         f"but its NIfTI header announces {len(whole)}"):
        check_image_file(path, "MR image")
    path.write_bytes(whole[:200])  # not even a whole header: ITK's reader names it
    check_image_file(path, "MR image")
    with pytest.raises(InputError, match=f"{name}: cannot read the MR image"):
        read_image(path, "MR image")


def test_surface_from_label_is_on_the_boundary_and_mesh_files_agree(tmp_path):
    # a sphere of radius 10 mm on a 0.5 mm grid
    n = 48
    zz, yy, xx = (np.mgrid[:n, :n, :n] - (n - 1) / 2) * 0.5
    lab = make_image((np.sqrt(xx**2 + yy**2 + zz**2) < 10).astype(np.uint8), (0.5, 0.5, 0.5), origin=(5, 6, 7))
    pts = surface_from_label(lab)
    centre = ImageGeometry.of(lab).center
    r = np.linalg.norm(pts - centre, axis=1)
    assert abs(r.mean() - 10.0) < 0.3 and r.std() < 0.3
    verts, faces = label_mesh(lab)
    for suffix in (".stl", ".vtk"):
        p = write_mesh(verts, faces, tmp_path / f"s{suffix}")
        np.testing.assert_allclose(np.sort(read_mesh_points(p), axis=0), np.sort(np.unique(verts, axis=0), axis=0),
                                   atol=1e-4)


@pytest.fixture()
def case_files(tmp_path, phantom_case):
    folder = write_case(phantom_case, tmp_path / "c")
    return folder


def test_case_round_trip(case_files, phantom_case):
    c = load_case("x", case_files / "mr.nii.gz", case_files / "trus.nii.gz", case_files / "mr_label.nii.gz",
                  case_files / "ground_truth.txt", moving_label=case_files / "trus_label.nii.gz")
    np.testing.assert_allclose(c.ground_truth.matrix, phantom_case.ground_truth.matrix, atol=1e-12)
    np.testing.assert_allclose(c.surface_points, phantom_case.surface_points, atol=1e-6)
    assert ImageGeometry.of(c.moving).matches(ImageGeometry.of(phantom_case.moving)) is None


def test_case_errors_name_the_file(case_files, tmp_path):
    mr, us, lab = case_files / "mr.nii.gz", case_files / "trus.nii.gz", case_files / "mr_label.nii.gz"
    # a label on another grid
    bad = sitk.GetArrayFromImage(read_image(lab))
    shifted = make_image(bad, (1, 1, 1), origin=(0, 0, 0))
    write_image(shifted, tmp_path / "wrong_label.nii.gz")
    with pytest.raises(InputError, match="wrong_label.nii.gz: the MR label's geometry does not match"):
        load_case("x", mr, us, tmp_path / "wrong_label.nii.gz")
    # an empty label
    empty = sitk.Image(read_image(lab))
    write_image(empty * 0, tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="empty.nii.gz: the MR prostate label is empty"):
        load_case("x", mr, us, tmp_path / "empty.nii.gz")
    # a ground truth that is not rigid, or singular
    (tmp_path / "scaled.txt").write_text("1.2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(InputError, match="scaled.txt: the transform is not rigid"):
        load_case("x", mr, us, lab, tmp_path / "scaled.txt")
    (tmp_path / "singular.txt").write_text("0 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(InputError, match="singular.txt: .*singular"):
        load_case("x", mr, us, lab, tmp_path / "singular.txt")
    with pytest.raises(InputError, match="nothere.nii.gz: the TRUS image file does not exist"):
        load_case("x", mr, tmp_path / "nothere.nii.gz", lab)


def test_dataset_layout_and_manifest_errors(tmp_path, phantom_case):
    root = tmp_path / "ds"
    write_case(phantom_case, root / "a")
    write_case(phantom_case, root / "b")
    write_manifest(root, {"train": ["a"], "test": ["b"]})
    ds = load_dataset(root)
    assert ds.case_ids() == ["a", "b"] and ds.case_ids("test") == ["b"]
    assert len(ds) == 2 and ds["b"].case_id == "b"
    with pytest.raises(InputError, match="no split 'val'"):
        ds.case_ids("val")
    (root / "a" / "trus.nii.gz").unlink()
    with pytest.raises(InputError, match="case 'a' has no moving image"):
        load_dataset(root).load("a")
    doc = json.loads((root / "dataset.json").read_text())
    doc["splits"]["test"].append("ghost")
    (root / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="ghost"):
        load_dataset(root)
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(InputError, match="dataset.json: the manifest is not valid JSON"):
        load_dataset(root)
    shutil.rmtree(root)
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(root)


def test_case_with_mesh_surface_and_overrides(tmp_path, phantom_case):
    root = tmp_path / "ds"
    write_case(phantom_case, root / "a")
    verts, faces = label_mesh(phantom_case.fixed_label)
    write_mesh(verts, faces, root / "a" / "mr_surface.stl")
    (root / "a" / "mr.nii.gz").rename(root / "elsewhere_mr.nii.gz")
    write_manifest(root, {"test": ["a"]}, cases={"a": {"fixed": "elsewhere_mr.nii.gz"}})
    c = load_dataset(root).load("a")
    assert c.files["surface"].name == "mr_surface.stl"
    assert len(c.surface_points) == len(np.unique(verts, axis=0))
    assert c.files["fixed"].name == "elsewhere_mr.nii.gz"
    assert isinstance(c.ground_truth, RigidTransform)
