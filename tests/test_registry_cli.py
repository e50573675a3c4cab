"""The registrar interface, the registry and the CLI skeleton."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import regkit
from regkit import RigidTransform, available_registrars, get_registrar, register_registrar
from regkit.app.cli import main
from regkit.errors import InputError
from regkit.registrar import IdentityRegistrar, Registrar, RegistrarBase, RegistrationResult


def test_public_api_imports_from_regkit():
    for name in ("RigidTransform", "Case", "load_dataset", "Registrar", "RegistrationResult", "get_registrar",
                 "available_registrars"):
        assert getattr(regkit, name) is not None


def test_identity_registrar_returns_its_start(phantom_case):
    reg = get_registrar("identity")
    assert isinstance(reg, Registrar)
    start = RigidTransform.from_params([1, 2, 3, 4, 5, 6]) @ phantom_case.ground_truth
    res = reg.register(phantom_case, start)
    assert res.ok and res.transform is start and res.runtime >= 0


def test_builtin_registrars_come_from_entry_points():
    infos = available_registrars()
    for name in ("identity", "mi", "mind", "attreg", "attreg-label", "featreg", "featreg-label", "msreg", "dvnet"):
        assert infos[name].source == "regkit", name
    assert infos["mi"].kind == "classical" and infos["attreg"].kind == "deep"
    assert infos["attreg"].capabilities.uses_device and not infos["mi"].capabilities.uses_device
    assert infos["attreg-label"].title == "Attention-Reg (label)" and infos["attreg-label"].variant == "label"


def test_local_registrar_and_failures_become_results(phantom_case):
    class Broken(RegistrarBase):
        name = "broken"

        def _register(self, case, initial):
            raise RuntimeError("boom")

    register_registrar("broken-test", Broken)
    res = get_registrar("broken-test").register(phantom_case, RigidTransform.identity())
    assert isinstance(res, RegistrationResult) and res.status == "failed" and "boom" in res.message
    assert res.transform.allclose(RigidTransform.identity())
    with pytest.raises(InputError, match="unknown registrar 'nope'"):
        get_registrar("nope")
    with pytest.raises(InputError, match="bad options"):
        get_registrar("identity", foo=1)


def test_help_imports_neither_torch_nor_itk():
    code = ("import sys; from click.testing import CliRunner; from regkit.app.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'itk', 'SimpleITK', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # its speed is measured in bench/startup_and_phantom.py


def test_list_shows_kinds_and_parameter_counts():
    r = CliRunner().invoke(main, ["list"])
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.output.splitlines()[1:]}
    assert "1,248,777" in lines["attreg"] and "1,244,393" in lines["featreg"]
    assert "classical" in lines["mi"] and "deep" in lines["dvnet"]


def test_cli_errors_are_one_line():
    r = CliRunner().invoke(main, ["synth", "--cases", "1", "--out", "/dev/null/x", "--from-mr", "/"])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output


def test_a_plugin_named_like_a_builtin_is_an_error_naming_both(tmp_path):
    site = tmp_path / "site"
    dist = site / "clash-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "clash.py").write_text("from regkit.registrar import RegistrarBase\n\n\nclass Mine(RegistrarBase):\n"
                                   "    name = 'mi'\n")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[regkit.registrars]\nmi = clash:Mine\n")
    env = {**os.environ, "PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run(["regkit", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "'mi' is declared twice" in r.stderr and "regkit" in r.stderr and "clash" in r.stderr
    with pytest.raises(InputError, match="already declared by regkit"):
        register_registrar("mi", IdentityRegistrar)
