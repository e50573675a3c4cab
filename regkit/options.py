"""Checks of registrar option values and method names, in one vocabulary of errors.

A registrar checks its options when it is built, not when it runs: each check below raises an
:class:`~regkit.errors.InputError` that names the option, its value, what it must be and the fix. A registrar class
may expose its checks to the registry as ``check_options(**options)`` (called with every option, defaults filled in,
before anything is constructed: :func:`regkit.registry.check_options`), so that ``regkit compare`` refuses a bad
value before any work, and its constructor calls the same function.

Numbers read from the command line are JSON, so ``NaN`` and ``Infinity`` arrive as floats: every number here must
be finite.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from regkit.errors import InputError

#: Characters a method name or alias may not hold: ``,`` separates ``--methods``, ``=`` gives an alias, ``+`` chains,
#: ``:`` pairs ``--compare A:B``, ``@`` names a cascade's stage (``attreg@1``), ``.`` separates ``-O METHOD.OPTION``.
NAME_RESERVED = ",=+:@."


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(name: str, value, *, low: float | None = None, above: float | None = None,
                 high: float | None = None, optional: bool = False, whole: bool = False,
                 fix: str | None = None) -> float | int | None:
    """``value`` as a finite number (an ``int`` when ``whole``), or an :class:`InputError` naming ``name``.

    ``low`` and ``high`` are inclusive bounds, ``above`` an exclusive lower bound; ``None`` passes when
    ``optional``. ``True``/``False`` are not numbers here.
    """
    if optional and value is None:
        return None
    bounds = [f"of at least {_text(low)}" if low is not None else "",
              f"above {_text(above)}" if above is not None else "",
              f"at most {_text(high)}" if high is not None else ""]
    wanted = " ".join(["a whole number" if whole else "a number", " and ".join(b for b in bounds if b)]).strip()
    wanted += " (or null)" if optional else ""
    note = ""
    if _is_number(value) and not math.isfinite(value):
        note = " (not a finite number)"
    elif _is_number(value) and (not whole or value == int(value)) and \
            (low is None or value >= low) and (above is None or value > above) and (high is None or value <= high):
        return int(value) if whole else float(value)
    raise InputError(f"{name} must be {wanted}, got {value!r}{note}", fix=fix or _example(name, low, above))


def check_numbers(name: str, value, *, length: int | None = None, scalar: bool = True, optional: bool = False,
                  fix: str | None = None, **bounds) -> tuple | None:
    """``value`` as a non-empty tuple of numbers, each checked as by :func:`check_number` (``bounds``: its ``low``,
    ``above``, ``high``, ``whole``); one number stands for a list of one when ``scalar``; ``length`` is the count
    the list must have."""
    if optional and value is None:
        return None
    example = _text(_start(bounds.get("low"), bounds.get("above")))
    fix = fix or f"give {name} as a list of numbers, e.g. {name}=[{example}]"
    if _is_number(value) and scalar:
        return (check_number(name, value, fix=fix, **bounds),)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InputError(f"{name} must be a list of numbers{' (or one number)' if scalar else ''}, got {value!r}",
                         fix=fix)
    if not value:
        raise InputError(f"{name} must hold at least one value, got an empty list", fix=fix)
    if length is not None and len(value) != length:
        raise InputError(f"{name} must hold {length} values, got {len(value)}", fix=fix)
    return tuple(check_number(f"{name}[{i}]", v, fix=fix, **bounds) for i, v in enumerate(value))


def check_choice(name: str, value, choices: Iterable[str], fix: str | None = None) -> str:
    """``value`` if it is one of ``choices``, else an :class:`InputError` naming ``name`` and the choices."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}",
                         fix=fix or f"e.g. {name}={choices[0]}")
    return value


def _text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _start(low, above) -> float:
    return low if low is not None else (above + 1 if above is not None else 0)


def _example(name: str, low, above) -> str:
    return f"e.g. {name}={_text(_start(low, above))}"


def name_problem(name, allow: str = "") -> str | None:
    """Why ``name`` cannot name a method (a registry name, an alias or a registrar's ``name``), or None when it can:
    it must be non-empty text without spaces, control characters or any of :data:`NAME_RESERVED` but ``allow``
    (a chain's name holds ``+``)."""
    if not isinstance(name, str):
        return f"is {type(name).__name__}, not text"
    if not name:
        return "is empty"
    bad = sorted({c for c in name if (c in NAME_RESERVED and c not in allow) or c.isspace() or not c.isprintable()})
    if bad:
        return (f"holds {' '.join(repr(c) for c in bad)}, which --methods, -O, --compare or a chain would read as "
                "syntax")
    return None


def check_name(name, what: str, fix: str, allow: str = "") -> str:
    """``name`` if it can name a method (:func:`name_problem`), else an :class:`InputError` saying ``what`` it is."""
    problem = name_problem(name, allow)
    if problem:
        raise InputError(f"{what} {name!r} {problem}", fix=fix)
    return name
