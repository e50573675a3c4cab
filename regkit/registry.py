"""Finding registrars by name: the ``regkit.registrars`` entry-point group, plus in-process registrations.

Built-in registrars are declared in regkit's own ``pyproject.toml`` exactly as a third-party package declares
its own::

    [project.entry-points."regkit.registrars"]
    my-method = "my_package.module:MyRegistrar"

The entry point names a callable (usually a class) that takes the registrar's options as keyword arguments
and returns a :class:`~regkit.registrar.Registrar`. It may carry class attributes ``kind`` ("classical",
"deep", ...), ``summary`` and a ``parameter_count()`` classmethod, which ``regkit list`` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from regkit.errors import InputError
from regkit.registrar import Registrar

GROUP = "regkit.registrars"
_LOCAL: dict[str, Callable[..., Registrar]] = {}


@dataclass(frozen=True)
class RegistrarInfo:
    name: str
    kind: str
    summary: str
    source: str  # distribution that declared it, or "local"
    target: str  # module:attribute

    def load(self) -> Callable[..., Registrar]:
        if self.source == "local":
            return _LOCAL[self.name]
        for ep in entry_points(group=GROUP):
            if ep.name == self.name:
                return ep.load()
        raise InputError(f"registrar {self.name!r} disappeared from the entry points")

    def parameter_count(self) -> int | None:
        """Trainable parameters of a deep registrar's network (None for classical ones)."""
        factory = self.load()
        counter = getattr(factory, "parameter_count", None)
        return counter() if callable(counter) else None


def register_registrar(name: str, factory: Callable[..., Registrar]) -> None:
    """Make ``factory`` available as ``name`` in this process (no packaging needed)."""
    _LOCAL[name] = factory


def _entry_point_infos() -> dict[str, RegistrarInfo]:
    infos = {}
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        infos[ep.name] = RegistrarInfo(ep.name, "?", "", dist, ep.value)
    return infos


def available_registrars(describe: bool = False) -> dict[str, RegistrarInfo]:
    """Registrars by name: entry points first, then in-process registrations.

    With ``describe=True`` each entry point is imported to read its ``kind`` and ``summary`` (importing a
    module is cheap: heavy libraries such as ITK load only when a registration runs).
    """
    infos = _entry_point_infos()
    for name, factory in _LOCAL.items():
        target = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__name__', '?')}"
        infos[name] = RegistrarInfo(name, getattr(factory, "kind", "?"), getattr(factory, "summary", ""), "local",
                                    target)
    if describe:
        for name, info in list(infos.items()):
            if info.source == "local":
                continue
            try:
                factory = info.load()
                infos[name] = RegistrarInfo(name, getattr(factory, "kind", "?"), getattr(factory, "summary", ""),
                                            info.source, info.target)
            except Exception as exc:  # a broken plugin must not hide the others
                infos[name] = RegistrarInfo(name, "broken", f"cannot load: {exc}", info.source, info.target)
    return dict(sorted(infos.items()))


def get_registrar(name: str | Registrar, **options) -> Registrar:
    """A registrar by name, constructed with ``options``; a Registrar object is returned as is."""
    if not isinstance(name, str):
        if isinstance(name, Registrar):
            if options:
                raise InputError("options cannot be applied to a registrar object; construct it with them")
            return name
        raise InputError(f"expected a registrar name or object, got {type(name).__name__}")
    infos = available_registrars()
    if name not in infos:
        known = ", ".join(infos) or "none (is regkit installed? run `pip install -e .`)"
        raise InputError(f"unknown registrar {name!r}", fix=f"use one of: {known}")
    factory = infos[name].load()
    try:
        return factory(**options)
    except TypeError as exc:
        raise InputError(f"bad options for registrar {name!r}: {exc}") from None
