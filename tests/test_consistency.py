"""A registration's consistency without the ground truth (regkit.consistency): a result in a wrong optimum is
flagged `suspect`, a good one is not; the flag in compare's outputs; the statistics unchanged by it."""

import json

import numpy as np
import pandas as pd
import pytest

from regkit import RigidTransform, get_registrar, register_registrar
from regkit.consistency import RADIUS_MM, THRESHOLD_MM, check, distance, roi_points
from regkit.evaluation.compare import compare
from regkit.registrar import Capabilities, RegistrarBase
from regkit.sre import sre


class Attractor(RegistrarBase):
    """Lands exactly on the truth (the case's ground truth, else the identity) from a start within ``reach`` mm of
    it over the surface points, and stays where it started otherwise ("ok" either way): a method with one basin
    and a wrong optimum everywhere outside it."""

    name = "attractor"
    capabilities = Capabilities(in_process=True)

    def __init__(self, reach: float = 5.0):
        self.reach = reach

    def _register(self, case, initial):
        truth = case.ground_truth if case.ground_truth is not None else RigidTransform.identity()
        near = sre(initial, truth, case.surface_points) <= self.reach
        return (truth if near else initial), {}


class Stay(RegistrarBase):
    """Returns its start, but is not the identity method: its result is measured."""

    name = "stay"
    capabilities = Capabilities(in_process=True)

    def _register(self, case, initial):
        return initial, {}


register_registrar("attractor", Attractor)
register_registrar("stay", Stay)


def start_at(case, mm: float, seed: int = 0) -> RigidTransform:
    from regkit.starts import draw_start

    return draw_start(np.random.default_rng(seed), case.ground_truth, case.surface_points, mm)


def test_a_wrong_optimum_is_suspect_and_the_truth_is_not(phantom_case):
    reg = get_registrar("attractor")
    pairs = [(phantom_case, start_at(phantom_case, 2.0)), (phantom_case, start_at(phantom_case, 12.0))]
    good, stuck = reg.register_many(pairs)
    assert sre(good.transform, phantom_case.ground_truth, phantom_case.surface_points) == pytest.approx(0, abs=1e-9)
    assert sre(stuck.transform, phantom_case.ground_truth, phantom_case.surface_points) == pytest.approx(12.0)
    consistent, suspect = check(reg, pairs, [good, stuck])
    assert consistent.value_mm == pytest.approx(0, abs=1e-6) and not consistent.suspect
    # the restarts from the stuck result stay where they start, RADIUS_MM away over the region of interest
    assert suspect.value_mm == pytest.approx(RADIUS_MM, rel=1e-3) and suspect.suspect
    assert suspect.value_mm > THRESHOLD_MM and "above the" in suspect.describe()


def test_the_region_of_interest_is_the_gland_grown_by_a_margin(phantom_case):
    pts = roi_points(phantom_case)
    surface = phantom_case.surface_points
    assert 100 < len(pts) <= 2000
    lo, hi = surface.min(axis=0), surface.max(axis=0)
    assert np.all(pts >= lo - 10.01) and np.all(pts <= hi + 10.01)
    shift = RigidTransform.from_params([3, 0, 0, 0, 0, 0])
    assert distance(shift, RigidTransform.identity(), pts) == pytest.approx(3.0)


def test_a_chain_is_measured_by_its_last_member(phantom_case):
    """attractor+stay lands on the truth; restarting the chain would come back to it, restarting its last member
    (stay) does not: the chain is measured by its last member."""
    chain = get_registrar("attractor+stay")
    pair = (phantom_case, start_at(phantom_case, 2.0))
    result = chain.register(*pair)
    (c,) = check(chain, [pair], [result])
    assert c.suspect and c.value_mm == pytest.approx(RADIUS_MM, rel=1e-3)


def test_no_registration_is_not_measured(phantom_case):
    pair = (phantom_case, start_at(phantom_case, 8.0))
    reg = get_registrar("identity")
    assert check(reg, [pair], reg.register_many([pair])) == [None]


@pytest.fixture(scope="module")
def compared(phantom_dataset, tmp_path_factory):
    """The same comparison with and without --qa: 2 mm starts end on the truth, 12 mm starts stay stuck."""
    out = tmp_path_factory.mktemp("qa")
    kw = dict(methods="identity,attractor", init="2mm,12mm", data=phantom_dataset.root, split="all",
              starts_per_case=2, workers=1, show_progress=False, echo=None)
    return compare(out=out / "qa", qa=True, **kw), compare(out=out / "plain", **kw)


