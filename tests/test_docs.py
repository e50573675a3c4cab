"""The documentation site: it builds strictly (no broken link, no missing page), the public API is documented in
numpydoc, the relative links of README.md and BENCHMARKS.md resolve, and the examples on the docs pages run
(the plug-in examples of docs/plugins.md, as objects and as entry points)."""

import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import regkit

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = (ROOT / "docs" / "plugins.md").read_text()


def code_blocks(lang: str, text: str = PLUGINS) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def build(tmp_path, root=ROOT):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, env=env, cwd=root)


def test_the_site_builds_strictly_outside_the_checkout(tmp_path):
    before = subprocess.run(["git", "status", "--porcelain", "--ignored"], capture_output=True, text=True, cwd=ROOT)
    got = build(tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    site = tmp_path / "site"
    assert (site / "index.html").exists() and (site / "benchmarks" / "index.html").exists()
    api = (site / "api" / "core" / "index.html").read_text()
    assert "regkit.transform.RigidTransform" in api
    assert "Table 2: the bundled networks on three test sets" in (site / "benchmarks" / "index.html").read_text()
    after = subprocess.run(["git", "status", "--porcelain", "--ignored"], capture_output=True, text=True, cwd=ROOT)
    assert after.stdout == before.stdout  # nothing written into the checkout


def test_a_broken_link_fails_the_build(tmp_path):
    copy = tmp_path / "repo"
    for name in ("mkdocs.yml", "BENCHMARKS.md", "pyproject.toml"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text((ROOT / name).read_text())
    for folder in ("docs", "bench/results", "regkit", "baselines", "deep", "evaluation"):
        (copy / folder).parent.mkdir(parents=True, exist_ok=True)
        (copy / folder).symlink_to(ROOT / folder)
    (copy / "BENCHMARKS.md").write_text((ROOT / "BENCHMARKS.md").read_text() + "\n[gone](bench/results/gone.txt)\n")
    got = build(tmp_path, copy)
    assert got.returncode != 0 and "gone.txt" in got.stdout + got.stderr


def relative_links(text: str) -> list[str]:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    return [link for link in links if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", ["README.md", "BENCHMARKS.md"])
def test_every_relative_link_of_the_top_pages_resolves(page):
    missing = [link for link in relative_links((ROOT / page).read_text()) if not (ROOT / link).exists()]
    assert not missing, f"{page} links to missing files: {missing}"


def takes_parameters(obj) -> bool:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return any(p.name not in ("self", "cls") and p.kind not in kinds for p in signature.parameters.values())


def numpydoc_problems(name: str, obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return [f"{name}: no docstring"]
    sections = {"Parameters"} | ({"Attributes"} if inspect.isclass(obj) else set())
    if takes_parameters(obj) and not any(re.search(rf"^{s}\n-+$", doc, flags=re.M) for s in sections):
        return [f"{name}: takes parameters but its docstring has no numpydoc Parameters section"]
    return []


def test_every_public_name_has_a_numpydoc_docstring():
    problems = [p for name in regkit.__all__ for p in numpydoc_problems(name, getattr(regkit, name))]
    assert not problems, "\n".join(problems)


def test_the_docstring_check_catches_a_missing_section():
    def undocumented(a, b=1):
        """Adds."""

    def documented(a):
        """Adds.

        Parameters
        ----------
        a : int
            A number.
        """

    assert numpydoc_problems("f", undocumented) and not numpydoc_problems("g", documented)
    assert numpydoc_problems("h", lambda x: x) == ["h: no docstring"]


def test_every_public_name_is_on_an_api_page():
    pages = "".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    directives = set(re.findall(r"^::: ([\w.]+)$", pages, flags=re.M))
    for name in regkit.__all__:
        home = getattr(regkit, name).__module__
        assert home in directives or f"{home}.{name}" in directives, f"{name} ({home}) is on no API page"
        assert f"[`{name}`]" in (ROOT / "docs" / "api" / "index.md").read_text(), f"{name} is not in the API index"


@pytest.fixture()
def small_cache(tmp_path, monkeypatch, phantom_dataset):
    monkeypatch.setenv("REGKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_example(marker: str):
    """Run the docs/plugins.md example that defines ``marker``; its ``result``."""
    example = next(b for b in code_blocks("python") if marker in b)
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(example, "docs/plugins.md", "exec"), namespace)
    return namespace["result"]


def install_example(tmp_path, module: str, source: str, toml_marker: str) -> dict:
    """Install ``source`` as ``my_package.<module>`` with the entry point of the docs' TOML block; the env."""
    pkg = tmp_path / "site" / "my_package"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / f"{module}.py").write_text(source)
    toml = next(b for b in re.findall(r"```toml\n(.*?)```", PLUGINS, flags=re.S) if toml_marker in b)
    name, value = (part.strip() for part in toml.strip().splitlines()[1].split("="))
    dist = tmp_path / "site" / "my_package-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    # entry_points.txt is INI: no TOML quotes
    (dist / "entry_points.txt").write_text(f"[regkit.registrars]\n{name} = {value.strip(chr(34))}\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path / "site") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def listed(env: dict, name: str) -> str:
    out = subprocess.run(["regkit", "list"], capture_output=True, text=True, env=env, check=True).stdout
    return next(line for line in out.splitlines() if line.startswith(f"{name} "))


@pytest.mark.slow
def test_plugin_example_runs(small_cache):
    result = run_example("class CentreOfMass")
    assert set(result.samples["method"]) == {"identity", "com"}
    assert (result.samples["status"] == "ok").all()
    assert (small_cache / "cmp-com" / "table1.md").exists()


def test_plugin_through_an_entry_point(tmp_path):
    example = next(b for b in code_blocks("python") if "class CentreOfMass" in b)
    cls_source = example[example.index("class CentreOfMass"):example.index("regkit.register_registrar")]
    env = install_example(tmp_path, "registrars", "import numpy as np\nimport regkit\nfrom regkit import "
                          "RigidTransform\n\n\n" + cls_source, "regkit.registrars")
    line = listed(env, "com")
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
    result = run_example("class TinyReg")
    assert set(result.samples["method"]) == {"identity", "tiny"}
    assert (result.samples["status"] == "ok").all()
    assert (small_cache / "runs" / "tiny" / "best.safetensors").exists()
    table = (small_cache / "cmp-tiny" / "table1.md").read_text()
    assert "TinyReg (image)" in table and "No registration" in table


def test_network_through_an_entry_point(tmp_path):
    example = next(b for b in code_blocks("python") if "class TinyReg" in b)
    env = install_example(tmp_path, "tiny", example[: example.index("regkit.register_method")], "tiny")
    line = listed(env, "tiny")
    assert "deep" in line and "my-package" in line and " 830 " in line
    code = textwrap.dedent("""
        from regkit.deep.training import trainable_methods
        import regkit
        print("tiny" in trainable_methods(), regkit.get_registrar("tiny", checkpoint="random").arch.title)
    """)
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert got.stdout.split() == ["True", "TinyReg"]
