"""regkit compare: statistics against scipy, resuming after a kill, failures, Dask, tables and the record."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_rel, wilcoxon

from regkit import RigidTransform, register_registrar
from regkit.evaluation.compare import compare
from regkit.evaluation.store import KEY, ResultStore
from regkit.registrar import RegistrarBase


class HalfwayRegistrar(RegistrarBase):
    """Moves the start halfway to the ground truth (a stand-in for a real method, with known results)."""

    name = "halfway"
    kind = "test"

    def __init__(self, fraction: float = 0.5, fail_case: str | None = None, delay: float = 0.0):
        self.fraction, self.fail_case, self.delay = fraction, fail_case, delay
        self.calls = 0

    def _register(self, case, initial):
        time.sleep(self.delay)
        self.calls += 1
        pause = os.environ.get("REGKIT_TEST_PAUSE")  # "N:marker": after N calls, say so in the marker and block
        if pause and self.calls > int(pause.split(":", 1)[0]):
            Path(pause.split(":", 1)[1]).touch()
            while True:
                time.sleep(1)
        if case.case_id == self.fail_case:
            raise RuntimeError("deliberate failure")
        p = (case.ground_truth.inverse() @ initial).to_params(case.surface_centroid)
        return case.ground_truth @ RigidTransform.from_params(self.fraction * p, case.surface_centroid), {}


register_registrar("halfway", HalfwayRegistrar)


@pytest.fixture(scope="module")
def run(phantom_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    return compare(methods="identity,halfway,third=halfway", init="8mm,0-20mm", data=phantom_dataset.root,
                   split="all", starts_per_case=4, seed=5, out=out, workers=1, show_progress=False, echo=None,
                   method_options={"third": {"fraction": 0.3, "fail_case": "case001"}})


def test_p_values_equal_scipy_on_case_means_and_on_samples(run):
    s = run.samples
    assert len(run.tests) == 4  # 2 methods against the reference (identity) × 2 starting errors
    assert set(zip(run.tests["a"], run.tests["b"], strict=True)) == {("halfway", "identity"), ("third", "identity")}
    for _, t in run.tests.iterrows():
        a = s[(s["method"] == t["a"]) & (s["init"] == t["init"])].set_index(["case", "start_id"])["final_sre"]
        b = s[(s["method"] == t["b"]) & (s["init"] == t["init"])].set_index(["case", "start_id"])["final_sre"]
        a, b = a.align(b, join="inner")
        assert t["n"] == len(a) == 16 and t["cases"] == 4
        ca, cb = a.groupby(level="case").mean(), b.groupby(level="case").mean()
        assert t["p_ttest"] == pytest.approx(ttest_rel(ca, cb).pvalue, rel=1e-6)
        assert t["p_wilcoxon"] == pytest.approx(wilcoxon(ca - cb).pvalue, rel=1e-9)
        assert t["sample_p_ttest"] == pytest.approx(ttest_rel(a, b).pvalue, rel=1e-6)
        assert t["sample_p_wilcoxon"] == pytest.approx(wilcoxon(a, b).pvalue, rel=1e-9)
        assert t["mean_diff"] == pytest.approx((a - b).mean())
    from statsmodels.stats.multitest import multipletests

    np.testing.assert_allclose(run.tests["p_ttest_holm"], multipletests(run.tests["p_ttest"], method="holm")[1])


def test_summary_failures_and_tables(run, tmp_path):
    s = run.samples
    assert set(s["method"]) == {"identity", "halfway", "third"}
    assert len(s) == 3 * 2 * 4 * 4 and s["case"].nunique() == 4  # --split all
    third = s[s["method"] == "third"]
    failed = third[third["case"] == "case001"]
    assert (failed["status"] == "failed").all() and failed["message"].str.contains("deliberate").all()
    np.testing.assert_allclose(failed["final_sre"], failed["initial_sre"])  # a failure keeps its start
    ok = s[(s["method"] == "halfway")]
    np.testing.assert_allclose(ok["final_sre"], 0.5 * ok["initial_sre"], rtol=0.05)
    summ = run.summary.set_index(["init", "method"])
    assert summ.loc[("8mm", "identity"), "mean"] == pytest.approx(8.0, abs=1e-3)
    assert summ.loc[("8mm", "third"), "failures"] == 4
    for name in ("table1", "table2", "tests", "ranks"):
        for ext in ("csv", "tex", "md"):
            assert (run.out / f"{name}.{ext}").stat().st_size > 0
    tex = (run.out / "table1.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"$\pm$" in tex
    t2 = pd.read_csv(run.out / "table2.csv")
    assert list(t2.columns) == ["Method", "Initial.", "Stage 1", "Stage 2", "#Parameters", "Runtime"]
    tests_md = (run.out / "tests.md").read_text()
    assert "Holm" in tests_md and "sample-level p t-test" in tests_md and "Case level" in tests_md
    assert "95% CI (mm)" in (run.out / "table1.md").read_text()
    assert "TRUS-label Dice" in (run.out / "table1.md").read_text()  # the phantom has TRUS labels
    assert "Landmark TRE (mm)" not in (run.out / "table1.md").read_text()  # and no landmarks
    dice = s.groupby("method")["final_dice"].mean()
    assert dice["halfway"] > dice["identity"]
    for png in ("boxplot.png", "scatter.png", "differences.png"):
        assert (run.out / png).read_bytes()[:4] == b"\x89PNG"


def test_metrics_json_in_the_learn2reg_style(run):
    doc = json.loads((run.out / "metrics.json").read_text())
    half = doc["methods"]["halfway"]["inits"]["8mm"]
    assert set(half["cases"]) == {"case000", "case001", "case002", "case003"}
    s = run.samples
    sel = s[(s["method"] == "halfway") & (s["init"] == "8mm")]
    assert half["cases"]["case002"]["SRE"] == pytest.approx(sel[sel["case"] == "case002"]["final_sre"].mean(),
                                                            abs=1e-5)
    agg = half["aggregates"]["SRE"]
    case_means = sel.groupby("case")["final_sre"].mean()
    assert agg["mean"] == pytest.approx(case_means.mean(), abs=1e-5)
    assert agg["30"] == pytest.approx(np.quantile(case_means, 0.7), abs=1e-5)
    assert {"runtime", "Dice", "SRE_initial"} <= set(half["aggregates"]) and "landmark_TRE_mm" not in half["aggregates"]
    assert doc["methods"]["third"]["inits"]["8mm"]["cases"]["case001"]["failures"] == 4


def test_significance_ranks(run):
    r = run.ranks
    assert set(r["method"]) == {"identity", "halfway", "third"} and len(r) == 6
    assert (r["beats"] >= 0).all() and (r["rank"] >= 1).all()
    # 4 cases: a one-sided signed-rank test cannot go below 1/16, so nothing is significant
    assert (r["beats"] == 0).all()


def test_reproducibility_record(run):
    rec = json.loads((run.out / "run.json").read_text())
    for key in ("seeds", "packages", "threads_per_worker", "workers", "git", "command", "cases", "init"):
        assert key in rec
    assert rec["seeds"]["starts"] == 5 and rec["packages"]["numpy"]


def test_asked_comparisons_and_rerun_is_a_no_op(run, phantom_dataset):
    before = (run.out / "results.csv").read_bytes()
    again = compare(methods="identity,halfway,third=halfway", init="8mm,0-20mm", data=phantom_dataset.root,
                    split="all", starts_per_case=4, seed=5, out=run.out, workers=1, show_progress=False,
                    echo=None, compare="halfway:third",
                    method_options={"third": {"fraction": 0.3, "fail_case": "case001"}})
    assert (run.out / "results.csv").read_bytes() == before
    assert set(zip(again.tests["a"], again.tests["b"], strict=True)) == {("halfway", "third")}
    assert json.loads((run.out / "run.json").read_text())["statistics"]["holm_family_size"] == 2


SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_compare import HalfwayRegistrar
    from regkit.evaluation.compare import compare
    compare(methods="identity,slow=halfway", init="8mm", data={data!r}, split="train", starts_per_case=6, seed=2,
            out={out!r}, workers=1, show_progress=False, echo=None, method_options={{"slow": {{"delay": 0.01}}}})
""")


