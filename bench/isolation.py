"""What containing a registrar's crash costs: a comparison's samples in the caller's process, in spawned worker
processes, or each in a forked child.

    python bench/isolation.py [SAMPLES_PER_CASE]

The same trivial registrar (the test plug-in's ``gated``: half way to the truth, microseconds of work) runs
``regkit.compare`` on two phantom cases three ways: registered in this process (``register_registrar``: it runs in
the caller's process, uncontained), as an entry point (spawned worker processes, ``workers=1``: a crash ends a
worker, not the run), and, outside regkit, each task in a child forked from a process that has torch loaded (what
containing an in-process registrar would cost). Prints the median wall time of each, in one run (the machine is
shared: compare the ratios).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from _util import timed

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "plugins"


def plugin_site(root: Path) -> Path:
    """A site folder declaring the test plug-in's registrars as entry points (as tests/conftest.py does)."""
    sys.path.insert(0, str(PLUGINS))
    from regkit_test_plugin import ENTRY_POINTS

    site = root / "site"
    dist = site / "regkit_test_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: regkit-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[regkit.registrars]\n" + "".join(
        f"{name} = regkit_test_plugin:{cls}\n" for name, cls in ENTRY_POINTS.items()))
    return site


def _forked_task(conn, case, start) -> None:
    from regkit_test_plugin import halfway

    conn.send(halfway(case, start).matrix)
    conn.close()


def main() -> None:
    per_case = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    root = Path(tempfile.mkdtemp(prefix="regkit-isolation-"))
    site = plugin_site(root)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGINS), os.environ.get("PYTHONPATH", "")])
    os.environ["REGKIT_NO_PROGRESS"] = "1"

    import multiprocessing as mp

    import torch  # noqa: F401 - the parent of a deep comparison has it loaded
    from regkit_test_plugin import Gated

    from regkit import register_registrar
    from regkit.evaluation.compare import compare
    from regkit.starts import make_starts
    from regkit.synth.dataset import synth_dataset

    data = synth_dataset(root / "data", 2, seed=11, splits={"train": ["case000", "case001"]}, workers=1,
                         show_progress=False)
    register_registrar("gated-local", Gated)
    n = 2 * per_case
    runs = iter(range(1000))

    def run(method: str) -> None:
        compare(methods=method, data=data.root, split="train", starts_per_case=per_case, workers=1,
                out=root / f"out{next(runs)}", show_progress=False, echo=None)

    in_process = timed(lambda: run("gated-local"))
    workers = timed(lambda: run("gated"))
    cases = [data.load(c) for c in ("case000", "case001")]
    starts = make_starts(cases, "8mm", per_case, seed=0)
    by_id = {c.case_id: c for c in cases}
    fork = mp.get_context("fork")

    def forked() -> None:
        for s in starts:
            parent, child = fork.Pipe()
            p = fork.Process(target=_forked_task, args=(child, by_id[s.case], s.transform))
            p.start()
            parent.recv()
            p.join()

    per_fork = timed(forked) / n
    print(f"{n} samples (2 phantom cases x {per_case} starts), the test plug-in's `gated` registrar; "
          f"median of 3; {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"compare, in the caller's process (register_registrar): {in_process:6.2f} s")
    print(f"compare, spawned worker processes (entry point, -j 1):  {workers:6.2f} s "
          f"(+{workers - in_process:.2f} s, x{workers / in_process:.2f})")
    print(f"each sample in a child forked from a process with torch loaded: {1000 * per_fork:.1f} ms per sample "
          f"(+{per_fork * n:.2f} s over {n} samples)")


if __name__ == "__main__":
    main()
