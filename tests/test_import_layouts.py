"""µ-RegPro and DeepReg end to end, as a user would: data sets written in the published layouts (tests/layouts) with
known rigid offsets, imported, the reference checked against the offsets, the flags against flipped and wrongly
paired data, the errors against bad layouts; then compare and train run on the imported data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from layouts.common import flipped, make_pair, phantom, sre_of
from layouts.deepreg import make_deepreg
from layouts.muregpro import make_muregpro

from regkit.errors import InputError
from regkit.importers import import_deepreg, import_muregpro, import_paired_folders
from regkit.importers.labels import corresponding_landmarks
from regkit.importers.reference import reference_from_labels, reference_from_surfaces
from regkit.transform import RigidTransform

SEEDS = (0, 1)


def truth_surface(pair_offset_seed: int) -> np.ndarray:
    return phantom(pair_offset_seed)[1][0]


@pytest.fixture(scope="session")
def muregpro_data(tmp_path_factory):
    """Ten µ-RegPro cases (7 train, 3 val) at the challenge's grids, and their import."""
    root = tmp_path_factory.mktemp("muregpro")
    pairs = make_muregpro(root / "download", cases=10, seeds=SEEDS, val=3)
    ds = import_muregpro(root / "download", root / "imported")
    return root, pairs, ds


def landmarks_of(pair, count=None):
    n = len(pair.mr_labels) if count is None else count + 1
    return corresponding_landmarks({f"c{k}": im for k, im in enumerate(pair.mr_labels[1:n], 1)},
                                   {f"c{k}": im for k, im in enumerate(pair.us_labels[1:n], 1)})


# --------------------------------------------------------------------------- µ-RegPro
@pytest.mark.slow
def test_muregpro_import_recovers_the_known_offsets(muregpro_data):
    root, pairs, ds = muregpro_data
    assert ds.splits["train"] == [f"case{i:06d}" for i in range(7)]
    assert ds.splits["val"] == [f"case{i:06d}" for i in range(7, 10)]
    errors = []
    for i, cid in enumerate(ds.case_ids()):
        case = ds.load(cid)
        pts = truth_surface(SEEDS[i % len(SEEDS)])
        errors.append(sre_of(case.ground_truth, pairs[cid].offset, pts))
        meta = json.loads((root / "imported" / cid / "case.json").read_text())
        ref = meta["reference"]
        assert ref["method"] == ("landmarks+surfaces" if len(pairs[cid].names) >= 3 else "surfaces")
        assert not ref["flags"] or ref["flags"].keys() == {"few-landmarks"}, (cid, ref["flags"])
        assert case.fixed.GetSize() == (120, 128, 128) and case.moving.GetSize() == (81, 118, 88)
        if "landmarks" in meta:  # corresponding points in mm: the ground truth maps one set onto the other
            from regkit.evaluation.measures import landmark_tre

            fixed = np.array(meta["landmarks"]["fixed"])
            assert landmark_tre(case, case.ground_truth) < 0.3
            assert landmark_tre(case, RigidTransform.from_params([3, 4, 0, 0, 0, 0]) @ case.ground_truth) == \
                pytest.approx(5.0, abs=0.3)  # a 5 mm shift reads 5: millimetres, not voxels
            assert np.allclose(pairs[cid].offset.apply(fixed), meta["landmarks"]["moving"], atol=0.3)
    assert np.mean(np.array(errors) <= 0.5) >= 0.9, errors
    case1 = json.loads((root / "imported" / "case000001" / "case.json").read_text())
    assert case1["landmarks"]["skipped"] == {"channel5": "empty in the TRUS label"}
    assert case1["landmarks"]["channels"] == [1, 2, 3, 4]
    report = (root / "imported" / "import_report.csv").read_text().splitlines()
    assert report[0].startswith("case,split,importer,reference") and len(report) == 11