@pytest.mark.slow
def test_resume_after_a_kill_neither_loses_nor_duplicates(phantom_dataset, tmp_path):
    out = tmp_path / "killed"
    script = SCRIPT.format(tests=os.path.dirname(__file__), data=str(phantom_dataset.root), out=str(out))
    marker = tmp_path / "paused"
    env = {**os.environ, "REGKIT_NO_PROGRESS": "1", "REGKIT_TEST_PAUSE": f"6:{marker}"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    results = out / "results.csv"
    while not marker.exists():  # blocks in its 7th sample: identity (12 rows) and the first case (6) are written
        assert proc.poll() is None, "the run ended before it paused"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = ResultStore(results).read()
    assert len(before) == 12 + 6
    with open(results, "a") as fh:
        fh.write("slow,case000,5,8mm,8.0,8.0")  # a line cut short by the kill
    done = compare(methods="identity,slow=halfway", init="8mm", data=phantom_dataset.root, split="train",
                   starts_per_case=6, seed=2, out=out, workers=1, show_progress=False, echo=None,
                   method_options={"slow": {"delay": 0.01}})  # same options: anything else is refused
    s = done.samples
    assert len(s) == 24 and not s.duplicated(KEY).any()
    merged = before.merge(s, on=KEY, suffixes=("_before", "_after"))
    assert len(merged) == len(before)
    np.testing.assert_array_equal(merged["final_sre_before"], merged["final_sre_after"])
    raw = pd.read_csv(results)
    assert len(raw) == 24


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_table(phantom_dataset, tmp_path):
    distributed = pytest.importorskip("distributed")
    common = dict(methods="identity,mi", init="8mm", data=phantom_dataset.root, split="train", starts_per_case=2,
                  seed=1, show_progress=False, echo=None, method_options={"mi": {"iterations": 30}})
    local = compare(out=tmp_path / "local", workers=1, **common)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = compare(out=tmp_path / "dask", scheduler=client, **common)
    cols = [*KEY, "initial_sre", "final_sre", "status"]
    pd.testing.assert_frame_equal(local.samples[cols].reset_index(drop=True),
                                  remote.samples[cols].reset_index(drop=True))
    assert (remote.samples["status"] != "failed").all()  # the statuses themselves match the local run


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])  # with one worker too: a native crash never takes the run down
def test_a_crashing_worker_is_recorded_and_the_run_goes_on(phantom_dataset, test_plugin, tmp_path, workers):
    _, env = test_plugin  # its ``crasher`` kills its worker process on case001, as a segfault in native code would
    code = textwrap.dedent(f"""
        from regkit.evaluation.compare import compare
        r = compare(methods="crasher", init="8mm", data={str(phantom_dataset.root)!r}, split="train",
                    starts_per_case=2, seed=1, out={str(tmp_path / 'out')!r}, workers={workers}, show_progress=False,
                    echo=None)
    """)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    s = ResultStore(tmp_path / "out" / "results.csv").read()
    assert len(s) == 4
    crashed = s[s["case"] == "case001"]
    assert (crashed["status"] == "failed").all() and crashed["message"].str.contains("crashed").all()
    np.testing.assert_allclose(crashed["final_sre"], 8.0, atol=1e-3)
    assert (s[s["case"] == "case000"]["status"] == "ok").all()
    before = (tmp_path / "out" / "results.csv").read_bytes()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    assert (tmp_path / "out" / "results.csv").read_bytes() == before  # the resume does not crash on it again


