"""Faults injected into comparisons: a second run on a folder in use, SIGKILL of the parent alone and of a worker,
a full disk midway, a crash in the runner's own process, registrars that return garbage or cannot be set up.

Each run is driven by events, never by sleeps: the test plug-in's ``gated`` registrar leaves a marker file when it
blocks at a known sample, and goes on when the test creates its gate file.
"""

from __future__ import annotations

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
from click.testing import CliRunner

from regkit.app.cli import main
from regkit.errors import FolderInUseError, InputError
from regkit.evaluation.compare import compare
from regkit.evaluation.store import KEY, ResultStore
from regkit.lock import LOCK_NAME, hold_folder

WAIT_S = 120  # a bound on every wait for an event, so that a broken run fails the test instead of hanging it


def wait_for(condition, what: str, proc: subprocess.Popen | None = None):
    """Wait until ``condition()`` is truthy (the event), failing if ``proc`` ends first or after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not (value := condition()):
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{out}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def waiting(markers: Path) -> list[int]:
    """Pids of the processes blocked at the gate."""
    return sorted(int(p.name.split("-")[1]) for p in markers.glob("waiting-*"))


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def cli(args: list[str], env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "regkit.app.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def gated_args(data: Path, out: Path, markers: Path, gate: Path, starts: int, workers: int,
               block_after: int) -> list[str]:
    markers.mkdir(exist_ok=True)
    return ["compare", "--data", str(data), "--split", "train", "-m", "gated", "-k", str(starts), "-j", str(workers),
            "-o", str(out), "-O", f"gated.markers={markers}", "-O", f"gated.gate={gate}",
            "-O", f"gated.block_after={block_after}"]


def gated_options(markers: Path, gate: Path, block_after: int) -> dict:
    return {"gated": {"markers": str(markers), "gate": str(gate), "block_after": block_after}}


def check_halfway(samples: pd.DataFrame, n: int) -> None:
    """``n`` distinct samples, each ``ok`` and exactly halfway from its start to the truth."""
    assert len(samples) == n and not samples.duplicated(KEY).any()
    assert (samples["status"] == "ok").all(), samples["message"].tolist()
    np.testing.assert_allclose(samples["final_sre"], 0.5 * samples["initial_sre"], rtol=0.05)


# ---------------------------------------------------------------------------------------------- the lock
@pytest.mark.slow
def test_a_second_run_on_a_folder_in_use_is_refused_and_named(phantom_dataset, with_test_plugin, tmp_path):
    _, env = with_test_plugin
    out, markers, gate = tmp_path / "out", tmp_path / "markers", tmp_path / "gate"
    first = cli(gated_args(phantom_dataset.root, out, markers, gate, starts=1, workers=1, block_after=0), env)
    wait_for(lambda: waiting(markers), "the first run blocks", first)
    run_json = (out / "run.json").read_text()
    # the same command, and one with other arguments: both refused at once, naming the first run
    for methods, k in (("gated", "1"), ("identity", "3")):
        r = CliRunner().invoke(main, ["compare", "--data", str(phantom_dataset.root), "--split", "train", "-m", methods,
                                      "-k", k, "-o", str(out)])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        text = " ".join(r.output.split())
        assert f"is in use by another regkit compare run: process {first.pid} on host" in text
        assert "regkit.app.cli compare" in text or "cli.py compare" in text
    with pytest.raises(FolderInUseError, match=f"process {first.pid}"):
        compare(methods="identity", data=phantom_dataset.root, split="train", out=out, show_progress=False,
                echo=None)
    assert (out / "run.json").read_text() == run_json  # the refused runs wrote nothing
    gate.touch()
    assert first.wait(WAIT_S) == 0, first.stdout.read()
    check_halfway(ResultStore(out / "results.csv").read(), 2)
    with hold_folder(out):  # released at the end of the run
        pass


HOLDER = textwrap.dedent("""
    import sys
    from regkit.lock import hold_folder
    with hold_folder(sys.argv[1], "test holder"):
        print("held", flush=True)
        sys.stdin.read()  # until killed