def test_compare_flags_the_stuck_results_and_changes_no_statistic(compared):
    with_qa, plain = compared
    samples = with_qa.samples
    att = samples[samples.method == "attractor"]
    flagged = {init: g["suspect"].tolist() for init, g in att.groupby("init")}
    assert flagged == {"2mm": [False] * (len(att) // 2), "12mm": [True] * (len(att) // 2)}
    assert samples[samples.method == "identity"]["consistency_mm"].isna().all()  # no registration: not measured
    assert (att["consistency_mm"] >= 0).all()
    assert "suspect" not in plain.samples or plain.samples["suspect"].isna().all()
    # the flag informs, it drops nothing: the tests and the SRE columns are identical
    for name in ("tests", "table2"):
        assert (with_qa.out / f"{name}.csv").read_text() == (plain.out / f"{name}.csv").read_text()
    t1, p1 = (pd.read_csv(r.out / "table1.csv") for r in (with_qa, plain))
    pd.testing.assert_frame_equal(t1.drop(columns="Suspect"), p1)
    n = len(att) // 2
    assert t1["Suspect"].tolist() == ["-", "0/" + str(n), "-", f"{n}/{n}"]


def test_the_suspect_results_are_in_metrics_and_report(compared):
    with_qa, plain = compared
    doc = json.loads((with_qa.out / "metrics.json").read_text())
    entry = doc["methods"]["attractor"]["inits"]
    assert entry["2mm"]["suspect"]["count"] == 0 and entry["12mm"]["suspect"]["count"] == entry["12mm"]["suspect"][
        "checked"] > 0
    assert {s["status"] for s in entry["12mm"]["suspect"]["samples"]} == {"ok"}
    assert "suspect" not in doc["methods"]["identity"]["inits"]["12mm"]
    assert "suspect" not in json.loads((plain.out / "metrics.json").read_text())["methods"]["attractor"]["inits"][
        "12mm"]
    report = (with_qa.out / "report.html").read_text()
    assert "Suspect results" in report and "restart spread" in report
    assert "Suspect results" not in (plain.out / "report.html").read_text()
    assert json.loads((with_qa.out / "run.json").read_text())["qa"]["threshold_mm"] == THRESHOLD_MM


@pytest.fixture(scope="module")
def stuck_start(phantom_case, tmp_path_factory):
    """A transform file 12 mm (over the MR surface) from the identity, where ``attractor`` stays stuck in
    ``regkit register`` (no ground truth there: it is drawn to the identity)."""
    from regkit.transform_io import write_transform

    gt = phantom_case.ground_truth
    phantom_case.ground_truth = RigidTransform.identity()
    try:
        start = start_at(phantom_case, 12.0)
    finally:
        phantom_case.ground_truth = gt
    return write_transform(start, tmp_path_factory.mktemp("start") / "start.txt")


def test_register_warns_on_a_suspect_result(phantom_dataset, stuck_start, tmp_path):
    from click.testing import CliRunner

    from regkit.app.cli import main

    case = phantom_dataset.root / "case003"
    args = ["register", "--fixed", str(case / "mr.nii.gz"), "--moving", str(case / "trus.nii.gz"), "--fixed-label",
            str(case / "mr_label.nii.gz"), "--method", "attractor"]
    stuck = CliRunner().invoke(main, [*args, "--initial-transform", str(stuck_start), "--out", str(tmp_path / "s")])
    good = CliRunner().invoke(main, [*args, "--initial-transform", "identity", "--out", str(tmp_path / "g")])
    assert stuck.exit_code == good.exit_code == 0, (stuck.output, good.output)
    warning = [line for line in stuck.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and f"suspect result: restart spread 4.00 mm, above the {THRESHOLD_MM:.2f} mm " \
        "threshold (" in warning[0]
    assert "attractor: ok, suspect in" in stuck.stdout
    assert "warning" not in good.stderr and "restart spread 0.00 mm" in good.stdout
    doc = json.loads((tmp_path / "s" / "result.json").read_text())
    assert doc["status"] == "ok" and doc["suspect"] is True
    assert doc["consistency"]["measure"] == "restart spread" and doc["consistency"]["value_mm"] == pytest.approx(4.0)
    assert json.loads((tmp_path / "g" / "result.json").read_text())["suspect"] is False
    off = CliRunner().invoke(main, [*args, "--initial-transform", str(stuck_start), "--no-qa", "--out",
                                    str(tmp_path / "n")])
    assert off.exit_code == 0 and "warning" not in off.stderr
    assert json.loads((tmp_path / "n" / "result.json").read_text())["consistency"] is None
    assert "--qa" in CliRunner().invoke(main, ["compare", "--help"]).output


@pytest.mark.parametrize(("target", "k", "wrong"), [(16, 2, True), (8, 0, False)])
def test_mi_in_the_spines_wrong_optimum_is_suspect(shared_data, itk_loaded, tmp_path, target, k, wrong):
    """Real: mi from the spine pair's 16 mm start lands in another optimum along the cord with status "ok"; the
    flag catches it (its restarts go on to yet another optimum: 9.4 mm). From the 8 mm start it reaches the
    reference and is not flagged. (From the 16 mm starts k = 0 and 1 its restarts come back within 1.41 and
    1.23 mm, under the threshold: misses the module docstring states.)"""
    from test_real_pairs import readme_start

    import regkit

    dev = shared_data / "real_multimodal_dev" / "spine_t2_t2s"
    if not dev.is_dir():
        pytest.skip("../shared/data/real_multimodal_dev is not present")
    begin, ref, pts = readme_start(dev.parent, dev.name, target, k)
    out = regkit.register(dev / "fixed.nii.gz", dev / "moving.nii.gz", method="mi", initial_transform=begin,
                          out=tmp_path / "r")
    error = distance(out.result.transform, ref, pts)
    assert out.result.status == "ok" and (error > 5.0) == wrong, error
    assert out.suspect == wrong, out.consistency
    assert json.loads(out.files["json"].read_text())["suspect"] == wrong
