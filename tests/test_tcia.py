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


# --------------------------------------------------------------------------- a collection in the published layout
PHANTOM_SEEDS = (0, 1)  # phantoms without probe deformation (tests/layouts/common.py), two patients each


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    from layouts.common import phantom
    from layouts.tcia import write_tcia_collection

    cases = [phantom(seed)[0] for seed in PHANTOM_SEEDS]
    return write_tcia_collection(tmp_path_factory.mktemp("tcia-download"), cases, seed=5, patients_per_case=2)


@pytest.fixture(scope="session")
def imported(collection, tmp_path_factory):
    """The collection imported as a user would: ``regkit import tcia SRC OUT``."""
    from click.testing import CliRunner

    from regkit.app.cli import main
    from regkit.dataset import load_dataset

    out = tmp_path_factory.mktemp("tcia-imported") / "data"
    result = CliRunner().invoke(main, ["import", "tcia", str(collection.root), str(out)])
    assert result.exit_code == 0, result.output
    assert "imported 4, kept 0" in result.output and "TRUS frame: centred" in result.output
    return load_dataset(out)


def test_import_recovers_the_known_offsets(collection, imported):
    """Every patient becomes a case whose reference (from the two prostate STLs) is the known offset: reference
    SRE ≤ 0.5 mm on at least 90% of the cases, nothing flagged; the targets on both series are its landmarks."""
    from regkit.evaluation.measures import landmark_tre
    from regkit.sre import sre

    assert sorted(imported.splits["test"]) == [p.patient for p in collection.patients]
    errors = []
    for truth in collection.patients:
        case = imported.load(truth.patient)
        errors.append(float(sre(case.ground_truth, truth.offset, truth.mr_surface)))
        meta = case.metadata
        assert meta["trus_frame"] == "centred" and meta["reference"]["flags"] == {}
        assert meta["source"]["mr_series"] == truth.mr_series_uid and meta["source"]["trus_series"] == \
            truth.us_series_uid
        assert (imported.root / truth.patient / "mr_surface.stl").read_bytes()[:21] == b"Created by stlwrite.m"
        assert case.moving_label is not None and meta["reference"]["dice"] > 0.9
        if truth.trus_targets:
            assert meta["landmarks"]["names"] == ["Target1"]
            assert landmark_tre(case, truth.offset) < 0.05  # the centroids of the two target surfaces
        else:
            assert "landmarks" not in meta and "Target1" in meta["landmarks_skipped"]
    assert np.mean(np.array(errors) <= 0.5) >= 0.9, errors


def test_a_second_import_resumes(collection, imported):
    from regkit.importers import import_tcia

    statuses = []
    import_tcia(collection.root, imported.root, progress=lambda case_id, status: statuses.append(status))
    assert statuses == ["skipped"] * 4


@pytest.mark.slow
def test_compare_runs_on_the_imported_cases(imported, tmp_path):
    """``regkit compare --data IMPORTED --methods identity,mi --init 8mm`` on two cases: identity stays at the
    8 mm start (the reference is the ground truth SRE is measured against) and MI runs."""
    import pandas as pd
    from click.testing import CliRunner

    from regkit.app.cli import main

    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", "--data", str(imported.root), "--methods", "identity,mi",
                                       "--init", "8mm", "--cases", "2", "-k", "1", "-j", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["method"]) == {"identity", "mi"} and rows["case"].nunique() == 2
    identity = rows[rows["method"] == "identity"]
    assert np.allclose(identity["final_sre"], 8.0, atol=0.05), identity
    assert np.isfinite(rows[rows["method"] == "mi"]["final_sre"]).all()
    with_targets = rows[rows["case"] == "Prostate-MRI-US-Biopsy-0001"]  # Target1 on both series: landmark TRE
    assert with_targets["landmark_tre_mm"].notna().all()


# --------------------------------------------------------------------------- other layouts, options and bad inputs
def subset(collection, root: Path, patients: list[str]) -> Path:
    """A copy of the download holding only ``patients``' DICOM folders and STL files (same layout)."""
    import shutil

    for patient in patients:
        shutil.copytree(collection.dicom_root / patient,
                        root / collection.dicom_root.relative_to(collection.root) / patient)
        for stl in collection.stl_dir.glob(f"{patient}-*.STL"):
            (root / "STLs" / "STLs").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stl, root / "STLs" / "STLs" / stl.name)
    return root


def test_idc_folders_and_the_dicom_trus_frame(tmp_path):
    """IDC's folder tree (folders named by UIDs, files by UUIDs) imports the same way, since only the headers are
    read; TRUS surfaces in the frame GDCM reads import with ``trus_frame="dicom"``, and the default ``"centred"``
    stops with an error that names the frame that fits."""
    from layouts.common import phantom
    from layouts.tcia import write_tcia_collection

    from regkit.errors import InputError
    from regkit.importers import import_tcia
    from regkit.sre import sre

    col = write_tcia_collection(tmp_path / "idc", [phantom(PHANTOM_SEEDS[0])[0]], seed=9, patients_per_case=1,
                                layout="idc", trus_frame="dicom")
    with pytest.raises(InputError, match="trus_frame='centred'") as err:
        import_tcia(col.root, tmp_path / "wrong")
    assert "--trus-frame dicom" in str(err.value)
    ds = import_tcia(col.root, tmp_path / "out", trus_frame="dicom")
    truth = col.patients[0]
    case = ds.load(truth.patient)
    assert case.metadata["trus_frame"] == "dicom"
    assert float(sre(case.ground_truth, truth.offset, truth.mr_surface)) <= 0.5


