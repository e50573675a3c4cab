"""regkit: classical and deep rigid registration of prostate MR to transrectal ultrasound, side by side.

The public API is importable from here; heavy modules load on first use so that ``import regkit`` (and
``regkit --help``) stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "RigidTransform": "regkit.transform",
    "fit_rigid": "regkit.transform",
    "read_transform": "regkit.transform_io",
    "write_transform": "regkit.transform_io",
    "Case": "regkit.case",
    "load_case": "regkit.case",
    "Dataset": "regkit.dataset",
    "load_dataset": "regkit.dataset",
    "Registrar": "regkit.registrar",
    "Capabilities": "regkit.registrar",
    "MethodDeclaration": "regkit.registrar",
    "register_method": "regkit.registry",
    "RegistrarBase": "regkit.registrar",
    "RegistrationResult": "regkit.registrar",
    "get_registrar": "regkit.registry",
    "available_registrars": "regkit.registry",
    "register_registrar": "regkit.registry",
    "InputError": "regkit.errors",
    "builtin_benchmark": "regkit.benchmark",
    "compare": "regkit.evaluation.compare",
    "register": "regkit.app.register_pair",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'regkit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
