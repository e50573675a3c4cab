"""Bad option values, bad plug-in results and declarations, failed registrations and the spawn re-import (issue 32's
battery: its option and plug-in classes), as generated cases.

Each option of each built-in registrar (read from its signature) meets every bad kind its type admits (NaN, ±inf,
negative, zero, a fraction, text, true/false, a list, a dict, an empty or nested list, an unknown word, ...),
through the API; through ``regkit compare`` for one registrar of each class (the six deep methods share theirs),
and through ``regkit register`` once per option of each class. Each must end in a named error (the CLI: one
``error:`` line, exit 2, no traceback, nothing recorded; the API: a ``RegkitError`` naming the option); each bad
field of a plug-in's result in a failed row naming the plug-in; never in an ``ok`` row. :data:`COUNTS` holds the
number of generated cases, for BENCHMARKS.md.
"""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys
import textwrap
import typing

import pytest
from click.testing import CliRunner

from regkit.app.cli import main
from regkit.errors import ConfigurationError, InputError, RegkitError
from regkit.options import NAME_RESERVED

NAN, INF = float("nan"), float("inf")
#: Options that take 0 (a seed, a distance, a smoothing): zero is not one of their bad kinds.
ZERO_OK = {"seed", "mask_mm", "margin_mm", "min_sigma_voxels", "smoothing_mm"}
#: Bad values by the kind of option, besides those every option gets.
NUMBER = {"nan": NAN, "inf": INF, "-inf": -INF, "negative": -1, "text": "abc", "bool": True, "list": [1, 2],
          "dict": {"a": 1}}
WHOLE = {**NUMBER, "fraction": 1.5}
LIST = {"empty": [], "nan": [NAN], "inf": [INF], "negative": [-1.0], "text": "abc", "word-in-list": ["x"],
        "nested": [[1.0]], "dict": {"a": 1}, "bool": True, "scalar-nan": NAN}
CHOICE = {"unknown": "nope", "empty": "", "number": 5, "bool": True, "list": ["image"]}
PATH = {"number": 5, "nan": NAN, "list": [1], "dict": {}}
ELASTIX = {"list": [1], "text": "abc", "number": 5, "word-for-number": {"NumberOfHistogramBins": "abc"},
           "nan-entry": {"NumberOfHistogramBins": NAN}, "fraction-for-whole": {"MaximumNumberOfIterations": 1.5},
           "negative-seed": {"RandomSeed": -1}, "non-rigid": {"Transform": "AffineTransform"},
           "levels": {"NumberOfResolutions": 2}, "not-a-boolean": {"ComputeZYX": "maybe"},
           "bad-key": {"bad key": 1}, "empty-list": {"Metric": []}, "dict-value": {"Metric": {"a": 1}},
           "null-value": {"Metric": None}, "quote": {"Metric": 'a"b'}}
DEVICE = {"unknown": "tpu", "number": 5, "missing-gpu": "cuda:99"}


def _kind(name: str, param: inspect.Parameter, hints: dict) -> dict:
    """The bad values of one option, by its annotation and default."""
    hint = hints.get(name, param.annotation)
    text = str(hint)
    default = param.default
    if name == "elastix":
        return ELASTIX
    if name == "device":
        return DEVICE
    if name in ("checkpoint", "stage2"):
        return {**PATH, "missing": "no/such/checkpoint"}
    if name == "log_dir":
        return PATH
    if isinstance(default, tuple) or "Sequence" in text or "tuple" in text:
        values = dict(LIST)
        if name not in ZERO_OK:
            values["zero"] = [0]
        return values
    if isinstance(default, str):
        return CHOICE
    if isinstance(default, bool):
        return {"number": 5, "text": "abc"}
    whole = isinstance(default, int) or (default is None and "int" in text)
    values = dict(WHOLE if whole else NUMBER)
    if name not in ZERO_OK:
        values["zero"] = 0
    return values


