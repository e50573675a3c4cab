"""The README's promises: its two commands, and the plug-in example (as an object and as an entry point)."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    commands = [b.strip() for b in code_blocks("bash")]
    test_cmd = next(c for c in commands if "pytest" in c)
    main_cmd = next(c for c in commands if "regkit compare" in c)
    assert "pip install" in main_cmd and "pip install" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


@pytest.fixture()
def small_cache(tmp_path, monkeypatch, phantom_dataset):
    monkeypatch.setenv("REGKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_plugin_example_runs(small_cache):
    example = next(b for b in code_blocks("python") if "class CentreOfMass" in b)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(example, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert set(result.samples["method"]) == {"identity", "com"}
    assert (result.samples["status"] == "ok").all()
    assert (small_cache / "cmp-com" / "table1.md").exists()


def test_plugin_through_an_entry_point(tmp_path):
    example = next(b for b in code_blocks("python") if "class CentreOfMass" in b)
    cls_source = example[example.index("class CentreOfMass"):example.index("regkit.register_registrar")]
    pkg = tmp_path / "site" / "my_package"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "registrars.py").write_text("import numpy as np\nimport regkit\nfrom regkit import RigidTransform\n\n\n"
                                       + cls_source)
    toml = next(b for b in re.findall(r"```toml\n(.*?)```", README, flags=re.S) if "regkit.registrars" in b)
    name, value = (part.strip() for part in toml.strip().splitlines()[1].split("="))
    entry = f"{name} = {value.strip(chr(34))}"  # entry_points.txt is INI: no TOML quotes
    dist = tmp_path / "site" / "my_package-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[regkit.registrars]\n{entry}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(["regkit", "list"], capture_output=True, text=True, env=env, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("com "))
    assert "classical" in line and "my-package" in line
    code = textwrap.dedent("""
        import regkit
        reg = regkit.get_registrar("com")
        print(type(reg).__module__)
    """)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert got.stdout.strip() == "my_package.registrars"


@pytest.mark.slow
def test_network_example_trains_and_compares(small_cache):
    example = next(b for b in code_blocks("python") if "class TinyReg" in b)
    namespace: dict = {"__name__": "readme_network_example"}
    exec(compile(example, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert set(result.samples["method"]) == {"identity", "tiny"}
    assert (result.samples["status"] == "ok").all()
    assert (small_cache / "runs" / "tiny" / "best.safetensors").exists()
    table = (small_cache / "cmp-tiny" / "table1.md").read_text()
    assert "TinyReg (image)" in table and "No registration" in table


def test_network_through_an_entry_point(tmp_path):
    example = next(b for b in code_blocks("python") if "class TinyReg" in b)
    module = example[: example.index("regkit.register_method")]
    pkg = tmp_path / "site" / "my_package"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(module)
    toml = next(b for b in re.findall(r"```toml\n(.*?)```", README, flags=re.S) if "tiny" in b)
    name, value = (part.strip() for part in toml.strip().splitlines()[1].split("="))
    dist = tmp_path / "site" / "my_package-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[regkit.registrars]\n{name} = {value.strip(chr(34))}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(["regkit", "list"], capture_output=True, text=True, env=env, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("tiny "))
    assert "deep" in line and "my-package" in line and " 830 " in line
    code = textwrap.dedent("""
        from regkit.deep.training import trainable_methods
        import regkit
        print("tiny" in trainable_methods(), regkit.get_registrar("tiny", checkpoint="random").arch.title)
    """)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert got.stdout.split() == ["True", "TinyReg"]