def test_an_mr_surface_outside_its_series_is_refused(collection, tmp_path):
    """An MR STL that is not in its series' patient frame (here 150 mm off, as a surface relative to another origin
    would be) is refused, naming the file. (A RAS copy could not be told this way: the prostate sits near the
    scanner's x = y = 0, so negating x and y keeps it inside the volume; the collection's frame is checked against
    the IDC label maps above.)"""
    from layouts.tcia import stl_name, write_stlwrite

    from regkit.errors import InputError
    from regkit.importers import import_tcia

    truth = collection.patients[0]
    root = subset(collection, tmp_path / "src", [truth.patient])
    path = root / "STLs" / "STLs" / stl_name(truth.patient, "ProstateSurface", truth.mr_series_uid)
    points, faces = read_mesh(path)
    write_stlwrite(path, points + [150.0, 0.0, 0.0], faces)
    with pytest.raises(InputError, match="MR prostate surface lies inside its series' volume") as err:
        import_tcia(root, tmp_path / "out")
    assert "LPS patient coordinates" in str(err.value) and path.name in str(err.value)


def test_incomplete_patients_are_named_or_skipped(collection, tmp_path):
    """A TRUS series without its prostate STL stops the import with the series' folder and the STL name expected;
    ``skip_incomplete`` imports the other patients and warns. STLs of patients not downloaded are ignored; an STL
    of a downloaded patient naming a series that is not there is an error naming the STL."""
    from layouts.tcia import stl_name

    from regkit.errors import InputError
    from regkit.importers import import_tcia

    good, bad = collection.patients[1], collection.patients[3]
    root = subset(collection, tmp_path / "src", [good.patient, bad.patient])
    stls = root / "STLs" / "STLs"
    (stls / stl_name(bad.patient, "ProstateSurface", bad.us_series_uid)).unlink()
    (stls / stl_name("Prostate-MRI-US-Biopsy-0999", "ProstateSurface", "1.2.3.4")).write_bytes(b"not downloaded")
    with pytest.raises(InputError, match=f"patient {bad.patient} has no TRUS series with a prostate surface") as err:
        import_tcia(root, tmp_path / "out")
    assert stl_name(bad.patient, "ProstateSurface", bad.us_series_uid) in str(err.value)
    assert "--skip-incomplete" in str(err.value)
    with pytest.warns(UserWarning, match=bad.patient):
        ds = import_tcia(root, tmp_path / "out", skip_incomplete=True)
    assert ds.splits["test"] == [good.patient]

    stray = stls / stl_name(good.patient, "Target2", "1.2.826.0.1.99")
    stray.write_bytes(b"")
    with pytest.raises(InputError, match="not among the downloaded DICOM") as err:
        import_tcia(root, tmp_path / "again")
    assert stray.name in str(err.value)


def test_cases_pair_each_trus_with_the_latest_mr_before_it():
    """Two MRs and two TRUS of one patient: each TRUS is paired with the latest MR acquired on or before it, the
    second TRUS's case is ``<patient>-us2``; targets drawn on one side only are kept as one-sided."""
    from regkit.errors import InputError
    from regkit.importers.dicom import DicomSeries
    from regkit.importers.tcia import StlFile, plan_cases

    patient = "Prostate-MRI-US-Biopsy-0007"

    def series(uid, modality, date):
        return DicomSeries(uid, Path(uid), [Path(uid) / "1.dcm"],
                           {"0008|0060": modality, "0010|0020": patient, "0008|0020": date})

    found = {s.uid: s for s in (series("1.1", "MR", "20090101"), series("1.2", "MR", "20110101"),
                                series("2.1", "US", "20100101"), series("2.2", "US", "20120101"))}
    stls = [StlFile(Path(f"{uid}.STL"), patient, "ProstateSurface", uid) for uid in found]
    stls.append(StlFile(Path("t.STL"), patient, "Target1", "1.2"))
    cases, left_out = plan_cases(found, stls)
    assert [(c.case_id, c.mr.uid, c.us.uid) for c in cases] == [(patient, "1.1", "2.1"),
                                                                (f"{patient}-us2", "1.2", "2.2")]
    assert cases[1].targets["Target1"][1] is None and left_out == []
    with pytest.raises(InputError, match="has target surfaces but no prostate surface"):
        plan_cases(found, stls[1:] + [StlFile(Path("u.STL"), patient, "Target1", "1.1")])