@pytest.mark.slow
def test_muregpro_resumes_inspects_and_refuses_bad_layouts(muregpro_data, tmp_path):
    from click.testing import CliRunner

    from regkit.app.cli import main

    root, _, _ = muregpro_data
    r = CliRunner().invoke(main, ["import", "muregpro", str(root / "download"), str(root / "imported")])
    assert r.exit_code == 0, r.output
    assert r.output.count("skipped") == 10 and "2 of 10 cases flagged" in r.output  # the 2-landmark cases
    assert r.output.count("few-landmarks:") == 2
    r = CliRunner().invoke(main, ["inspect", str(root / "imported"), "--case", "case000000", "--out",
                                  str(tmp_path / "ov")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ov" / "case000000.png").stat().st_size > 10_000

    bad = tmp_path / "bad" / "nifti_data" / "train"
    shutil.copytree(root / "download" / "nifti_data" / "val", bad)
    (bad / "mr_images").rename(bad / "MR_Images")
    with pytest.raises(InputError, match="rename MR_Images/ to mr_images/"):
        import_muregpro(tmp_path / "bad", tmp_path / "o1")
    (bad / "MR_Images").rename(bad / "mr_images")
    (bad / "us_images" / "case000008.nii.gz").unlink()
    with pytest.raises(InputError, match=r"case000008 \(no file in us_images/\)"):
        import_muregpro(tmp_path / "bad", tmp_path / "o2")
    shutil.copy(root / "download" / "nifti_data" / "val" / "us_images" / "case000008.nii.gz", bad / "us_images")
    label = sitk.ReadImage(str(bad / "us_labels" / "case000008.nii.gz"))  # 3 channels
    empty = sitk.GetArrayFromImage(label)
    empty[0] = 0  # the gland channel (4-D arrays are [k, z, y, x])
    out = sitk.GetImageFromArray(empty, isVector=False)
    out.CopyInformation(label)
    sitk.WriteImage(out, str(bad / "us_labels" / "case000008.nii.gz"))
    with pytest.raises(InputError, match=r"gland channel \(0\) of the TRUS label is empty") as err:
        import_muregpro(tmp_path / "bad", tmp_path / "o3")
    assert "us_labels/case000008.nii.gz" in str(err.value)
    assert json.loads((tmp_path / "o3" / "dataset.json").read_text())["splits"]["train"] == ["case000007"]


# --------------------------------------------------------------------------- the reference and its flags
def test_reference_flags_a_flipped_axis_and_a_wrong_pairing():
    rng = np.random.default_rng(7)
    good = make_pair(0, rng, landmarks=4)
    ref = reference_from_labels(good.mr_labels[0], good.us_labels[0], landmarks_of(good))
    assert not ref.flags and ref.method == "landmarks+surfaces"
    assert sre_of(ref.transform, good.offset, truth_surface(0)) < 0.3
    assert ref.landmark_max_mm < 0.3 and ref.surface_p95_mm < 0.7 and ref.dice > 0.97

    flip = make_pair(0, np.random.default_rng(7), landmarks=4)
    flip.us_labels = [flipped(x, 0) for x in flip.us_labels]  # the TRUS array flipped along x, its header kept
    ref = reference_from_labels(flip.mr_labels[0], flip.us_labels[0], landmarks_of(flip))
    assert "flipped-axis" in ref.flags and "x (left-right)" in ref.flags["flipped-axis"]
    assert ref.details["mirror_score_mm"] < 0.5 * ref.details["score_mm"]

    wrong = make_pair(0, np.random.default_rng(8), landmarks=4, us_seed=1)  # the TRUS side of another patient
    ref = reference_from_labels(wrong.mr_labels[0], wrong.us_labels[0], landmarks_of(wrong))
    assert "wrong-pairing" in ref.flags and "poor-landmark-fit" in ref.flags, ref.flags
    assert ref.landmark_mean_mm > 1.25


def test_reference_from_surfaces_alone_survives_the_offsets_and_flags_the_identity():
    rng = np.random.default_rng(11)
    pair = make_pair(1, rng, landmarks=0)
    ref = reference_from_labels(pair.mr_labels[0], pair.us_labels[0])
    assert ref.method == "surfaces" and not ref.flags and ref.details["starts"] == 28
    assert sre_of(ref.transform, pair.offset, truth_surface(1)) < 0.5
    identity = reference_from_labels(pair.mr_labels[0], pair.us_labels[0], method="identity")
    assert identity.transform.allclose(RigidTransform.identity()) and "poor-surface-fit" in identity.flags
    # meshes (as the TCIA importer gives them) give the same reference, with the Dice of the voxelised meshes
    from regkit.surface import label_mesh

    by_mesh = reference_from_surfaces(label_mesh(pair.mr_labels[0]), label_mesh(pair.us_labels[0]))
    assert sre_of(by_mesh.transform, ref.transform, truth_surface(1)) < 0.2 and by_mesh.dice > 0.95
    with pytest.raises(InputError, match="unknown reference method"):
        reference_from_labels(pair.mr_labels[0], pair.us_labels[0], method="guess")


# --------------------------------------------------------------------------- DeepReg
@pytest.mark.slow
def test_deepreg_h5_and_nifti_recover_the_offsets(tmp_path):
    pairs = make_deepreg(tmp_path / "h5", cases=3, seeds=SEEDS)
    with pytest.raises(TypeError):
        import_deepreg(tmp_path / "h5", tmp_path / "o")  # which side is the MR must be said
    ds = import_deepreg(tmp_path / "h5", tmp_path / "out", mr_side="moving")
    assert ds.splits["train"] == ["obs000", "obs001"] and ds.splits["val"] == ["obs002"]
    for cid in ds.case_ids():
        case = ds.load(cid)
        surface = case.surface_points  # the MR gland in the h5 array's frame
        assert sre_of(case.ground_truth, pairs[cid].offset, surface) < 0.5
        meta = json.loads((tmp_path / "out" / cid / "case.json").read_text())
        assert meta["geometry"]["spacing_mm"] == [0.8, 0.8, 0.8] and meta["geometry"]["frame"] == "centre"
        assert "default" in meta["geometry"]["spacing_from"]
        assert np.allclose(sitk.GetArrayViewFromImage(case.fixed).max(), 255, atol=1)  # moving_images is the MR
    nifti = make_deepreg(tmp_path / "nii", cases=2, seeds=SEEDS, nifti=True)
    ds = import_deepreg(tmp_path / "nii", tmp_path / "out_nii", mr_side="moving")
    for cid in ds.case_ids():
        case = ds.load(cid)
        assert sre_of(case.ground_truth, nifti[cid].offset, case.surface_points) < 0.5
    import h5py

    with h5py.File(tmp_path / "h5" / "train" / "fixed_labels.h5", "a") as f:
        del f["obs001"]
    with pytest.raises(InputError, match=r"obs001 \(not in fixed_labels\)"):
        import_deepreg(tmp_path / "h5", tmp_path / "out2", mr_side="moving")


# --------------------------------------------------------------------------- paired folders
def test_paired_labels_reference_and_the_identity_beside_it(tmp_path):
    rng = np.random.default_rng(3)
    pair = make_pair(0, rng, mr_grid=((60, 60, 48), (0.8, 0.8, 0.8)), us_grid=((64, 60, 56), (0.8, 0.8, 0.8)),
                     landmarks=3)
    from layouts.common import four_d

    for sub, img in (("mr_images", pair.mr), ("us_images", pair.us), ("mr_labels", four_d(pair.mr_labels)),
                     ("us_labels", four_d(pair.us_labels))):
        (tmp_path / "src" / sub).mkdir(parents=True)
        sitk.WriteImage(img, str(tmp_path / "src" / sub / "p1.nii.gz"))
    with pytest.raises(InputError, match="reference='labels'"):
        import_paired_folders(tmp_path / "src", tmp_path / "o")  # identity on different grids: ambiguous
    ds = import_paired_folders(tmp_path / "src", tmp_path / "lab", reference="labels")
    case = ds.load("p1")
    assert sre_of(case.ground_truth, pair.offset, case.surface_points) < 0.5
    ds = import_paired_folders(tmp_path / "src", tmp_path / "id", reference="identity", geometry="header")
    meta = json.loads((tmp_path / "id" / "p1" / "case.json").read_text())
    assert ds.load("p1").ground_truth.allclose(RigidTransform.identity())
    assert meta["label_reference"]["sre_from_identity_mm"] > 1.0 and "--reference labels" in meta["note"]


# --------------------------------------------------------------------------- compare and train on imported data
@pytest.mark.slow
def test_compare_and_train_run_on_imported_muregpro(muregpro_data, tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from regkit.app.cli import main
    from regkit.evaluation.measures import landmark_tre

    root, _, ds = muregpro_data
    data = str(root / "imported")
    r = CliRunner().invoke(main, ["compare", "--data", data, "--methods", "identity,mi,mind,attreg", "--init", "8mm",
                                  "--split", "val", "--cases", "2", "-k", "1", "--workers", "1", "-o",
                                  str(tmp_path / "cmp")], env={"REGKIT_NO_PROGRESS": "1"})
    assert r.exit_code == 0, r.output
    rows = pd.read_csv(tmp_path / "cmp" / "results.csv")
    assert set(rows["method"]) == {"identity", "mi", "mind", "attreg"} and (rows["status"] == "ok").all()
    assert rows["final_sre"].notna().all() and rows["landmark_tre_mm"].notna().all()
    for _, row in rows[rows["method"] == "identity"].iterrows():  # the landmark TRE in mm
        m = row[[f"t_m{i}{j}" for i in range(3) for j in range(4)]].to_numpy(float).reshape(3, 4)
        t = RigidTransform.from_matrix(m, orthonormalize=True, tolerance=1e-4)
        assert row["landmark_tre_mm"] == pytest.approx(landmark_tre(ds.load(row["case"]), t), abs=1e-6)
        assert 1.0 < row["landmark_tre_mm"] < 25.0  # an 8 mm start, in mm
    r = CliRunner().invoke(main, ["train", "--method", "dvnet", "--data", data, "--epochs", "1", "--batch-size", "2",
                                  "--samples-per-epoch", "2", "--val-starts", "1", "--no-bf16", "--out",
                                  str(tmp_path / "run")], env={"REGKIT_NO_PROGRESS": "1"})
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "best.safetensors").exists()