def option_cases() -> list[tuple[str, str, str, object]]:
    """(registrar, option, kind, bad value) for every option a user may give each built-in registrar."""
    from regkit.registry import _factory_target, available_registrars

    cases = []
    for name, decl in available_registrars().items():
        if decl.source != "regkit":
            continue
        factory = decl.load()
        target = _factory_target(factory)
        init = target.__init__ if inspect.isclass(target) else target
        hints = typing.get_type_hints(init)
        params = [p for p in inspect.signature(factory).parameters.values() if p.name not in decl.options]
        if not params:  # identity: any option is one it does not take
            cases.append((name, "x", "unknown-option", 1))
        for p in params:
            cases += [(name, p.name, kind, value) for kind, value in _kind(p.name, p, hints).items()]
    return cases


def level_cases() -> list[tuple[str, dict, str]]:
    """(registrar, options, the option the error must name): counts of iterations that do not match the levels,
    the levels given or a preset's."""
    from regkit.baselines.mi import PRESETS as MI
    from regkit.baselines.mind import PRESETS as MIND

    cases = []
    for name, option, presets in (("mi", "smoothing_mm", MI), ("mind", "spacing_mm", MIND)):
        for levels in (1, 2, 3):
            given = [float(2 ** k) for k in range(levels, 0, -1)]
            cases.append((name, {option: given, "iterations": [50] * (levels + 1)}, "iterations"))
        for preset, recipe in presets.items():
            value = recipe[option]
            n = 1 if value is None else len(value)
            cases.append((name, {"preset": preset, "iterations": [50] * (n + 1)}, "iterations"))
    return cases


OPTION_CASES = option_cases()
LEVEL_CASES = level_cases()


def _id(case) -> str:
    return "-".join(str(c) for c in case[:3])


def _cli_value(value) -> str:
    return json.dumps(value)


def _no_traceback(result, code: int = 2) -> str:
    text = " ".join(result.output.split())
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return text


# ---------------------------------------------------------------------------------------------- options: the API
@pytest.mark.parametrize("registrar,option,kind,value", OPTION_CASES, ids=[_id(c) for c in OPTION_CASES])
def test_a_bad_option_value_is_refused_when_the_registrar_is_built(registrar, option, kind, value):
    from regkit.registry import get_registrar

    with pytest.raises(RegkitError) as info:
        get_registrar(registrar, **{option: value})
    assert option in str(info.value), str(info.value)


@pytest.mark.parametrize("registrar,options,named", LEVEL_CASES, ids=[str(c[:2]) for c in LEVEL_CASES])
def test_iteration_counts_that_do_not_match_the_levels_are_named_as_such(registrar, options, named):
    from regkit.registry import get_registrar

    with pytest.raises(InputError) as info:
        get_registrar(registrar, **options)
    text = str(info.value)
    assert f"{named}=" in text and "level" in text, text


@pytest.mark.parametrize("member", ["mi", "mind"])
def test_a_chain_checks_its_members_options(member):
    from regkit.registry import get_registrar

    for registrar, option, kind, value in OPTION_CASES:
        if registrar == member and kind in ("nan", "text"):
            with pytest.raises(InputError, match=rf"identity\+{member}: {member}.*{option}"):
                get_registrar(f"identity+{member}", **{f"{member}.{option}": value})


def test_levels_given_without_iterations_take_the_presets_counts():
    """The preset's counts follow the caller's levels as the default's do (was: "2 iteration counts for 1 levels",
    blaming the iterations the caller never gave)."""
    from regkit.baselines.mi import MIRegistrar
    from regkit.baselines.mind import MINDRegistrar
    from regkit.registry import check_options, declaration

    for cls, option, name in ((MIRegistrar, "smoothing_mm", "mi"), (MINDRegistrar, "spacing_mm", "mind")):
        check_options(declaration(name), {option: [1.0]})
        sig = inspect.signature(cls).bind(**{option: [1.0]})
        sig.apply_defaults()
        recipes = cls.check_options(**sig.arguments)["recipes"]
        assert {r["iterations"] for r in recipes.values()} <= {(150,), (300,)}, recipes


