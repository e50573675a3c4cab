"""The package's shape: one installed namespace, and layers whose imports run one way (design.md)."""

import ast
import subprocess
import sys
import zipfile
from graphlib import CycleError, TopologicalSorter
from importlib.metadata import distribution
from pathlib import Path

import pytest

import regkit

ROOT = Path(__file__).resolve().parents[1]

# module prefix → layer; the longest matching prefix wins. The package root `regkit` is the public facade,
# which re-exports from every layer lazily, so it sits with the application on top.
LAYERS = {
    "regkit": 0,                 # core: geometry, I/O, cases, datasets, phantom, protocol, registrar protocol
    "regkit.baselines": 1,       # methods: classical
    "regkit.deep": 1,            # methods: deep
    "regkit.evaluation": 2,      # evaluation: runner, statistics, tables, plots
    "regkit.app": 3,             # application: CLI, one-pair registration
}
FACADE = "regkit"
METHOD_FAMILIES = ("regkit.baselines", "regkit.deep")


def layer_of(module: str) -> tuple[int, str]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best], best


def package_modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name (folders as the package-dir mapping installs them)."""
    roots = {"regkit": ROOT / "regkit", "regkit.baselines": ROOT / "baselines", "regkit.deep": ROOT / "deep",
             "regkit.evaluation": ROOT / "evaluation"}
    out = {}
    for prefix, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def imports_of(path: Path, module: str, members: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth (lazy imports count too). With
    ``members``, ``from M import a, b`` gives ``M.a`` and ``M.b`` (a submodule, or a name inside M)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if members:
                found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name == "regkit" or name.startswith("regkit.")]


def upward_imports(modules: dict[str, Path]) -> list[str]:
    found = []
    for module, path in modules.items():
        if module == FACADE:
            continue
        here, here_pkg = layer_of(module)
        for line, target in imports_of(path, module):
            there, there_pkg = layer_of(target)
            sideways = here == there == 1 and here_pkg != there_pkg  # classical and deep stay apart
            if there > here or sideways or (target == FACADE and here < LAYERS["regkit.app"]):
                found.append(f"{path}:{line}: {module} ({here_pkg}) imports {target}")
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module → the package's modules it imports, at any depth; an import is read as the deepest module it
    names (``from regkit.deep import networks`` imports ``regkit.deep.networks``)."""
    def module_named(name: str) -> str:
        while name not in modules and "." in name:
            name = name.rpartition(".")[0]
        return name

    return {module: {module_named(t) for _, t in imports_of(path, module, members=True)} & modules.keys() - {module}
            for module, path in modules.items()}


def import_cycle(modules: dict[str, Path]) -> list[str]:
    """One cycle of the import graph, as the modules along it (the first repeated at the end); [] if none."""
    try:
        TopologicalSorter(import_graph(modules)).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return []


def test_imports_run_one_way():
    modules = package_modules()
    assert "regkit.deep.registrar" in modules and "regkit.starts" in modules and "regkit.app.cli" in modules
    upward = upward_imports(modules)
    assert not upward, "imports that run upward (see design.md):\n" + "\n".join(upward)


def test_the_layer_walk_finds_lazy_relative_and_sideways_imports(tmp_path):
    cases = {
        "regkit.transform": "def f():\n    from regkit.evaluation.compare import compare\n",  # lazy, upward
        "regkit.deep.registrar": "from ..baselines import mi\n",  # relative, sideways
        "regkit.evaluation.stats": "import regkit\n",  # the facade, below the application
        "regkit.app.cli": "from regkit.evaluation import compare\n",  # allowed: downward
    }
    modules = {}
    for name, source in cases.items():
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        modules[name] = path
    found = upward_imports(modules)
    assert len(found) == 3 and not any("regkit.app.cli" in f for f in found), found


def test_the_package_has_no_import_cycle():
    cycle = import_cycle(package_modules())
    assert not cycle, "an import cycle (lazy imports count): " + " → ".join(cycle)


def test_the_cycle_walk_finds_a_lazy_cycle_through_a_package_import(tmp_path):
    cases = {
        "regkit.registry": "def f():\n    from regkit import chain\n",  # lazy, a submodule named by its package
        "regkit.chain": "from .registrar import Registrar\n",
        "regkit.registrar": "from regkit.transform import RigidTransform\n",
        "regkit.transform": "import numpy\n",
    }
    modules = {}
    for name, source in cases.items():
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        modules[name] = path
    assert import_cycle(modules) == []
    modules["regkit.registrar"].write_text("def f():\n    from regkit.registry import declaration\n")
    cycle = import_cycle(modules)
    assert cycle[0] == cycle[-1] and set(cycle) == {"regkit.registry", "regkit.chain", "regkit.registrar"}, cycle


def test_regkit_is_the_only_top_level_name_when_installed(tmp_path):
    dist = distribution("regkit")
    assert (dist.read_text("top_level.txt") or "").split() == ["regkit"]
    code = ("import importlib.util as u; "
            "print([n for n in ('deep', 'baselines', 'evaluation') if u.find_spec(n) is not None])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", "an installed top-level package besides regkit"
    assert Path(regkit.__file__).parent == ROOT / "regkit"


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_package(tmp_path):
    import shutil

    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ and *.egg-info there
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "regkit", "baselines", "deep", "evaluation"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                         if (ROOT / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(src)], check=True, capture_output=True)
    wheel, = tmp_path.glob("regkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"regkit", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for must in ("regkit/deep/registrar.py", "regkit/baselines/mi.py", "regkit/evaluation/compare.py",
                 "regkit/app/cli.py", "regkit/deep/weights/attreg-stage1.safetensors"):
        assert must in names
