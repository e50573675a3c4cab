"""Reading back the files regkit writes: JSON records and CSV tables, checked for type, schema and version.

Every file regkit writes and reads again (``dataset.json``, ``case.json``, a checkpoint's ``.json``, ``run.json``,
``starts.csv``, ``results.csv``) is read here, so that a damaged, foreign or newer file ends in one
:class:`~regkit.errors.InputError` naming the file, what is wrong with it and the fix, never in a
``UnicodeDecodeError``, ``AttributeError``, ``TypeError`` or ``ValueError`` from deep inside, and never in
numbers that are really text. The owner of each file states its schema (:data:`Fields` for a JSON object, the
columns' kinds for a table) and its version key; the rules are these:

* a JSON record is UTF-8 text holding one JSON object; a listed field has the JSON type stated (a number is never
  a Boolean, a whole number never a fraction); unlisted fields are free;
* a version key, when the schema has one, holds a whole number this regkit reads; a higher one was written by a
  newer regkit (the fix: upgrade), any other is not regkit's;
* a table is UTF-8 CSV with a header naming at least the required columns; a ``"number"`` column holds numbers
  (an empty cell is missing, NaN), a ``"whole"`` column whole numbers in every row, a ``"flag"`` column ``True``
  or ``False`` (an empty cell is missing, None), a ``"text"`` column anything.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from regkit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

Kind = Literal["text", "number", "whole", "flag"]
#: ``{field: JSON type(s)}``: ``str``, ``int`` (whole number), ``float`` (any number), ``bool``, ``list``, ``dict``,
#: or ``None`` (JSON null); a tuple allows several
Fields = Mapping[str, type | tuple | None]

_JSON_NAMES = {dict: "an object", list: "an array", str: "text", bool: "true/false", int: "a whole number",
               float: "a number", type(None): "null"}


def json_type(value) -> str:
    """The JSON type of a parsed value, in words (``an array``, ``text``, ...)."""
    if isinstance(value, bool):
        return "true/false"
    return _JSON_NAMES.get(type(value), type(value).__name__)


def read_text(path: str | Path, what: str, fix: str, error: type[InputError] = InputError,
              allow_empty: bool = False) -> str:
    """The UTF-8 text of one of regkit's files; ``error`` names a missing, unreadable, binary or (unless
    ``allow_empty``) empty file."""
    path = Path(path)
    if not path.exists():
        raise error(f"the {what} does not exist", path, fix)
    if path.is_dir():
        raise error(f"the {what} is a folder, not a file", path, fix)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read the {what}: {exc.strerror}", path, fix) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"the {what} is not text: byte {exc.start} is {data[exc.start:exc.start + 1]!r}, which is not "
                    "UTF-8 (a binary file, or one damaged by a copy?)", path, fix) from None
    if "\0" in text:
        raise error(f"the {what} is not text: it holds NUL bytes (a binary file?)", path, fix)
    if not text.strip() and not allow_empty:
        raise error(f"the {what} is empty", path, fix)
    return text


def read_json(path: str | Path, what: str, fields: Fields | None = None, *, required: tuple[str, ...] = (),
              version_key: str | None = None, version: int = 1, version_required: bool = False,
              fix: str = "repair it, or remove it and write it again", error: type[InputError] = InputError) -> dict:
    """One JSON object from ``path``, checked.

    Parameters
    ----------
    path : path-like
    what : str
        What the file is ("dataset manifest", "checkpoint config", ...), for messages.
    fields : mapping, optional
        The JSON type of each field that must have one (see :data:`Fields`), checked when present.
    required : tuple of str
        Fields that must be present.
    version_key : str, optional
        The field holding the format version, which must be ``version`` (when ``version_required``, or present).
    fix : str
        What the user can do about a damaged file.
    error : InputError subclass
        The error raised (e.g. :class:`~regkit.errors.CheckpointError`).
    """
    path = Path(path)
    text = read_text(path, what, fix, error)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"the {what} is not valid JSON ({exc})", path, fix) from None
    except RecursionError:
        raise error(f"the {what} nests too deep to be one of regkit's records", path, fix) from None
    if not isinstance(doc, dict):
        raise error(f"the {what} must hold a JSON object ({{...}}), but holds {json_type(doc)}", path, fix)
    if version_key is not None and (version_required or version_key in doc):
        check_version(doc.get(version_key), version_key, version, what, path, error)
    missing = [k for k in required if k not in doc]
    if missing:
        raise error(f"the {what} has no {', '.join(repr(k) for k in missing)}", path, fix)
    check_fields(doc, fields or {}, what, path, error=error)
    return doc


def check_version(found, key: str, version: int, what: str, path: str | Path | None,
                  error: type[InputError] = InputError) -> None:
    """``found`` must be the format ``version`` this regkit reads."""
    if found is None:
        raise error(f"the {what} has no {key!r} format version, so it is not regkit's", path,
                    f"give a {what} written by regkit (it holds \"{key}\": {version})")
    if isinstance(found, bool) or not isinstance(found, int):
        raise error(f"the {what}'s format version {key!r} must be a whole number, but holds {json_type(found)} "
                    f"{found!r}", path, f"a {what} written by regkit holds \"{key}\": {version}")
    if found > version:
        raise error(f"the {what} has format version {found}, newer than this regkit reads ({version})", path,
                    "upgrade regkit (pip install -U regkit), or write the file again with this version")
    if found != version:
        raise error(f"the {what} has format version {found}, which no regkit wrote (this one reads {version})", path,
                    f"write it again with regkit (\"{key}\": {version})")


def check_fields(doc: Mapping, fields: Fields, what: str, path: str | Path | None,
                 error: type[InputError] = InputError) -> None:
    """Each field of ``fields`` present in ``doc`` has its JSON type (see :data:`Fields`)."""
    for key, types in fields.items():
        if key in doc and not is_json_type(doc[key], types):
            value = doc[key]
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise error(f"the {what}'s {key!r} must be {_type_words(types)}, but holds {json_type(value)} {shown}",
                        path, f"repair {key!r} (regkit writes {_type_words(types)} there), or write the file again")


def is_json_type(value, types) -> bool:
    """Whether ``value`` has one of the JSON ``types`` (see :data:`Fields`)."""
    allowed = types if isinstance(types, tuple) else (types,)
    for t in allowed:
        if t is None and value is None:
            return True
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t is float and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return True
        if t in (str, bool, list, dict) and isinstance(value, t):
            return True
    return False


def _type_words(types) -> str:
    allowed = types if isinstance(types, tuple) else (types,)
    words = {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
             dict: "an object", None: "null"}
    return " or ".join(words[t] for t in allowed)


def read_table(path: str | Path, what: str, columns: Mapping[str, Kind], *, optional: Mapping[str, Kind] | None = None,
               fix: str = "repair it, or move it away and run again") -> pd.DataFrame:
    """A CSV table of regkit's, every cell read as text and each column of ``columns`` (required) and
    ``optional`` converted to its kind; an :class:`InputError` names the first cell that is not of its kind."""
    import pandas as pd

    path = Path(path)
    text = read_text(path, what, fix)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).fillna("")  # short rows
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise InputError(f"the {what} is not a CSV table ({reason})", path, fix) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"the {what} lacks columns {missing} (its header: {text.splitlines()[0][:200]!r})", path,
                         fix)
    for name, kind in {**columns, **(optional or {})}.items():
        if name in frame.columns and kind != "text":
            frame[name] = _column(frame[name], name, kind, what, path, fix)
    return frame


def _column(cells, name: str, kind: Kind, what: str, path: Path, fix: str):
    """One column of text cells as numbers (float, or int64 for ``"whole"``) or flags (True, False or None for
    ``"flag"``), or an error naming the first bad one."""
    import numpy as np

    if kind == "flag":
        text = np.char.lower(np.char.strip(cells.to_numpy(dtype=str)))
        bad = ~np.isin(text, ["true", "false", ""])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"the {what}'s column {name!r} holds {cells.iloc[row]!r} on line {row + 2}, where True "
                             "or False (or nothing) belongs", path, fix)
        return [{"true": True, "false": False}.get(t) for t in text]

    text = np.char.strip(cells.to_numpy(dtype=str))
    empty = text == ""
    try:
        values = np.where(empty, "nan", text).astype(float)
    except ValueError:
        values = None
    if kind == "whole" and values is not None:
        bad = empty | ~np.isfinite(values) | (np.abs(values) >= 2 ** 53)
        bad[~bad] = values[~bad] % 1 != 0
    else:
        bad = np.zeros(len(text), bool)
    if values is None:  # find the first cell that is not a number
        bad = np.array([not _is_number(t) for t in text])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        words = "a whole number" if kind == "whole" else "a number (or nothing)"
        raise InputError(f"the {what}'s column {name!r} holds {cells.iloc[row]!r} on line {row + 2}, where {words} "
                         "belongs", path, fix)
    return values.astype("int64") if kind == "whole" else values


def _is_number(text: str) -> bool:
    if not text:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True
