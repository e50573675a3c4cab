"""Finding registrars by name: the ``regkit.registrars`` entry-point group, plus in-process registrations.

An entry point of the group names one of:

* a :class:`~regkit.registrar.MethodDeclaration`, or a sequence of them (regkit declares its own methods as
  such tables: ``regkit.registrar:METHODS``, ``regkit.baselines.methods:METHODS``,
  ``regkit.deep.methods:METHODS``);
* a registrar class or factory (called with the registrar's options); its declaration is read from its
  ``title``, ``kind``, ``summary`` and ``capabilities`` attributes, under the entry point's name::

      [project.entry-points."regkit.registrars"]
      my-method = "my_package.module:MyRegistrar"

A registrar class or factory with a network may also have ``parameter_count(**options) -> int``, called with the
declaration's options: it is how the registry asks a method for its parameter count (:func:`parameter_count`,
shown by ``regkit list`` and Table 2).

It may have ``check_options(**options)``, called with every option (defaults filled in) before anything is
constructed: it raises an :class:`~regkit.errors.InputError` naming a bad value (:func:`check_options`,
:mod:`regkit.options`), so that a comparison refuses it before any work.

A name declared twice (by two packages, or a plug-in named like a built-in) is an error that names both
sources. A declaration that cannot be used (a name holding ``,``, ``:`` or another character the command line reads
as syntax; a title that is not text; capabilities that are not a :class:`~regkit.registrar.Capabilities`) is
listed by ``regkit list`` as broken, naming what is wrong, and refused when used. Entry-point targets should import
quickly: heavy libraries belong inside ``register``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import replace
from importlib.metadata import entry_points

from regkit.chain import SEPARATOR, ChainRegistrar, combined_capabilities, is_chain, members_of, split_options
from regkit.errors import InputError
from regkit.registrar import Capabilities, MethodDeclaration, Registrar

GROUP = "regkit.registrars"
LOCAL = "local"
_LOCAL: dict[str, MethodDeclaration] = {}


def declaration_of(name: str, factory: Callable[..., Registrar], source: str = LOCAL) -> MethodDeclaration:
    """The declaration of a registrar class or factory registered without one (read from its attributes)."""
    return MethodDeclaration(
        name=name, factory=factory, title=getattr(factory, "title", "") or "",
        kind=getattr(factory, "kind", "classical"), summary=getattr(factory, "summary", "") or "",
        capabilities=getattr(factory, "capabilities", Capabilities()), source=source)


def _declarations(target, name: str, source: str) -> list[MethodDeclaration]:
    if isinstance(target, MethodDeclaration):
        return [replace(target, source=source)]
    if callable(target):
        return [declaration_of(name, target, source)]
    if isinstance(target, Iterable) and not isinstance(target, str | bytes):
        items = list(target)
        if all(isinstance(d, MethodDeclaration) for d in items):
            return [replace(d, source=source) for d in items]
    raise InputError(f"entry point {name!r} of {source} names {type(target).__name__}, not a registrar, a "
                     "MethodDeclaration or a sequence of them", fix=f"fix the [{GROUP}] entry in its pyproject.toml")


def _broken(name: str, source: str, value: str, exc: Exception, fix: str | None = None) -> MethodDeclaration:
    def fail(**_):
        raise InputError(f"registrar {name!r} ({value}, from {source}) cannot be loaded: {type(exc).__name__}: "
                         f"{exc}", fix=fix or f"reinstall {source}, or uninstall it")

    return MethodDeclaration(name, fail, kind="broken", summary=f"cannot load: {exc}", source=source)


def declaration_problem(decl: MethodDeclaration) -> str | None:
    """What makes a declaration unusable (a sentence), or None: its name must be one the command line can say
    (:func:`regkit.options.name_problem`), its text fields text, its capabilities a
    :class:`~regkit.registrar.Capabilities`, its options a dict of option names, its factory callable or
    ``"module:attribute"``."""
    from regkit.options import name_problem

    problem = name_problem(decl.name)
    if problem:
        return f"its name {decl.name!r} {problem}"
    for field in ("title", "kind", "summary"):
        if not isinstance(getattr(decl, field), str):
            return f"its {field} is {getattr(decl, field)!r}, not text"
    if not isinstance(decl.capabilities, Capabilities):
        return (f"its capabilities are {decl.capabilities!r}, not a regkit.Capabilities (give the class a "
                "`capabilities = Capabilities(...)` class attribute)")
    if not isinstance(decl.options, dict) or not all(isinstance(k, str) for k in decl.options):
        return f"its options are {decl.options!r}, not a dict of option names to values"
    if not (callable(decl.factory) or (isinstance(decl.factory, str) and ":" in decl.factory)):
        return f"its factory is {decl.factory!r}, neither callable nor 'module:attribute'"
    return None


def _add(found: dict[str, MethodDeclaration], decl: MethodDeclaration) -> None:
    old = found.get(decl.name)
    if old is not None and old.source != decl.source:
        raise InputError(f"registrar {decl.name!r} is declared twice: by {old.source} and by {decl.source}",
                         fix="uninstall one of the two packages, or rename its method")
    found[decl.name] = decl


@functools.cache
def _entry_point_declarations() -> tuple[MethodDeclaration, ...]:
    found: dict[str, MethodDeclaration] = {}
    for ep in entry_points(group=GROUP):
        source = ep.dist.name if ep.dist is not None else "?"
        try:
            decls = _declarations(ep.load(), ep.name, source)
        except Exception as exc:  # a broken plugin must not hide the others; it fails when used
            decls = [_broken(ep.name, source, ep.value, exc)]
        for d in decls:
            problem = declaration_problem(d) if d.kind != "broken" else None
            if problem:
                d = _broken(str(d.name), source, ep.value, InputError(f"registrar {d.name!r} is unusable: {problem}"),
                            fix=f"fix the declaration in {source} (its [{GROUP}] entry point or its class), or "
                                "uninstall it")
            _add(found, d)
    return tuple(found.values())


def available_registrars() -> dict[str, MethodDeclaration]:
    """Every declared registrar by name: the entry points' and this process's (see the module docstring)."""
    found: dict[str, MethodDeclaration] = {}
    for d in (*_entry_point_declarations(), *_LOCAL.values()):
        _add(found, d)
    return dict(sorted(found.items()))


def declaration(name: str) -> MethodDeclaration:
    """The declaration of a registrar name; an error listing the known names if there is none.

    A name with ``+`` that no one declared is a chain of registrars (:mod:`regkit.chain`): ``"attreg+mind"``
    runs ``mind`` from where ``attreg`` ended.
    """
    infos = available_registrars()
    if name in infos:
        return infos[name]
    if is_chain(name):
        return _chain_declaration(name)
    known = ", ".join(infos) or "none (is regkit installed? run `pip install -e .`)"
    raise InputError(f"unknown registrar {name!r}", fix=f"use one of: {known} (see `regkit list`)")


def _chain_declaration(name: str) -> MethodDeclaration:
    """The declaration of a chain name, from its members' declarations (nothing is constructed)."""
    members = members_of(name)
    decls = [declaration(m) for m in members]
    caps = combined_capabilities([d.capabilities for d in decls])
    source = LOCAL if any(d.source == LOCAL for d in decls) else "chain"

    def factory(**options) -> ChainRegistrar:
        per_member = split_options(members, options)
        return ChainRegistrar([get_registrar(m, **o) for m, o in zip(members, per_member, strict=True)],
                              SEPARATOR.join(members))

    return MethodDeclaration(name, factory, title=" → ".join(d.display_title for d in decls), kind="chain",
                             summary=" then ".join(members), capabilities=caps, source=source)