# ---------------------------------------------------------------------------------------------- options: the CLI
@pytest.fixture(scope="module")
def data(phantom_dataset):
    return phantom_dataset.root


#: The registrars the command-line cases run: one of each class (the six deep methods are one class, with the same
#: options, all of which the API cases run).
CLASSES = ("identity", "mi", "mind", "attreg")
COMPARE_CASES = [c for c in OPTION_CASES if c[0] in CLASSES]


@pytest.mark.parametrize("registrar,option,kind,value", COMPARE_CASES, ids=[_id(c) for c in COMPARE_CASES])
def test_compare_refuses_a_bad_option_value_before_any_work(registrar, option, kind, value, data, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["compare", "--data", str(data), "--split", "train", "-k", "1", "-m", registrar,
                                  "-O", f"{registrar}.{option}={_cli_value(value)}", "-o", str(out)])
    text = _no_traceback(r)
    assert text.startswith("error:") and option in text, text
    assert not (out / "results.csv").exists() and not (out / "run.json").exists()


#: (registrar, option, a bad value): each option of each registrar class once.
REGISTER_CASES = list({(r, o): (r, o, v) for r, o, _, v in reversed(COMPARE_CASES)}.values())


@pytest.mark.parametrize("registrar,option,value", REGISTER_CASES, ids=[_id(c) for c in REGISTER_CASES])
def test_register_refuses_a_bad_option_value(registrar, option, value, data, tmp_path):
    case = data / "case000"
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["register", "--fixed", str(case / "mr.nii.gz"), "--moving",
                                  str(case / "trus.nii.gz"), "--fixed-label", str(case / "mr_label.nii.gz"), "-m",
                                  registrar, "-O", f"{option}={_cli_value(value)}", "-o", str(out)])
    text = _no_traceback(r)
    assert option in text and not (out / "result.json").exists(), text


def test_json_nan_and_infinity_from_the_command_line_are_refused_as_not_finite():
    from regkit.evaluation.method_specs import parse_method_options
    from regkit.registry import check_options, declaration

    for text in ("NaN", "Infinity", "-Infinity", "[NaN]", "[1, Infinity]"):
        options = parse_method_options([f"mi.smoothing_mm={text}"])
        with pytest.raises(InputError, match=r"smoothing_mm(\[\d\])? must be .*not a finite number"):
            check_options(declaration("mi"), options["mi"])


# ---------------------------------------------------------------------------------------------- names
BAD_NAMES = [f"a{c}b" for c in NAME_RESERVED] + ["a b", "", "tab\tname"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_method_name_the_command_line_cannot_say_is_refused(name, data, tmp_path):
    from regkit import register_registrar
    from regkit.evaluation.compare import compare
    from regkit.registrar import IdentityRegistrar

    with pytest.raises(InputError, match="cannot declare registrar"):
        register_registrar(name, IdentityRegistrar)

    class Named(IdentityRegistrar):
        pass

    Named.name = name
    if name and "+" not in name:  # an object's name may be a chain's
        with pytest.raises(InputError, match="registrar object Named's name"):
            compare(methods=[Named()], data=data, split="train", starts_per_case=1, out=tmp_path / "o",
                    show_progress=False, echo=None)
    if name and not set(name) & set(",="):  # an alias (a "," or "=" splits the item before it is read)
        r = CliRunner().invoke(main, ["compare", "--data", str(data), "--split", "train", "-m", f"{name}=identity",
                                      "-o", str(tmp_path / "c")])
        assert "method alias" in _no_traceback(r)


PLUGIN_MODULE = textwrap.dedent("""
    from regkit.registrar import IdentityRegistrar


    class Fine(IdentityRegistrar):
        pass


    class DictCapabilities(IdentityRegistrar):
        capabilities = {"batched": True}


    class NumberTitle(IdentityRegistrar):
        title = 5
""")
#: Entry points of a plug-in whose declarations cannot be used: (entry-point name, target, what the error says).
BAD_DECLARATIONS = [(f"bad{c}name", "Fine", "which --methods") for c in NAME_RESERVED.replace("=", "")] + [
    ("dict-capabilities", "DictCapabilities", "not a regkit.Capabilities"),
    ("number-title", "NumberTitle", "its title is 5, not text")]


@pytest.fixture(scope="module")
def bad_plugin(tmp_path_factory):
    site = tmp_path_factory.mktemp("bad-plugin")
    (site / "regkit_bad_declarations.py").write_text(PLUGIN_MODULE)
    dist = site / "regkit_bad_declarations-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: regkit-bad-declarations\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[regkit.registrars]\n" + "".join(
        f"{n} = regkit_bad_declarations:{t}\n" for n, t, _ in BAD_DECLARATIONS))
    return site