""")


def test_the_lock_dies_with_its_holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(FolderInUseError, match=rf"in use by another test holder: process {proc.pid} on host .* "
                                               r"running `.*-c"):
        with hold_folder(tmp_path):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with hold_folder(tmp_path) as record:  # no stale lock after a SIGKILL
        assert record["pid"] == os.getpid()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert (tmp_path / LOCK_NAME).read_text() == ""


# ---------------------------------------------------------------------------------------------- kills
@pytest.mark.slow
def test_parent_killed_alone_takes_its_workers_and_the_resume_is_exact(phantom_dataset, with_test_plugin,
                                                                         tmp_path):
    _, env = with_test_plugin
    out, markers, gate = tmp_path / "out", tmp_path / "markers", tmp_path / "gate"
    parent = cli(gated_args(phantom_dataset.root, out, markers, gate, starts=3, workers=2, block_after=1), env,
                 start_new_session=True)
    workers = wait_for(lambda: len(waiting(markers)) == 2 and waiting(markers), "both workers block", parent)
    before = ResultStore(out / "results.csv").read()
    assert len(before) == 2  # one sample from each worker, then each blocks in its second
    parent.send_signal(signal.SIGKILL)  # the parent alone: its workers are not signalled
    parent.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), "the orphaned workers end")
    gate.touch()
    done = compare(methods="gated", data=phantom_dataset.root, split="train", starts_per_case=3, workers=2, out=out,
                   method_options=gated_options(markers, gate, 1), show_progress=False, echo=None)
    check_halfway(done.samples, 6)
    kept = before.merge(done.samples, on=KEY, suffixes=("_before", "_after"))
    assert len(kept) == 2
    np.testing.assert_array_equal(kept["final_sre_before"], kept["final_sre_after"])
    assert len(pd.read_csv(out / "results.csv")) == 6  # no row written twice


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_nothing_is_lost(phantom_dataset, with_test_plugin, tmp_path):
    _, env = with_test_plugin
    out, markers, gate = tmp_path / "out", tmp_path / "markers", tmp_path / "gate"
    args = gated_args(phantom_dataset.root, out, markers, gate, starts=2, workers=1, block_after=1)
    run = cli(args, env)
    (victim,) = wait_for(lambda: waiting(markers), "the worker blocks", run)
    os.kill(victim, signal.SIGKILL)
    # the sample it held goes to a fresh worker, which does it and blocks in its next one
    wait_for(lambda: [p for p in waiting(markers) if p != victim], "a fresh worker takes over", run)
    gate.touch()
    assert run.wait(WAIT_S) == 0, run.stdout.read()
    results = out / "results.csv"
    check_halfway(ResultStore(results).read(), 4)
    before = results.read_bytes()
    again = cli(args, env)
    assert again.wait(WAIT_S) == 0, again.stdout.read()
    assert results.read_bytes() == before  # the resume is a no-op


IGNORE_SIGXFSZ = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past a file-size limit fails with EFBIG, as on a full disk
    from regkit.app.cli import main
    sys.argv[0] = "regkit"
    main()
""")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(__import__("resource"), "prlimit"), reason="needs Linux's prlimit")
def test_a_full_disk_midway_stops_with_a_named_error_and_the_resume_is_exact(phantom_dataset, with_test_plugin,
                                                                          tmp_path):
    import resource

    _, env = with_test_plugin
    out, markers, gate = tmp_path / "out", tmp_path / "markers", tmp_path / "gate"
    args = gated_args(phantom_dataset.root, out, markers, gate, starts=3, workers=1, block_after=3)
    run = subprocess.Popen([sys.executable, "-c", IGNORE_SIGXFSZ, *args], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: waiting(markers), "three samples are written", run)
    results = out / "results.csv"
    before = ResultStore(results).read()
    assert len(before) == 3
    room = results.stat().st_size + 100  # the disk fills up in the middle of the next row
    resource.prlimit(run.pid, resource.RLIMIT_FSIZE, (room, room))
    gate.touch()
    assert run.wait(WAIT_S) == 2, run.stdout.read()
    text = " ".join(run.stdout.read().split())
    assert "Traceback" not in text and "cannot write a result row: File too large" in text, text
    assert "The 3 rows written before are kept" in text and "run the same command again to resume" in text
    assert results.stat().st_size == room  # a row cut short by the full disk
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    done = ResultStore(results).read()
    check_halfway(done, 6)
    kept = before.merge(done, on=KEY, suffixes=("_before", "_after"))
    np.testing.assert_array_equal(kept["final_sre_before"], kept["final_sre_after"])
    assert len(pd.read_csv(results)) == 6  # nothing written twice, the cut row dropped


DIER = textwrap.dedent("""
    import os, sys
    from regkit import register_registrar
    from regkit.registrar import RegistrarBase
    from regkit.evaluation.compare import compare


    class Dier(RegistrarBase):
        '''Kills the process it runs in on case001 (a native crash), and returns its start elsewhere.'''

        def _register(self, case, initial):
            if case.case_id == "case001":
                os._exit(139)
            return initial, {}


    register_registrar("dier", Dier)  # in-process only: it runs in the runner's own process
    compare(methods="dier", data=sys.argv[1], split="train", starts_per_case=2, out=sys.argv[2], workers=1,
            show_progress=False, echo=None)
""")


