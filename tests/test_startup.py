"""Start-up: ITK loads its core and elastix alone, registers as with ITK's full load, and says so while it loads."""

import importlib
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from regkit import progress
from regkit.baselines.elastix import ELASTIX_NEEDS, _load_elastix_alone

LOADED = """
import json, sys
from regkit.baselines.elastix import itk_module
itk = itk_module()
executed = sorted(k[4:-6] for k, m in sys.modules.items()
                  if k.startswith("itk.ITK") and k.endswith("Python") and hasattr(m, "swig"))
optional = [m for m in ("torch", "IPython", "distributed") if m in sys.modules]
image = itk.GetImageFromArray(__import__("numpy").zeros((3, 4, 5), "float32"))
itk.imwrite(image, sys.argv[1])  # image IO: an ITK module left to load on first use, as usual
print(json.dumps({"executed": executed, "optional": optional}))
"""


def _run(args, **env):
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_itk_loads_its_core_and_elastix_alone_and_the_rest_on_first_use(tmp_path):
    out = _run(["-c", LOADED, str(tmp_path / "a.nrrd")])
    facts = json.loads(out.stdout.splitlines()[-1])
    assert facts["executed"] == sorted([*ELASTIX_NEEDS, "ITKBridgeNumPy"]), facts
    assert facts["optional"] == []  # neither torch, nor IPython, nor dask's distributed
    assert (tmp_path / "a.nrrd").stat().st_size > 0


@pytest.mark.slow
def test_register_says_it_loads_itk_and_matches_the_full_load_bit_for_bit(phantom_dataset, tmp_path):
    case = phantom_dataset.root / "case003"
    args = ["-m", "regkit.app.cli", "register", "--fixed", str(case / "mr.nii.gz"), "--moving",
            str(case / "trus.nii.gz"), "--fixed-label", str(case / "mr_label.nii.gz"), "--method", "mi",
            "--init", "centres", "-O", "iterations=20", "--no-qa"]
    lean = _run([*args, "--out", str(tmp_path / "lean")], REGKIT_NO_PROGRESS="")
    full = _run([*args, "--out", str(tmp_path / "full")], REGKIT_ITK_FULL_LOAD="1", REGKIT_NO_PROGRESS="1")
    for name in ("transform.txt", "transform.tfm", "moving_resampled.nii.gz"):
        assert (tmp_path / "lean" / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    assert lean.stderr.count("loading ITK and elastix (about") == 1 and "torch" not in lean.stderr
    assert "loading" not in full.stderr  # REGKIT_NO_PROGRESS, as in compare's workers


def test_an_itk_laid_out_otherwise_is_left_to_load_as_usual(monkeypatch):
    before = dict(sys.modules)
    elastix = SimpleNamespace(_depends=("ITKPyBase", "ITKSmoothing"))  # no ITKCommon below elastix
    for base in (SimpleNamespace(),  # no module table
                 SimpleNamespace(itk_base_global_module_data={}, create_itk_module=None),  # no elastix
                 SimpleNamespace(itk_base_global_module_data={"Elastix": elastix}, create_itk_module=None)):
        assert _load_elastix_alone(None, base) is False
    assert elastix._depends == ("ITKPyBase", "ITKSmoothing") and dict(sys.modules) == before


def test_a_slow_import_is_announced_once_on_stderr(tmp_path, monkeypatch, capsys):
    (tmp_path / "regkit_slow_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, progress._SlowImportNote)])
    monkeypatch.setitem(progress.SLOW_IMPORTS, "regkit_slow_probe", ("the probe", 7))
    monkeypatch.setenv("REGKIT_NO_PROGRESS", "")
    progress.note_slow_imports()
    progress.note_slow_imports()  # installed once
    for _ in range(2):  # the second import says nothing
        importlib.import_module("regkit_slow_probe")
        del sys.modules["regkit_slow_probe"]
    assert capsys.readouterr().err == "loading the probe (about 7 s, once per process)...\n"
    monkeypatch.setenv("REGKIT_NO_PROGRESS", "1")
    progress.note("a step")
    assert capsys.readouterr().err == ""