def test_a_plugin_declaration_that_cannot_be_used_is_listed_as_broken_and_refused(bad_plugin, monkeypatch):
    from regkit.registry import _entry_point_declarations, available_registrars, get_registrar

    monkeypatch.syspath_prepend(str(bad_plugin))
    _entry_point_declarations.cache_clear()
    try:
        r = CliRunner().invoke(main, ["list"])
        assert r.exit_code == 0 and r.exception is None, r.output
        lines = {line.split()[0]: line for line in r.output.splitlines()[1:]}
        infos = available_registrars()
        for name, _, text in BAD_DECLARATIONS:
            assert "broken" in lines[name] and "regkit-bad-declarations" in lines[name], lines[name]
            assert infos[name].kind == "broken"
            with pytest.raises(InputError, match="regkit-bad-declarations") as info:
                get_registrar(name)
            assert text in str(info.value), str(info.value)
    finally:
        _entry_point_declarations.cache_clear()


# ---------------------------------------------------------------------------------------------- plug-in results
#: (field, bad value, what the failed row's message says): what a buggy plug-in may put in a RegistrationResult.
BAD_FIELDS = [("status", v, "the status") for v in ("great", "", "OK", "failed ")] + \
    [("status", v, "a status") for v in (None, 5)] + \
    [("runtime", v, "a runtime of") for v in (-1.0, INF, -INF, NAN, "1", True, None)] + \
    [("message", v, "a status 'ok' and message") for v in (None, 5)] + \
    [("info", v, "info that is") for v in (None, [], "x")] + \
    [("info", {"stage_transforms": v}, "info['stage_transforms']") for v in ("ab", [1, 2], ["START", None])] + \
    [("info", {"stage_transforms": ["START", "START"], k: v}, f"info[{k!r}]")
     for k, v in (("stage_runtimes", ["x", "y"]), ("stages", ["a"]), ("stage_status", "ok"))]


def _label(k: int) -> str:
    return f"field{k}"


def test_bad_plugin_results_become_failed_rows_naming_the_plugin_api(data, with_test_plugin, tmp_path):
    from regkit.evaluation.compare import compare

    labels = [_label(k) for k in range(len(BAD_FIELDS))]
    done = compare(methods=",".join(f"{lab}=bad-result" for lab in labels), data=data, split="train", cases=1,
                   starts_per_case=1, workers=1, out=tmp_path / "out", show_progress=False, echo=None,
                   method_options={lab: {"kind": "field", "field": f, "value": v}
                                   for lab, (f, v, _) in zip(labels, BAD_FIELDS, strict=True)})
    s = done.samples
    assert len(s) == len(BAD_FIELDS) and (s["status"] == "failed").all()
    for lab, (field, value, text) in zip(labels, BAD_FIELDS, strict=True):
        messages = s[s["method"] == lab]["message"]
        assert messages.str.contains(f"registrar '{lab}' returned {text}", regex=False).all(), (field, value,
                                                                                               messages.tolist())
        runtimes = s[s["method"] == lab]["runtime_s"]
        assert runtimes.isna().all() or ((runtimes >= 0) & (runtimes < math.inf)).all()


#: One case of each class of BAD_FIELDS (each field and message) for the command line; the API runs them all.
CLI_FIELDS = list({(f, t): (f, v, t) for f, v, t in reversed(BAD_FIELDS)}.values())