def test_inputs_that_would_spoil_a_resumed_folder_are_refused(phantom_dataset, tmp_path):
    from regkit.errors import InputError

    common = dict(init="8mm", data=phantom_dataset.root, split="train", starts_per_case=1, workers=1,
                  show_progress=False, echo=None)
    with pytest.raises(InputError, match="bad options for 'mi'.*iterationz"):
        compare(methods="mi", out=tmp_path / "a", method_options={"mi": {"iterationz": 3}}, **common)
    compare(methods="identity,halfway", out=tmp_path / "b", seed=1, **common)
    with pytest.raises(InputError, match="holds results of 'halfway'"):
        compare(methods="halfway", out=tmp_path / "b", seed=1, method_options={"halfway": {"fraction": 0.9}}, **common)
    with pytest.raises(InputError, match="different starts"):
        compare(methods="identity", out=tmp_path / "b", seed=2, **common)
    other = compare(methods="identity", out=tmp_path / "c", seed=3, **common)
    with pytest.raises(InputError, match="different starts"):
        compare(methods="identity", out=tmp_path / "b", seed=1, starts_file=other.out / "starts.csv", **common)


def test_store_survives_a_kill_inside_its_header(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("method,case,sta")  # killed while writing the header
    store = ResultStore(path)
    store.append({"method": "m", "case": "c", "start_id": 0, "init": "8mm", "message": "two\nlines",
                  "final_sre": 1.5})
    frame = ResultStore(path).read()
    assert len(frame) == 1 and frame.loc[0, "message"] == "two lines"


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_is_self_contained_and_complete_in_a_headless_browser(run, tmp_path):
    """report.html loads nothing from the network, and a real browser shows every table and decodes every figure."""
    import re

    html = (run.out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html)
    assert "<script" not in html
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (the README's test command installs it)")
    # a copy that records, once loaded, the decoded width of every image in the DOM
    probe = tmp_path / "report.html"
    probe.write_text(html.replace("</body>", "<script>addEventListener('load', () => document.body.setAttribute("
                                  "'data-decoded', [...document.images].map(i => i.naturalWidth).join(',')))"
                                  "</script></body>"))
    res = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120)
    dom = res.stdout
    assert res.returncode == 0 and "</html>" in dom, res.stderr[-2000:]
    for name in ("table1", "table2", "tests", "ranks"):
        assert f'id="table-{name}"' in dom
    widths = re.search(r'data-decoded="([^"]*)"', dom).group(1).split(",")
    figures = re.findall(r'<figure id="fig-([a-z]+)"', dom)
    assert figures == ["boxplot", "scatter", "differences"]
    assert len(widths) == 3 and all(int(w) > 100 for w in widths)
    assert "Run record" in dom and '"starts_per_case": 4' in dom


def test_dice_of_rows_from_an_earlier_run_is_filled_from_their_matrices(run, phantom_dataset):
    from regkit.evaluation.measures import backfill

    old = run.samples.copy()
    old["final_dice"] = np.nan  # as written by a regkit that did not measure Dice
    backfill(old, phantom_dataset.load)
    np.testing.assert_allclose(old["final_dice"], run.samples["final_dice"], atol=1e-3)
    assert old["landmark_tre_mm"].isna().all()  # the phantom has no landmarks


def test_store_of_an_earlier_regkit_gains_the_new_columns(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("method,case,start_id,init,final_sre\nm,c,0,8mm,1.5\n")  # fewer columns than today's
    store = ResultStore(path)
    store.append({"method": "m", "case": "c", "start_id": 1, "init": "8mm", "final_sre": 2.5, "final_dice": 0.8})
    frame = ResultStore(path).read()
    assert list(frame["final_sre"]) == [1.5, 2.5] and frame["final_dice"].isna().tolist() == [True, False]


def test_run_json_records_what_ran_not_auto(phantom_dataset, tmp_path):
    import torch

    from regkit.deep.registrar import native_bf16

    run = compare(methods="attreg", data=phantom_dataset.root, split="test", starts_per_case=1,
                  out=tmp_path / "out", show_progress=False, echo=None)
    method, = json.loads((run.out / "run.json").read_text())["methods"]
    assert method["settings"]["precision"] == "auto"  # what was asked (a resume compares it)
    assert method["ran_with"] == {"precision": "bf16" if native_bf16(torch.device("cpu")) else "float32",
                                  "device": "cpu"}
