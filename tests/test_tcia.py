"""The TCIA Prostate-MRI-US-Biopsy importer: the collection's real STL files against someone else's conversion,
and a fixture in the published layout imported end to end (see :mod:`regkit.importers.tcia` for the conventions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from regkit.surface import label_from_mesh, read_mesh


# --------------------------------------------------------------------------- the real sample
def sample_pairs(shared_data: Path) -> list[tuple[Path, Path]]:
    """(STL, label map) pairs of ``tcia_biopsy_sample``: each label map sits in ``<kind>_labelmaps/`` under the
    STL's name with ``.nii.gz``."""
    root = shared_data / "tcia_biopsy_sample"
    if not root.is_dir():
        pytest.skip("../shared/data/tcia_biopsy_sample is not present")
    pairs = []
    for stl in sorted(root.glob("*_STL/*.STL")):
        label = stl.parent.with_name(stl.parent.name.replace("_STL", "_labelmaps")) / (stl.stem + ".nii.gz")
        pairs.append((stl, label))
    assert len(pairs) == 2 and all(label.exists() for _, label in pairs)
    return pairs


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


@pytest.mark.parametrize("flip", [False, True], ids=["lps", "xy-flipped"])
def test_stl_reproduces_the_idc_label_maps(shared_data, flip):
    """Each real STL, read as LPS millimetres and voxelised onto the grid of the Imaging Data Commons team's label
    map (their conversion: 3D Slicer, reference = the T2 series the STL names), reproduces that map (Dice ≥ 0.95).
    Negating x and y (reading the STL as RAS) must break it: the check can fail."""
    for stl, label_path in sample_pairs(shared_data):
        reference = sitk.ReadImage(str(label_path))
        truth = sitk.GetArrayViewFromImage(reference) > 0
        points, faces = read_mesh(stl)
        if flip:
            points = points * np.array([-1.0, -1.0, 1.0])
        mine = sitk.GetArrayFromImage(label_from_mesh(points, faces, reference)) > 0
        score = dice(mine, truth)
        if flip:
            assert score < 0.5, f"{stl.name}: Dice {score:.3f} with x and y negated"
        else:
            assert score >= 0.95, f"{stl.name}: Dice {score:.3f}"


# --------------------------------------------------------------------------- conventions, one by one
def test_stl_names_give_patient_structure_and_series():
    from regkit.importers.tcia import parse_stl_name

    uid = "1.3.6.1.4.1.14519.5.2.1.86468801022876021368602404390378084388"
    stl = parse_stl_name(f"/x/Prostate-MRI-US-Biopsy-0464-ProstateSurface-seriesUID-{uid}.STL")
    assert (stl.patient, stl.structure, stl.series_uid, stl.is_prostate) == (
        "Prostate-MRI-US-Biopsy-0464", "ProstateSurface", uid, True)
    target = parse_stl_name(f"Prostate-MRI-US-Biopsy-0126-target12-seriesUID-{uid}.stl")
    assert (target.structure, target.is_prostate) == ("Target12", False)
    assert parse_stl_name("Prostate.STL") is None
    assert parse_stl_name(f"Prostate-MRI-US-Biopsy-0126-Lesion-seriesUID-{uid}.STL") is None


def test_stlwrite_files_read_back_in_mm(tmp_path, shared_data):
    """The fixture's writer makes what the collection ships (the real sample's header, record size and outward
    normals), and regkit reads it back to the float32 precision of the format."""
    from layouts.tcia import write_stlwrite

    real = next((shared_data / "tcia_biopsy_sample" / "prostate_STL").glob("*.STL")).read_bytes()
    points, faces = read_mesh(next((shared_data / "tcia_biopsy_sample" / "prostate_STL").glob("*.STL")))
    path = write_stlwrite(tmp_path / "copy.STL", points, faces)
    mine = path.read_bytes()
    assert mine[:22] == real[:22] == b"Created by stlwrite.m " and len(mine) == len(real)
    back, back_faces = read_mesh(path)
    assert len(back_faces) == len(faces) and np.abs(back - points).max() < 1e-4