@pytest.mark.slow
def test_a_crash_in_the_runners_process_is_recorded_after_two_deaths(phantom_dataset, tmp_path):
    out = tmp_path / "out"
    codes = [subprocess.run([sys.executable, "-c", DIER, str(phantom_dataset.root), str(out)],
                            capture_output=True, text=True, timeout=WAIT_S).returncode for _ in range(3)]
    assert codes == [139, 139, 0]  # died, died again on the same samples, then recorded them and finished
    s = ResultStore(out / "results.csv").read()
    assert len(s) == 4 and not s.duplicated(KEY).any()
    died = s[s["case"] == "case001"]
    assert (died["status"] == "failed").all() and died["message"].str.contains("the run died 2 times").all()
    assert (s[s["case"] == "case000"]["status"] == "ok").all()
    assert not (out / ".inflight.json").exists()


# ---------------------------------------------------------------------------------------------- garbage and setup
@pytest.mark.slow
def test_bad_results_become_failed_rows_naming_the_registrar(phantom_dataset, with_test_plugin, tmp_path):
    kinds = {"nan": "a transform with NaN or infinite values", "ndarray": "a numpy.ndarray of shape (1, 4, 4) from "
             "register_many", "none": "None instead of a RegistrationResult", "short": "a list of 0 from register_many",
             "matrix": "a transform that is a numpy.ndarray of shape (4, 4), not a RigidTransform",
             "exit": "SystemExit: 3"}  # "nan" is also a label that pandas would read as missing
    done = compare(methods=",".join(f"{k}=bad-result" for k in kinds), data=phantom_dataset.root, split="train",
                   starts_per_case=1, workers=1, out=tmp_path / "out", show_progress=False, echo=None,
                   method_options={k: {"kind": k} for k in kinds})
    s = done.samples
    assert len(s) == 2 * len(kinds) and (s["status"] == "failed").all()
    np.testing.assert_allclose(s["final_sre"], s["initial_sre"])  # a failure keeps its start
    for kind, text in kinds.items():
        messages = s[s["method"] == kind]["message"]
        if kind != "exit":
            assert messages.str.contains(f"registrar '{kind}' returned", regex=False).all(), messages.tolist()
        assert messages.str.contains(text, regex=False).all(), messages.tolist()


@pytest.mark.slow
def test_a_bad_option_fails_before_any_work_and_does_not_poison_the_folder(phantom_dataset, with_test_plugin,
                                                                         tmp_path):
    out = tmp_path / "out"
    args = ["compare", "--data", str(phantom_dataset.root), "--split", "train", "-k", "1", "-o", str(out)]
    r = CliRunner().invoke(main, [*args, "-m", "mi", "-O", "mi.iterations=abc"])
    assert r.exit_code == 2 and "option iterations='abc' is a string, but it takes an integer" in r.output
    r = CliRunner().invoke(main, [*args, "-m", "gated", "-O", "gated.block_after=abc"])
    assert r.exit_code == 2 and "option block_after='abc' is a string" in r.output
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing that binds the folder
    r = CliRunner().invoke(main, [*args, "-m", "gated", "-O", "gated.block_after=0"])  # the corrected option
    assert r.exit_code == 0, r.output
    check_halfway(ResultStore(out / "results.csv").read(), 2)


@pytest.mark.slow
def test_a_registrar_that_cannot_be_set_up_stops_the_run_and_records_nothing(phantom_dataset, with_test_plugin,
                                                                            tmp_path):
    out = tmp_path / "out"
    args = ["compare", "--data", str(phantom_dataset.root), "--split", "train", "-k", "1", "-m", "gated", "-o",
            str(out)]
    r = CliRunner().invoke(main, [*args, "-O", "gated.block_after=-1"])  # the type is right, the value is not
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "registrar 'gated' (gated) cannot be set up" in r.output and "block_after must be at least 0" in r.output
    assert len(ResultStore(out / "results.csv").read()) == 0
    r = CliRunner().invoke(main, [*args, "-O", "gated.block_after=0"])  # not refused as "other options"
    assert r.exit_code == 0, r.output
    check_halfway(ResultStore(out / "results.csv").read(), 2)


def test_check_results_unit(phantom_case):
    from regkit.registrar import RegistrationResult, check_results
    from regkit.transform import RigidTransform

    start = phantom_case.ground_truth
    pairs = [(phantom_case, start)]
    good = RegistrationResult(RigidTransform.identity(), 0.5)
    assert check_results([good], pairs, "x") == [good]
    for bad, text in ((None, "returned None from register_many"), ([good, good], "returned a list of 2"),
                      ([RegistrationResult(start, float("nan"))], "a runtime of nan"),
                      ([RegistrationResult(RigidTransform.identity((2,)), 0.1)], "a batch of (2,) transforms"),
                      ([RegistrationResult(start, 0.1, status=None)], "a status None")):
        (r,) = check_results(bad, pairs, "x")
        assert r.status == "failed" and text in r.message and r.transform is start, (text, r.message)
    with pytest.raises(InputError, match="must be a dict"):
        from regkit.registry import check_options, declaration

        check_options(declaration("identity"), [1])
