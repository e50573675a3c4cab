"""The methods of a comparison: names, aliases and registrar objects, and their options, read once.

``--methods mi,mind,attreg`` (registry names), ``milabel=mi`` (an alias with its own options), or Registrar objects
from the Python API become :class:`MethodSpec` records; ``-O METHOD.OPTION=VALUE`` (``compare``) and
``-O OPTION=VALUE`` (``register``) become option dicts, each value read as JSON where it can be. Options are
checked here, before any work: against each registrar's signature (names, types) and by its own value checks
(:func:`regkit.registry.check_options`); so are aliases and registrar objects' names (:mod:`regkit.options`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from regkit.errors import InputError
from regkit.registrar import Capabilities, Registrar


@dataclass
class MethodSpec:
    """A method of a comparison: its label in the tables, the registrar (name or object) and its options."""

    label: str
    registrar: str | Registrar
    options: dict = field(default_factory=dict)
    title: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    local: bool = False  # declared in this process only (register_registrar), not through an entry point

    @property
    def portable(self) -> bool:
        """Can run in another process: an entry-point registrar, not an object or an in-process registration."""
        return isinstance(self.registrar, str) and not self.local


def parse_methods(methods: str | Sequence, options: dict[str, dict] | None = None) -> list[MethodSpec]:
    """Methods from ``"mi,mind,attreg"``, aliases ``"milabel=mi"``, or a list of names and Registrar objects.

    Options are checked here, before any work: their names and types against each registrar's signature, their
    values by its ``check_options`` hook (see :func:`regkit.registry.check_options`).
    """
    from regkit.options import check_name
    from regkit.registry import check_options, declaration

    options = options or {}
    items = [m.strip() for m in methods.split(",") if m.strip()] if isinstance(methods, str) else list(methods)
    if not items:
        raise InputError("no methods given", fix="e.g. --methods mi,mind,attreg")
    specs, labels = [], set()
    for item in items:
        if isinstance(item, str):
            label, _, name = item.partition("=")
            label, name = label.strip(), (name or label).strip()
            if not label or not name:
                raise InputError(f"method {item!r} has an empty name or alias", fix="write NAME or ALIAS=NAME, e.g. "
                                 "milabel=mi")
            if label != name:
                check_name(label, "method alias", fix="give an alias of letters, digits, '-' or '_', e.g. milabel=mi")
            decl = declaration(name)
            check_options(decl, options.get(label, {}), label)
            title = decl.display_title if label == name else label
            spec = MethodSpec(label, name, dict(options.get(label, {})), title, decl.capabilities,
                              local=decl.source == "local")
        elif isinstance(item, Registrar):
            fix = "give the registrar object a `name` of letters, digits, '-' or '_'"
            check_name(item.name, f"registrar object {type(item).__name__}'s name", fix, allow="+")
            if not isinstance(item.capabilities, Capabilities):
                raise InputError(f"registrar {item.name!r}'s capabilities are {item.capabilities!r}, not a "
                                 "regkit.Capabilities", fix="set `capabilities = regkit.Capabilities(...)` on its "
                                 "class")
            spec = MethodSpec(item.name, item, {}, item.name, item.capabilities)
        else:
            raise InputError(f"a method must be a registrar name or a Registrar object, got {item!r}",
                             fix="a registrar needs name, capabilities, register() and register_many(): subclass "
                                 "regkit.RegistrarBase")
        if spec.label in labels:
            raise InputError(f"method {spec.label!r} is listed twice", fix="give one an alias: other=name")
        labels.add(spec.label)
        specs.append(spec)
    unknown = set(options) - labels
    if unknown:
        raise InputError(f"options given for methods not in --methods: {sorted(unknown)}")
    return specs


def parse_option_value(text: str):
    """A command-line option value: JSON where it reads as JSON (``300``, ``[4, 2]``, ``true``), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(items: Iterable[str]) -> dict:
    """``["iterations=300", "preset=general"]`` → ``{"iterations": 300, "preset": "general"}`` (one registrar's)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"cannot read option {item!r}", fix="write OPTION=VALUE, e.g. iterations=300")
        key = key.strip()
        if key in out:
            raise InputError(f"option {key} is given twice", fix="give each option once")
        out[key] = parse_option_value(value)
    return out


def parse_method_options(items: Iterable[str]) -> dict[str, dict]:
    """``["mi.iterations=300", "attreg.checkpoint=runs/x/best"]`` → ``{"mi": {"iterations": 300}, ...}``."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, opt = key.partition(".")
        if not sep or not dot or not method or not opt:
            raise InputError(f"cannot read method option {item!r}",
                             fix="write METHOD.OPTION=VALUE, e.g. mi.iterations=300")
        if opt in out.get(method, {}):
            raise InputError(f"method option {method}.{opt} is given twice", fix="give each option once")
        out.setdefault(method, {})[opt] = parse_option_value(value)
    return out
