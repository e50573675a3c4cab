"""Shared fixtures: a small synthetic dataset made once per test session, and the real images when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("REGKIT_NO_PROGRESS", "1")
SHARED_DATA = Path(os.environ.get("REGKIT_SHARED_DATA")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def _checkout_entries() -> set[str]:
    """New top-level paths in the checkout, untracked or ignored (``git status``), beside what git tracks: what a
    test writes into the working directory or the source tree (``build/``, ``regkit-register/``). Empty outside a
    git checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=normal"], cwd=root,
                                capture_output=True, text=True, timeout=60)
        tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return set()
    if status.returncode or tracked.returncode:
        return set()
    top = {p.split("/")[0] for p in tracked.stdout.splitlines()}
    skip = ("__pycache__", ".pytest_cache", ".ruff_cache", ".egg-info", ".venv")
    return {line[3:] for line in status.stdout.splitlines()
            if line[:2] in ("??", "!!") and line[3:].rstrip("/").split("/")[0] not in top
            and not any(s in line for s in skip)}


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean():
    """The tests write only into temporary folders: nothing new may appear in the checkout."""
    before = _checkout_entries()
    yield
    left = sorted(_checkout_entries() - before)
    assert not left, f"the tests left these in the checkout: {left}"


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory):
    """Four phantom cases: train 2, val 1, test 1."""
    from regkit.synth.dataset import synth_dataset

    out = tmp_path_factory.mktemp("phantom")
    splits = {"train": ["case000", "case001"], "val": ["case002"], "test": ["case003"]}
    return synth_dataset(out, 4, seed=11, splits=splits, workers=1, show_progress=False)


@pytest.fixture(scope="session")
def phantom_case(phantom_dataset):
    return phantom_dataset.load("case003")


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED_DATA / "prostate_mr").is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def itk_loaded():
    """ITK with elastix, loaded once per test session."""
    from regkit.baselines.elastix import itk_module

    return itk_module()


def pytest_collection_modifyitems(config, items):
    """Tests that start ITK/elastix (seconds, once per process) are slow by definition: `-m "not slow"` skips them."""
    for item in items:
        if "itk_loaded" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture(scope="session")
def test_plugin(tmp_path_factory):
    """(site folder, subprocess environment): the test plug-in's registrars (``gated``, ``bad-result``, ``crasher``)
    declared as entry points of a distribution ``regkit-test-plugin``."""
    import sys

    sys.path.insert(0, str(PLUGINS))
    try:
        from regkit_test_plugin import ENTRY_POINTS
    finally:
        sys.path.remove(str(PLUGINS))
    site = tmp_path_factory.mktemp("plugin-site")
    dist = site / "regkit_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: regkit-test-plugin\nVersion: 0.1\n")
    lines = "".join(f"{name} = regkit_test_plugin:{cls}\n" for name, cls in ENTRY_POINTS.items())
    (dist / "entry_points.txt").write_text("[regkit.registrars]\n" + lines)
    path = os.pathsep.join([str(site), str(PLUGINS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return site, {**os.environ, "PYTHONPATH": path, "REGKIT_NO_PROGRESS": "1"}


@pytest.fixture
def with_test_plugin(test_plugin, monkeypatch):
    """The test plug-in's registrars, visible in this process (and in the workers it spawns) for one test."""
    from regkit.registry import _entry_point_declarations

    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.syspath_prepend(str(test_plugin[0]))
    _entry_point_declarations.cache_clear()
    yield test_plugin
    _entry_point_declarations.cache_clear()
