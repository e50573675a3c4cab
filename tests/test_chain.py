"""Registrar chains ``a+b``: the second starts where the first ended, in the API, compare and register."""

import json

import numpy as np
import pytest

from regkit import RigidTransform, get_registrar, register_registrar
from regkit.chain import ChainRegistrar, split_options
from regkit.errors import InputError
from regkit.evaluation.compare import compare
from regkit.evaluation.method_specs import parse_methods
from regkit.registrar import FAILED, OK, Capabilities, RegistrarBase
from regkit.sre import sre


class Toward(RegistrarBase):
    """Moves the start a fraction of the way to the ground truth (known results), or raises."""

    name = "toward"

    def __init__(self, fraction: float = 0.5, fail: bool = False):
        self.fraction, self.fail = fraction, fail

    def _register(self, case, initial):
        if self.fail:
            raise RuntimeError("deliberate")
        p = (case.ground_truth.inverse() @ initial).to_params(case.surface_centroid)
        return case.ground_truth @ RigidTransform.from_params((1 - self.fraction) * p, case.surface_centroid), {}


class OnDevice(Toward):
    name = "ondevice"
    capabilities = Capabilities(uses_device=True, batched=True)


register_registrar("toward", Toward)
register_registrar("ondevice", OnDevice)


def test_options_go_to_the_named_member_or_position():
    assert split_options(["mi", "mind"], {"mind.iterations": 5, "1.seed": 2}) == [{"seed": 2}, {"iterations": 5}]
    with pytest.raises(InputError, match="not a member"):
        split_options(["mi", "mind"], {"attreg.x": 1})
    with pytest.raises(InputError, match="appears 2 times"):
        split_options(["mi", "mi"], {"mi.iterations": 1})
    with pytest.raises(InputError, match="names no member"):
        split_options(["mi", "mind"], {"iterations": 1})
    with pytest.raises(InputError, match="bad options"):
        parse_methods("toward+toward", {"toward+toward": {"2.speed": 1}})


def test_a_chain_runs_each_member_from_the_previous_result(phantom_case):
    chain = get_registrar("toward+toward", **{"1.fraction": 0.5, "2.fraction": 0.5})
    assert isinstance(chain, ChainRegistrar) and chain.name == "toward+toward"
    start = phantom_case.ground_truth @ RigidTransform.from_params([4, 0, 0, 0, 0, 0], phantom_case.surface_centroid)
    res = chain.register(phantom_case, start)
    gt, pts = phantom_case.ground_truth, phantom_case.surface_points
    e = [sre(t, gt, pts) for t in res.info["stage_transforms"]]
    assert e == pytest.approx([2.0, 1.0], abs=1e-6) and sre(res.transform, gt, pts) == pytest.approx(1.0, abs=1e-6)
    assert res.status == OK and res.info["stages"] == ["toward", "toward"]
    assert res.runtime == pytest.approx(sum(res.info["stage_runtimes"]))


def test_a_failed_member_fails_the_chain_and_the_next_starts_from_its_start(phantom_case):
    start = phantom_case.ground_truth @ RigidTransform.from_params([4, 0, 0, 0, 0, 0], phantom_case.surface_centroid)
    res = get_registrar("toward+toward", **{"1.fail": True}).register(phantom_case, start)
    assert res.status == FAILED and "stage 1 (toward)" in res.message and "deliberate" in res.message
    assert sre(res.transform, phantom_case.ground_truth, phantom_case.surface_points) == pytest.approx(2.0, abs=1e-6)


def test_capabilities_are_the_members_together():
    from regkit.registry import declaration

    d = declaration("toward+ondevice")
    assert d.kind == "chain" and d.capabilities.uses_device and d.capabilities.batched
    assert d.title == "toward → ondevice"
    assert not declaration("toward+toward").capabilities.uses_device
    with pytest.raises(InputError, match="unknown registrar 'nosuch'"):
        declaration("toward+nosuch")
    with pytest.raises(InputError, match="cannot read the chain"):
        declaration("toward+")


def test_compare_reports_a_chain_as_its_own_row_with_per_stage_sre_and_runtime(phantom_dataset, tmp_path):
    res = compare(methods="toward,toward+toward", init="8mm", data=phantom_dataset.root, split="train",
                  starts_per_case=2, out=tmp_path / "c", workers=1, show_progress=False, echo=None)
    rows = res.samples[res.samples["method"] == "toward+toward"]
    one = res.samples[res.samples["method"] == "toward"]
    assert len(rows) == 4 and (rows["status"] == "ok").all()
    np.testing.assert_allclose(rows["stage1_sre"], one["final_sre"], atol=1e-9)  # stage 1 is `toward` alone
    assert (rows["final_sre"].to_numpy() < 0.6 * rows["stage1_sre"].to_numpy()).all()
    stages = json.loads(rows["stages"].iloc[0])
    assert [s["registrar"] for s in stages] == ["toward", "toward"] and all("runtime_s" in s for s in stages)
    assert [s["sre"] for s in stages] == pytest.approx([rows["stage1_sre"].iloc[0], rows["final_sre"].iloc[0]])
    summ = res.summary.set_index("method").loc["toward+toward"]
    table2 = next(line for line in res.tables["table2"].splitlines() if "toward → toward" in line)
    assert f"{summ['stage1_mean']:.2f}±" in table2 and f"{summ['mean']:.2f}±" in table2
    assert " + " in table2  # the runtime of each stage after the total


def test_register_command_runs_a_chain(phantom_case, tmp_path):
    from click.testing import CliRunner

    from regkit.app.cli import main

    f, m = tmp_path / "f.nii.gz", tmp_path / "m.nii.gz"
    import SimpleITK as sitk

    sitk.WriteImage(phantom_case.fixed, str(f))
    sitk.WriteImage(phantom_case.moving, str(m))
    out = CliRunner().invoke(main, ["register", "--fixed", str(f), "--moving", str(m), "--method",
                                    "identity+identity", "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert "identity+identity: ok" in out.output
    doc = json.loads((tmp_path / "r" / "result.json").read_text())
    assert doc["status"] == "ok" and doc["method"] == "identity+identity"