@pytest.mark.parametrize("field,value,text", CLI_FIELDS, ids=[f"{f}={v!r}" for f, v, _ in CLI_FIELDS])
def test_register_exits_3_on_a_bad_plugin_result_naming_the_plugin(field, value, text, data, with_test_plugin,
                                                                   tmp_path):
    case, out = data / "case000", tmp_path / "out"
    r = CliRunner().invoke(main, ["register", "--fixed", str(case / "mr.nii.gz"), "--moving",
                                  str(case / "trus.nii.gz"), "-m", "bad-result", "-O", "kind=field",
                                  "-O", f"field={field}", "-O", f"value={_cli_value(value)}", "-o", str(out)])
    out_text = _no_traceback(r, 3)
    assert f"error: the registration failed: registrar 'bad-result' returned {text}" in out_text, out_text
    doc = json.loads((out / "result.json").read_text())
    assert doc["status"] == "failed" and not (out / "transform.tfm").exists()


# ---------------------------------------------------------------------------------------------- failures
def test_register_exit_status_says_failed_and_not_converged(data, with_test_plugin, tmp_path):
    from regkit import register_registrar
    from regkit.registrar import NOT_CONVERGED, RegistrarBase

    class Stalls(RegistrarBase):
        def _register(self, case, initial):
            return initial, {"status": NOT_CONVERGED, "message": "not converged: stalled on purpose"}

    register_registrar("stalls-options", Stalls)
    case, out = data / "case000", tmp_path / "out"
    args = ["register", "--fixed", str(case / "mr.nii.gz"), "--moving", str(case / "trus.nii.gz"), "-o", str(out)]
    ok = CliRunner().invoke(main, [*args, "-m", "identity"])
    assert ok.exit_code == 0 and (out / "transform.tfm").exists(), ok.output
    failed = CliRunner().invoke(main, [*args, "-m", "bad-result", "-O", "kind=nan"])
    text = _no_traceback(failed, 3)
    assert "error: the registration failed: registrar 'bad-result' returned a transform with NaN" in text, text
    assert not (out / "transform.tfm").exists() and not (out / "transform.txt").exists()  # the earlier one removed
    assert json.loads((out / "result.json").read_text())["status"] == "failed"
    stalled = CliRunner().invoke(main, [*args, "-m", "stalls-options"])
    assert stalled.exit_code == 0 and "warning: stalls-options did not converge" in stalled.stderr, stalled.output
    assert (out / "transform.tfm").exists()
    assert "Exit status" in CliRunner().invoke(main, ["register", "--help"]).output


def test_a_configuration_error_stops_the_comparison_at_its_first_sample(data, with_test_plugin, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["compare", "--data", str(data), "--split", "train", "-k", "2", "-j", "1",
                                  "-m", "identity,cfg=bad-result", "-O", "cfg.kind=config", "-o", str(out)])
    text = _no_traceback(r)
    assert "registrar 'cfg' (bad-result) cannot run with options {'kind': 'config'}" in text, text
    assert "this plug-in cannot run with kind='config'" in text
    from regkit.evaluation.store import ResultStore

    rows = ResultStore(out / "results.csv").read()
    assert set(rows["method"]) == {"identity"} and (rows["status"] == "ok").all()  # what ran before is kept


def test_a_configuration_error_is_not_recorded_as_a_failure(phantom_case):
    from regkit.chain import ChainRegistrar
    from regkit.registrar import IdentityRegistrar, RegistrarBase

    class Misconfigured(RegistrarBase):
        name = "misconfigured"

        def _register(self, case, initial):
            raise ConfigurationError("cannot run at all")

    for reg in (Misconfigured(), ChainRegistrar([IdentityRegistrar(), Misconfigured()])):
        with pytest.raises(ConfigurationError, match="cannot run at all"):
            reg.register(phantom_case, phantom_case.ground_truth)