def _multiframe(tmp_path, rng, size_frc=(7, 9, 11), pixel=(0.3, 0.25), thickness=0.4):
    from layouts.tcia import write_us_multiframe

    from regkit.importers.dicom import index_series

    array = rng.integers(0, 255, size_frc).astype(np.uint8)
    tags = {"0008|0060": "US", "0008|0016": "1.2.840.10008.5.1.4.1.1.3.1", "0020|000d": "1.2.3",
            "0020|000e": "1.2.3.4", "0010|0020": "Prostate-MRI-US-Biopsy-0001"}
    write_us_multiframe(tmp_path / "us" / "1-1.dcm", array, (pixel[1], pixel[0], thickness), tags)
    return array, index_series(tmp_path / "us")["1.2.3.4"]


def test_centred_trus_frame_is_the_conversion_scripts(tmp_path):
    """``trus_frame="centred"`` puts every voxel where the public conversion script does: its recipe, redone here
    with numpy (transpose the (frame, row, column) array to (column, frame, row), flip the first two axes, spacing
    (PixelSpacing[0], SliceThickness, PixelSpacing[1]), origin −size·spacing/2), samples the same values."""
    from regkit.importers.tcia import read_trus

    rng = np.random.default_rng(3)
    array, series = _multiframe(tmp_path, rng)
    mine, _ = read_trus(series, "centred")
    script = np.flip(np.flip(np.transpose(array, (2, 0, 1)), 1), 0)
    theirs = sitk.GetImageFromArray(np.ascontiguousarray(script))
    spacing = (0.3, 0.4, 0.25)
    theirs.SetSpacing(spacing)
    theirs.SetOrigin(tuple(-s * n * 0.5 for s, n in zip(spacing, theirs.GetSize(), strict=True)))
    for index in rng.integers(0, np.array(theirs.GetSize()), (40, 3)):
        point = theirs.TransformIndexToPhysicalPoint([int(v) for v in index])
        assert mine[mine.TransformPhysicalPointToIndex(point)] == theirs[[int(v) for v in index]]
    assert np.isclose(np.linalg.det(np.reshape(mine.GetDirection(), (3, 3))), 1.0)


def test_trus_voxel_size_comes_from_its_tags(tmp_path):
    from regkit.errors import InputError
    from regkit.importers.tcia import read_trus, trus_spacing

    _, series = _multiframe(tmp_path, np.random.default_rng(0), pixel=(0.3, 0.25), thickness=0.4)
    raw = sitk.ReadImage(str(series.files[0]))
    assert raw.GetSpacing()[2] == 1.0  # GDCM ignores SliceThickness for a multi-frame ultrasound file
    image, _ = read_trus(series, "dicom")
    assert np.allclose(image.GetSpacing(), (0.25, 0.3, 0.4)) and image.GetSize() == (11, 9, 7)
    assert trus_spacing({"1129|1016": "0.2 "}, series.files[0]) == (0.2, 0.2, 0.2)  # the private voxel size
    assert trus_spacing({}, series.files[0], (0.5, 0.5, 1)) == (0.5, 0.5, 1.0)
    with pytest.raises(InputError, match="no usable voxel size") as err:
        trus_spacing({"0028|0030": "0.3\\0.25"}, series.files[0])
    assert "trus_spacing" in str(err.value)


def test_mr_series_with_a_missing_slice_is_refused(tmp_path):
    from layouts.tcia import write_mr_series

    from regkit.errors import InputError
    from regkit.image import make_image
    from regkit.importers.dicom import index_series, read_volume

    mr = make_image(np.random.default_rng(0).integers(0, 500, (6, 12, 10)).astype(np.int16), (0.7, 0.8, 2.0),
                    (1.0, 2.0, 3.0))
    tags = {"0008|0060": "MR", "0008|0016": "1.2.840.10008.5.1.4.1.1.4", "0020|000d": "1.2.9", "0020|000e": "1.2.9.1"}
    files = write_mr_series(tmp_path / "mr", mr, tags, lambda k: f"1-{k + 1:02d}.dcm")
    image = read_volume(index_series(tmp_path)["1.2.9.1"], "MR")
    assert np.allclose(image.GetSpacing(), (0.7, 0.8, 2.0)) and np.allclose(image.GetOrigin(), (1.0, 2.0, 3.0))
    files[3].unlink()
    with pytest.raises(InputError, match="mixed slice spacings") as err:
        read_volume(index_series(tmp_path)["1.2.9.1"], "MR")
    assert str(tmp_path / "mr") in str(err.value)
