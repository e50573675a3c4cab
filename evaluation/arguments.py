"""A comparison's arguments, checked before any work, with the same named errors from the CLI and the Python API.

:func:`one_run_per_folder` wraps :func:`regkit.evaluation.compare.compare`: it checks the arguments' types and
ranges (:func:`check_compare_arguments`), makes the output folder (:func:`prepare_out`) and holds its lock
(:mod:`regkit.lock`) for the whole run, so that a second run on the same folder stops at once and names the first.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from regkit.errors import InputError, check_path, check_whole
from regkit.lock import hold_folder

SCHEDULER_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss)://)?[^\s/:]+:\d+/?$|^inproc://\S+$")


def one_run_per_folder(run: Callable) -> Callable:
    """Decorate a comparison runner taking ``out``: check its arguments, make ``out`` and hold its lock."""
    signature = inspect.signature(run)

    @functools.wraps(run)
    def checked(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InputError(f"{run.__name__}(): {exc}", fix=f"see help(regkit.{run.__name__})") from None
        bound.apply_defaults()
        check_compare_arguments(bound.arguments)
        out = prepare_out(bound.arguments["out"])
        with hold_folder(out, "regkit compare run"):
            return run(*bound.args, **bound.kwargs)

    return checked


def check_compare_arguments(args: Mapping) -> None:
    """Types and ranges of :func:`~regkit.evaluation.compare.compare`'s arguments (``args`` by name).

    What needs the registry or the data (method names, options, splits, cases) is checked by the runner itself,
    still before any work.
    """
    methods = args.get("methods")
    if not isinstance(methods, str) and not (isinstance(methods, list | tuple)):
        raise InputError(f"methods must be text such as 'mi,mind,attreg' or a list of names and registrars, got "
                         f"{methods!r}")
    init = args.get("init")
    if not isinstance(init, str):
        raise InputError(f"init must be text such as '8mm', '0-20mm' or '8mm,16mm', got {init!r}",
                         fix=f"write init='{init}mm'" if isinstance(init, int | float) else "e.g. init='8mm'")
    check_path("data", args.get("data"), optional=True)
    if not isinstance(args.get("split"), str) or not args.get("split"):
        raise InputError(f"split must be a split's name such as 'test', got {args.get('split')!r}")
    check_whole("cases", args.get("cases"), 1, optional=True)
    check_whole("starts_per_case", args.get("starts_per_case"), 1)
    check_whole("seed", args.get("seed"), 0)
    check_whole("workers", args.get("workers"), 1, optional=True)
    check_path("out", args.get("out"))
    check_path("starts_file", args.get("starts_file"), optional=True)
    options = args.get("method_options")
    if options is not None and (not isinstance(options, Mapping)
                                or not all(isinstance(k, str) and isinstance(v, Mapping) for k, v in options.items())):
        raise InputError(f"method_options must map method labels to {{option: value}} dicts, got {options!r}",
                         fix="e.g. method_options={'mi': {'iterations': 300}}")
    check_scheduler(args.get("scheduler"))


def check_scheduler(scheduler) -> None:
    """None, a Dask scheduler address (``tcp://host:port``), or a Dask client or cluster object."""
    if scheduler is None or hasattr(scheduler, "submit") or hasattr(scheduler, "scheduler_address"):
        return
    if not isinstance(scheduler, str) or not SCHEDULER_ADDRESS.match(scheduler.strip()):
        raise InputError(f"cannot read the Dask scheduler address {scheduler!r}",
                         fix="write tcp://HOST:PORT (what `dask scheduler` prints), or give a distributed.Client")


def prepare_out(out) -> Path:
    """Make the output folder, or say why it cannot be made; refuse a dataset folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("the output folder is a file", out, "give a folder (new or from an earlier run)")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot make the output folder: {parent} is a file", out, "give a path under a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the output folder: {exc.strerror}", out,
                         "give a folder you can write") from None
    if (out / "dataset.json").exists():
        raise InputError("the output folder is a dataset folder (it holds dataset.json)", out,
                         "give another --out folder: results are not written among the cases")
    return out