def register_method(decl: MethodDeclaration) -> None:
    """Declare a method in this process (no packaging needed); re-declaring a local name replaces it.

    A method declared so runs in this process when a comparison runs it (see :func:`regkit.compare`): a crash in
    its native code ends the caller's process (package it as an entry point to run it in worker processes).

    Parameters
    ----------
    decl : MethodDeclaration
        The method's declaration (name, factory, title, kind, capabilities, ...).
    """
    if not isinstance(decl, MethodDeclaration):
        raise InputError(f"register_method takes a MethodDeclaration, got {type(decl).__name__}",
                         fix="use regkit.register_registrar(name, factory) for a class or factory")
    problem = declaration_problem(decl)
    if problem:
        raise InputError(f"cannot declare registrar {decl.name!r}: {problem}", fix="correct the declaration")
    for d in _entry_point_declarations():
        if d.name == decl.name:
            raise InputError(f"registrar {decl.name!r} is already declared by {d.source}",
                             fix="give your method another name")
    _LOCAL[decl.name] = replace(decl, source=LOCAL)


def register_registrar(name: str, factory: Callable[..., Registrar]) -> None:
    """Make a registrar class or factory available as ``name`` in this process (see :func:`register_method`: it
    runs in the caller's process).

    Parameters
    ----------
    name : str
        The registry name.
    factory : callable
        A registrar class, or a callable that takes the options and returns a registrar.
    """
    if not callable(factory):
        raise InputError(f"registrar {name!r}: the factory is {type(factory).__name__}, not a class or a function",
                         fix="pass the registrar's class, e.g. register_registrar('mine', MyRegistrar)")
    register_method(declaration_of(name, factory))


