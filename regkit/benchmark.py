"""The built-in synthetic benchmark: made from the phantom on first use and cached.

Every command that gets no ``--data`` uses it. It has 84 cases (64 train, 8 val, 12 test) drawn with a fixed
seed; only the splits a command needs are rendered (about 1.5 s per case), into
``$REGKIT_CACHE/benchmark-v<phantom version>-s<seed>`` (default ``~/.cache/regkit``).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from regkit.dataset import SPLITS, Dataset

BENCHMARK_SEED = 2021
BENCHMARK_SIZES = {"train": 64, "val": 8, "test": 12}


def cache_dir() -> Path:
    root = os.environ.get("REGKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "regkit")
    return Path(root)


def benchmark_splits() -> dict[str, list[str]]:
    out, k = {}, 0
    for split in SPLITS:
        out[split] = [f"case{i:03d}" for i in range(k, k + BENCHMARK_SIZES[split])]
        k += BENCHMARK_SIZES[split]
    return out


def benchmark_path() -> Path:
    from regkit.synth.phantom import PHANTOM_VERSION

    return cache_dir() / f"benchmark-v{PHANTOM_VERSION}-s{BENCHMARK_SEED}"


@contextmanager
def _locked(path: Path, show_progress: bool = True):
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from regkit.progress import note

            note(f"waiting for another process that is writing the built-in benchmark ({path})...",
                 disable=not show_progress)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def builtin_benchmark(splits: tuple[str, ...] | list[str] | None = None, workers: int | None = None,
                      show_progress: bool = True, cases: int | None = None) -> Dataset:
    """The built-in benchmark with (at least) ``splits`` rendered; all splits when None.

    Parameters
    ----------
    splits : sequence of str, optional
        The splits to render (``"train"``, ``"val"``, ``"test"``) if they are not cached yet; None: all.
    workers : int, optional
        Processes that render cases [the CPU count].
    show_progress : bool
        Show a progress bar while rendering.
    cases : int, optional
        Render only the first ``cases`` of each split in ``splits`` (at least; a split already rendered further
        keeps its cases), e.g. for ``regkit compare --cases 2``; a later call that wants more renders the rest.
        Every case is the same whichever call renders it (its seed follows its index in the full benchmark).

    Returns
    -------
    Dataset
        The cached benchmark (``$REGKIT_CACHE``, default ``~/.cache/regkit``).
    """
    from regkit.synth.dataset import synth_dataset

    want = list(splits) if splits else list(SPLITS)
    full = benchmark_splits()
    path = benchmark_path()
    workers = workers or min(2, os.cpu_count() or 1)
    with _locked(path, show_progress):
        have: dict[str, list[str]] = {}
        manifest = path / "dataset.json"
        if manifest.exists():
            from regkit.dataset import read_manifest

            have = read_manifest(manifest)["splits"]

        def size(split: str) -> int:  # how many of the split's cases (a prefix of its list) to hold
            held = len(have.get(split, ()))
            if split not in want:
                return held
            return len(full[split]) if cases is None else min(len(full[split]), max(cases, held))

        keep = {s: full[s][:size(s)] for s in SPLITS if size(s)}
        # case seeds follow the case's index in the full benchmark, so partial renders agree with full ones
        return synth_dataset(path, sum(BENCHMARK_SIZES.values()), seed=BENCHMARK_SEED, splits=keep,
                             workers=workers, show_progress=show_progress, name="regkit built-in benchmark",
                             index_of={cid: i for i, cid in enumerate(c for s in SPLITS for c in full[s])})


def open_dataset(data: str | Path | None, splits: tuple[str, ...] | list[str] | None = None,
                 show_progress: bool = True, cases: int | None = None) -> Dataset:
    """The dataset folder ``data``, or the built-in benchmark (with ``splits`` rendered, or their first ``cases``)
    when it is None."""
    if data is None:
        return builtin_benchmark(splits, show_progress=show_progress, cases=cases)
    from regkit.dataset import load_dataset

    return load_dataset(data)
