"""One-pair registration with transform export and overlays; Grad-CAM explanations."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

import regkit
from regkit.app.cli import main
from regkit.errors import InputError
from regkit.transform_io import read_transform


@pytest.fixture(scope="module")
def case_dir(phantom_dataset):
    return phantom_dataset.root / "case003"


def test_register_writes_transforms_resampled_image_and_overlay(case_dir, tmp_path):
    out = regkit.register(case_dir / "mr.nii.gz", case_dir / "trus.nii.gz", case_dir / "mr_label.nii.gz",
                          method="identity", initial_transform=case_dir / "ground_truth.txt", out=tmp_path / "r")
    gt = read_transform(case_dir / "ground_truth.txt")
    assert out.result.ok
    tfm = sitk.ReadTransform(str(out.files["tfm"]))  # what 3D Slicer and ITK-SNAP read
    np.testing.assert_allclose(read_transform(out.files["tfm"]).matrix, gt.matrix, atol=1e-9)
    np.testing.assert_allclose(read_transform(out.files["txt"]).matrix, gt.matrix, atol=1e-12)
    p = np.array([3.0, -2.0, 5.0])
    np.testing.assert_allclose(tfm.TransformPoint(p.tolist()), gt.apply(p), atol=1e-9)
    res = sitk.ReadImage(str(out.files["moving_resampled"]))
    mr = sitk.ReadImage(str(case_dir / "mr.nii.gz"))
    assert res.GetSize() == mr.GetSize() and np.allclose(res.GetOrigin(), mr.GetOrigin())
    # under the ground truth the resampled TRUS label overlaps the MR label
    lab = sitk.Resample(sitk.ReadImage(str(case_dir / "trus_label.nii.gz")), mr, gt.to_sitk(),
                        sitk.sitkNearestNeighbor, 0)
    assert (sitk.GetArrayViewFromImage(lab) > 0).sum() > 0
    assert out.files["overlay"].read_bytes()[:4] == b"\x89PNG"
    doc = json.loads(out.files["json"].read_text())
    assert doc["status"] == "ok" and "fixed (MR)" in doc["convention"]


def test_register_cli_with_centres_start_and_errors(case_dir, tmp_path):
    r = CliRunner().invoke(main, ["register", "--fixed", str(case_dir / "mr.nii.gz"), "--moving",
                                  str(case_dir / "trus.nii.gz"), "--method", "identity",
                                  "--initial-transform", "centres", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    t = read_transform(tmp_path / "c" / "transform.txt")
    trus = sitk.ReadImage(str(case_dir / "trus.nii.gz"))
    centre = trus.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in trus.GetSize()])
    mr = sitk.ReadImage(str(case_dir / "mr.nii.gz"))
    mr_centre = mr.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in mr.GetSize()])
    np.testing.assert_allclose(t.apply(np.array(mr_centre)), centre, atol=1e-6)
    with pytest.raises(InputError, match="needs the MR prostate label"):
        regkit.register(case_dir / "mr.nii.gz", case_dir / "trus.nii.gz", method="dvnet", checkpoint="random",
                        out=tmp_path / "d")
    (tmp_path / "bad.txt").write_text("not a matrix")
    r = CliRunner().invoke(main, ["register", "--fixed", str(case_dir / "mr.nii.gz"), "--moving",
                                  str(case_dir / "trus.nii.gz"), "--method", "identity", "--initial-transform",
                                  str(tmp_path / "bad.txt")])
    assert r.exit_code == 2 and "bad.txt" in r.output


def test_register_keeps_init_as_a_deprecated_name_of_initial_transform(case_dir, tmp_path):
    args = ["register", "--fixed", str(case_dir / "mr.nii.gz"), "--moving", str(case_dir / "trus.nii.gz"),
            "--method", "identity"]
    new = CliRunner().invoke(main, [*args, "--initial-transform", "centres", "--out", str(tmp_path / "new")])
    old = CliRunner().invoke(main, [*args, "--init", "centres", "--out", str(tmp_path / "old")])
    assert new.exit_code == old.exit_code == 0, (new.output, old.output)
    assert "deprecated" not in new.stderr
    assert old.stderr.strip() == "regkit register: --init is deprecated, use --initial-transform (the same values)"
    assert (tmp_path / "old" / "transform.txt").read_bytes() == (tmp_path / "new" / "transform.txt").read_bytes()
    assert "--init " not in CliRunner().invoke(main, ["register", "--help"]).output  # hidden
    with pytest.warns(FutureWarning, match="use initial_transform="):
        out = regkit.register(case_dir / "mr.nii.gz", case_dir / "trus.nii.gz", method="identity", init="centres",
                              out=tmp_path / "api")
    assert out.files["txt"].read_bytes() == (tmp_path / "new" / "transform.txt").read_bytes()
    assert json.loads(out.files["json"].read_text())["options"] == {}  # the old name is no registrar option


@pytest.mark.slow
def test_explain_writes_grad_cam_for_attention_and_feature_reg(phantom_dataset, tmp_path):
    from regkit.deep.gradcam import explain

    files = explain(methods=("attreg", "featreg"), data=phantom_dataset.root, out=tmp_path / "e",
                    checkpoints={"attreg": "random", "featreg": "random"})
    assert files["figure"].read_bytes()[:4] == b"\x89PNG"
    arrays = np.load(files["arrays"])
    for m in ("attreg", "featreg"):
        for branch in ("fixed", "moving"):
            cam = arrays[f"{m}_cam_{branch}"]
            assert cam.shape == (32, 96, 96) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    assert not np.allclose(arrays["attreg_cam_fixed"], arrays["featreg_cam_fixed"])
    with pytest.raises(InputError, match="Attention-Reg and Feature-Reg"):
        explain(methods=("dvnet",), data=phantom_dataset.root, out=tmp_path / "f", checkpoints={"dvnet": "random"})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["attreg", "attreg-label", "featreg", "featreg-label", "msreg", "dvnet"])
def test_every_deep_registry_name_runs_from_the_cli_given_a_checkpoint(case_dir, tmp_path, name):
    r = CliRunner().invoke(main, ["register", "--fixed", str(case_dir / "mr.nii.gz"), "--moving",
                                  str(case_dir / "trus.nii.gz"), "--fixed-label", str(case_dir / "mr_label.nii.gz"),
                                  "--method", name, "--initial-transform", str(case_dir / "ground_truth.txt"),
                                  "-O", "checkpoint=random", "--no-qa", "--out", str(tmp_path / name)])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / name / "result.json").read_text())
    assert doc["status"] == "ok" and doc["options"] == {"checkpoint": "random"}


@pytest.mark.slow
def test_register_by_default_starts_from_the_centres_and_so_reaches_a_pair_far_apart(case_dir, tmp_path,
                                                                                      itk_loaded):
    """The TRUS header placed 32 mm (and 3°) away from the MR, as an export can place it: mi from the headers
    (identity) stays far, from the default start (the MR prostate centre to the TRUS centre) it converges."""
    from regkit.sre import sre
    from regkit.surface import surface_from_label
    from regkit.transform import RigidTransform

    points = surface_from_label(sitk.ReadImage(str(case_dir / "mr_label.nii.gz")))
    truth = RigidTransform.from_params([24.0, -16.0, 14.0, 2.0, -1.0, 2.0],  # 32 mm, 3°: MR → TRUS physical
                                       points.mean(axis=0))
    frame = truth @ read_transform(case_dir / "ground_truth.txt").inverse()  # old TRUS physical → new
    trus = sitk.ReadImage(str(case_dir / "trus.nii.gz"))
    trus.SetDirection((frame.matrix[:3, :3] @ np.array(trus.GetDirection()).reshape(3, 3)).ravel().tolist())
    trus.SetOrigin(frame.apply(np.array(trus.GetOrigin())).tolist())
    sitk.WriteImage(trus, str(tmp_path / "far.nii.gz"))
    args = (case_dir / "mr.nii.gz", tmp_path / "far.nii.gz", case_dir / "mr_label.nii.gz")
    assert sre(RigidTransform.identity(), truth, points) > 30
    default = regkit.register(*args, method="mi", out=tmp_path / "default", qa=False)
    headers = regkit.register(*args, method="mi", initial_transform="identity", out=tmp_path / "headers", qa=False)
    assert sre(default.result.transform, truth, points) < 2.0
    assert sre(headers.result.transform, truth, points) > 10.0