def check_options(decl: MethodDeclaration, options: dict, label: str | None = None) -> None:
    """Reject options the registrar does not take, of a type it does not take, or of a value it does not take,
    before any work (without constructing it). Types come from the factory's annotations, or else from its
    defaults (see :func:`check_option_types`); values from the factory's ``check_options(**options)`` hook, when it
    has one, called with every option (the defaults filled in) and raising an :class:`InputError` that names the
    option (see :mod:`regkit.options`)."""
    if decl.kind == "chain":  # a chain's options go to its members, each checked as a registrar
        members = members_of(decl.name)
        for member, opts in zip(members, split_options(members, options), strict=True):
            check_options(declaration(member), opts, f"{decl.name}: {member}")
        return
    factory = decl.load()
    target = _factory_target(factory)
    where = _qualified_name(target)
    fix = f"see the registrar's options: python -c 'import {where.rsplit('.', 1)[0]}; help({where})'"
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise InputError(f"options for {label or decl.name!r} must be a dict of option names to values, got "
                         f"{options!r}", fix=fix)
    try:
        signature = inspect.signature(factory)
        signature.bind(**options)
    except TypeError as exc:
        raise InputError(f"bad options for {label or decl.name!r} ({decl.name}): {exc}", fix=fix) from None
    except ValueError:  # no signature (a builtin): nothing to check
        return
    problem = check_option_types(target, signature, options)
    if problem:
        raise InputError(f"bad options for {label or decl.name!r} ({decl.name}): {problem}", fix=fix)
    checker = getattr(target, "check_options", None)
    if callable(checker):  # the values, by the registrar's own checks (regkit.options), nothing constructed
        bound = signature.bind(**options)
        bound.apply_defaults()
        arguments = {k: v for k, v in bound.arguments.items() if signature.parameters[k].kind not in
                     (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
        try:
            inspect.signature(checker).bind(**arguments)
        except (TypeError, ValueError):  # a hook for other options (a subclass's): the constructor checks them
            return
        try:
            checker(**arguments)
        except InputError as exc:
            raise InputError(f"bad options for {label or decl.name!r} ({decl.name}): {exc.what}",
                             fix=exc.fix or fix) from None
        except Exception as exc:  # a plug-in's check that fails otherwise still names the registrar
            raise InputError(f"bad options for {label or decl.name!r} ({decl.name}): its check_options raised "
                             f"{type(exc).__name__}: {exc}", fix=fix) from None


def parameter_count(decl: MethodDeclaration) -> int | None:
    """Trainable parameters of a registrar's network, from its factory's ``parameter_count(**options)`` hook
    (None without one); a chain's is the sum over its members that have one. ``regkit list`` and Table 2 ask
    this, and only this."""
    if decl.kind == "chain":
        counts = [parameter_count(declaration(m)) for m in members_of(decl.name)]
        return sum(c for c in counts if c) or None
    counter = getattr(_factory_target(decl.load()), "parameter_count", None)
    return counter(**decl.options) if callable(counter) else None


def _factory_target(factory: Callable[..., Registrar]):
    """The class or function a registrar factory calls (a ``functools.partial``'s ``func``, else the factory)."""
    return factory.func if isinstance(factory, functools.partial) else factory


def _qualified_name(target) -> str:
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"


def resolved_settings(name: str, options: dict):
    """Every setting registrar ``name`` will run with: ``options`` over its factory's defaults, and the named
    recipes its class declares as ``presets`` (and, for a chain, each member's, as a list), as JSON-ready values.
    Nothing is constructed. A resumed comparison compares them, so a default or recipe that changed between
    regkit versions is caught like an option that changed."""
    import json

    decl = declaration(name)
    if decl.kind == "chain":
        members = members_of(name)
        return [resolved_settings(m, o) for m, o in zip(members, split_options(members, options), strict=True)]
    factory = decl.load()
    try:
        bound = inspect.signature(factory).bind_partial(**options)
    except (TypeError, ValueError):
        return {k: options[k] for k in sorted(options)}
    bound.apply_defaults()
    # the declaration's own options (a network's architecture, its bundled weights' paths) name the method
    args = {k: v for k, v in bound.arguments.items() if k not in decl.options and k != "kwargs"}
    target = _factory_target(factory)
    # a registrar whose `preset` option picks among named recipes (`presets`) runs their values, not only its
    # defaults: a recipe that changed must be caught too
    presets = getattr(target, "presets", None)
    return json.loads(json.dumps({"class": _qualified_name(target), **args,
                                  **({"presets": presets} if presets is not None else {})}, default=str))


def get_registrar(name: str | Registrar, **options) -> Registrar:
    """A registrar by name, constructed with ``options``; a Registrar object is returned as is.

    Parameters
    ----------
    name : str or Registrar
        A registry name (``regkit list``), a chain ``"a+b"``, or a registrar object.
    **options
        Keyword options of the registrar (e.g. ``iterations=300`` for ``mi``).

    Returns
    -------
    Registrar
    """
    if not isinstance(name, str):
        if isinstance(name, Registrar):
            if options:
                raise InputError("options cannot be applied to a registrar object; construct it with them")
            return name
        raise InputError(f"expected a registrar name or object, got {type(name).__name__}",
                         fix="a registrar needs name, capabilities, register() and register_many(): subclass "
                             "regkit.RegistrarBase")
    decl = declaration(name)
    check_options(decl, options)
    return decl.load()(**options)


# ---------------------------------------------------------------------------------------------- option types
def check_option_types(target, signature: inspect.Signature, options: dict) -> str | None:
    """A sentence naming the first option whose value the factory's annotation (or, without one, its default's
    type) rules out; None when all fit. Annotations that cannot be resolved are not checked."""
    import typing

    hints: dict = {}
    for fn in (getattr(target, "__init__", None), target) if inspect.isclass(target) else (target,):
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # an annotation naming something not importable here: check the defaults only
            hints = {}
        if hints:
            break
    for name, value in options.items():
        param = signature.parameters.get(name)
        if param is None or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        if name in hints:
            fits, expected = _fits(hints[name], value), _type_name(hints[name])
        elif param.default is not inspect.Parameter.empty and param.default is not None:
            kind = type(param.default)
            fits = _fits(float if kind in (int, float) else kind, value) if kind in (bool, int, float, str) else None
            expected = "a number" if kind in (int, float) else _type_name(kind)
        else:
            continue
        if fits is False:
            return f"option {name}={value!r} is {_value_kind(value)}, but it takes {expected}"
    return None


def _fits(annotation, value) -> bool | None:
    """Whether ``value`` fits ``annotation``: True, False, or None when that cannot be told."""
    import os
    import types
    import typing
    from collections.abc import Mapping, Sequence
    from pathlib import PurePath

    if annotation is typing.Any or annotation is inspect.Parameter.empty:
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        verdicts = [_fits(a, value) for a in args]
        return True if True in verdicts else (False if all(v is False for v in verdicts) else None)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, PurePath | os.PathLike):
        return isinstance(value, str | os.PathLike)
    container = origin or annotation
    if isinstance(container, type) and issubclass(container, Mapping):
        return isinstance(value, Mapping)
    if isinstance(container, type) and issubclass(container, Sequence) and container is not str:
        if not isinstance(value, list | tuple):
            return False
        inner = args[0] if args and (container is not tuple or (len(args) == 2 and args[1] is Ellipsis)) else None
        verdicts = [_fits(inner, v) for v in value] if inner is not None else []
        return False if False in verdicts else True
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return None


def _type_name(annotation) -> str:
    """``int | None`` → "an integer or null"; ``float`` → "a number" (what a value of it may be)."""
    import types
    import typing

    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(dict.fromkeys(_type_name(a) for a in args))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if annotation in names:
        return names[annotation]
    if origin is not None:
        inner = f" of {_type_name(args[0])}" if args else ""
        return f"a list{inner}" if origin in (list, tuple) or "Sequence" in str(origin) else f"a {origin.__name__}"
    if isinstance(annotation, type):
        return f"a {annotation.__name__}"
    return str(annotation)


def _value_kind(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, float):
        return "a decimal number"
    return _type_name(type(value))