@pytest.mark.slow
def test_elastix_refusing_its_parameter_map_is_a_configuration_error(itk_loaded, phantom_case):
    from regkit.registry import get_registrar

    for entry in ({"Metric": "NoSuchMetric"}, {"Optimizer": "NoSuchOptimizer"}):
        reg = get_registrar("mi", elastix=entry, iterations=5, smoothing_mm=[0.0])
        with pytest.raises(ConfigurationError, match="elastix refuses the parameter map"):
            reg.register(phantom_case, phantom_case.ground_truth)


# ---------------------------------------------------------------------------------------------- the main guard
SCRIPT = """
import regkit

{guard}res = regkit.compare(methods="gated", data={data!r}, split="train", starts_per_case=1, workers=1,
{indent}                    out={out!r}, show_progress=False, echo=None)
{indent}print("rows", len(res.samples), sorted(set(res.samples["status"])))
"""


def test_a_script_without_the_main_guard_gets_one_clear_error_and_no_rows(data, test_plugin, tmp_path):
    """The README's Python API example, saved as a script and run: without the guard, each spawned worker would
    run the script again (failed rows, tracebacks, orphans); now one error names the fix before any work."""
    _, env = test_plugin
    for guard in ("", 'if __name__ == "__main__":\n    '):
        out = tmp_path / f"out{len(guard)}"
        script = tmp_path / f"example{len(guard)}.py"
        script.write_text(SCRIPT.format(guard=guard, indent="    " if guard else "", data=str(data), out=str(out)))
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                           cwd=tmp_path)
        if guard:
            assert r.returncode == 0 and "rows 2 ['ok']" in r.stdout, r.stdout + r.stderr
        else:
            assert r.returncode == 1 and r.stderr.count("Traceback") == 1, r.stderr
            assert 'starts a comparison at the script\'s top level' in r.stderr
            assert 'if __name__ == "__main__":' in r.stderr
            assert not (out / "results.csv").exists() and not (out / "run.json").exists()


GUARD_SHAPES = {  # a script's shape → whether its call to the check is guarded
    "top level": ("check()\n", False),
    "guarded": ('if __name__ == "__main__":\n    check()\n', True),
    "guarded, reversed": ('if "__main__" == __name__:\n    check()\n', True),
    "guarded in a function": ('def main():\n    check()\n\n\nif __name__ == "__main__":\n    main()\n', True),
    "function called at top level": ("def main():\n    check()\n\n\nmain()\n", False),
    "in a loop at top level": ("for _ in range(1):\n    check()\n", False),
    "in the else of !=": ('if __name__ != "__main__":\n    pass\nelse:\n    check()\n', True),
    "other condition": ('if __name__ == "other":\n    pass\ncheck()\n', False),
    "guard nested in try": ('try:\n    if __name__ == "__main__":\n        check()\nexcept OSError:\n    pass\n', True),
}


@pytest.mark.parametrize("shape", GUARD_SHAPES)
def test_the_main_guard_is_read_from_the_scripts_source(shape, tmp_path):
    import runpy

    from regkit.evaluation.execution import unguarded_main_call

    source, guarded = GUARD_SHAPES[shape]
    script = tmp_path / "script.py"
    script.write_text(source)
    found = []
    runpy.run_path(str(script), init_globals={"check": lambda: found.append(unguarded_main_call())},
                   run_name="__main__")
    assert len(found) == 1 and (found[0] is None) == guarded, found


#: The number of generated cases of each class (for BENCHMARKS.md).
COUNTS = {
    "option values (API)": len(OPTION_CASES),
    "option values (compare CLI)": len(COMPARE_CASES),
    "iteration counts against levels": len(LEVEL_CASES),
    "option values (register CLI)": len(REGISTER_CASES),
    "method names": len(BAD_NAMES),
    "plug-in declarations": len(BAD_DECLARATIONS),
    "plug-in result fields (API)": len(BAD_FIELDS),
    "plug-in result classes (register CLI)": len(CLI_FIELDS),
    "main-guard shapes": len(GUARD_SHAPES),
}
