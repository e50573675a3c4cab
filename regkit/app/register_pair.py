"""Registering one MR–TRUS pair: ``regkit register`` and ``regkit.register``."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from regkit.case import Case
from regkit.consistency import Consistency
from regkit.errors import ConfigurationError, InputError
from regkit.image import read_image, write_image
from regkit.initial_alignment import ALIGNMENTS, SPELLINGS, initial_alignment
from regkit.registrar import FAILED, RegistrationResult
from regkit.transform import RigidTransform
from regkit.transform_io import read_transform, write_transform

#: The files of a registration's result, which a failed registration does not write (and removes, when an earlier
#: run left them in the folder).
RESULT_FILES = ("transform.tfm", "transform.txt", "moving_resampled.nii.gz")


@dataclass
class RegisterOutput:
    """The registration's result, the files written, and its consistency (None when not measured: ``qa=False``,
    a failed registration, a method that does not register, or a measure that failed: ``consistency_note`` says
    why)."""

    result: RegistrationResult
    files: dict[str, Path]
    consistency: Consistency | None = None
    consistency_note: str = ""

    @property
    def suspect(self) -> bool:
        return self.consistency is not None and self.consistency.suspect


def _plain(info: dict) -> dict:
    """The registrar's notes that read as plain JSON (masks used, metric values, iterations), not its objects."""
    def plain(v):
        if isinstance(v, str | bool | int | float) or v is None:
            return True
        return isinstance(v, list | tuple) and all(plain(x) for x in v)

    return {k: v for k, v in info.items() if plain(v)}


def register(fixed, moving, fixed_label=None, method: str = "mi", initial_transform=None,
             out: str | Path = "regkit-register", moving_label=None, moving_modality: str | None = None,
             method_options: dict | None = None, qa: bool = True, **options) -> RegisterOutput:
    """Register a moving TRUS to a fixed MR and write the results.

    Parameters
    ----------
    fixed, moving : path or SimpleITK.Image
        MR (fixed) and TRUS (moving) images.
    fixed_label : path or SimpleITK.Image, optional
        MR prostate label: needed by the deep registrars (crop box) and for the classical methods' mask.
    method : str
        A registrar name (``regkit list``); ``options`` are passed to it.
    method_options : dict, optional
        The registrar's options as a dict, beside ``options``: for those named like a parameter of this function
        (``mi``'s ``fixed``), e.g. ``method_options={"fixed": "label"}``.
    initial_transform : {"centres", "moments", "identity"}, a transform file, or a RigidTransform
        The start (fixed → moving): an initial alignment (:mod:`regkit.initial_alignment`: ``"centres"``, the
        default (None), takes the MR prostate centre, or the MR centre without a label, to the TRUS centre;
        ``"moments"`` matches the images' centres of mass; ``"identity"`` trusts the headers), a transform file
        (.tfm/.h5/4×4 .txt/elastix) or a transform. ``init=`` is its deprecated name (a ``FutureWarning``).
    moving_modality : str, optional
        What the moving image is ("US" for ultrasound, or e.g. "MR", "CT"): the classical methods mask an
        ultrasound moving image to its fan. Unsaid, they guess from the image
        (:func:`regkit.baselines.masks.looks_like_ultrasound`: an 8-bit image with a zero-filled outside).
    out : path
        Output folder: ``transform.tfm`` (ITK, read by 3D Slicer and ITK-SNAP), ``transform.txt`` (4×4),
        ``moving_resampled.nii.gz`` (the TRUS in MR space), ``overlay.png`` and ``result.json``.
    qa : bool
        Measure the result's consistency without the ground truth (:mod:`regkit.consistency`: the method restarted
        a few times near its result; it costs that many more registrations) and mark it suspect when it is worse
        than the threshold: ``result.json``'s ``consistency`` and ``suspect``, and the output's ``consistency``.

    Returns
    -------
    RegisterOutput
        The result and the files written. A registration that failed (``result.status == "failed"``, the reason
        in ``result.message``) writes only ``result.json`` and ``overlay.png`` (of the start): no transform
        that could be taken for a result. ``regkit register`` then exits with status 3.
    """
    from regkit.app.overlays import overlay
    from regkit.consistency import check_safely
    from regkit.evaluation.arguments import prepare_out
    from regkit.registrar import check_results
    from regkit.registry import get_registrar

    def load(x, what):
        if x is not None and not isinstance(x, sitk.Image | str | Path):
            raise InputError(f"the {what} must be a file path or a SimpleITK image, got {type(x).__name__}")
        return read_image(x, what) if isinstance(x, str | Path) else x  # an image is checked with its case

    keyword = "initial_transform"
    if "init" in options:
        if initial_transform is not None:
            raise InputError("initial_transform and init (its deprecated name) given together",
                             fix="give initial_transform alone")
        warnings.warn("regkit.register(init=...) is deprecated; use initial_transform=... (the same values)",
                      FutureWarning, stacklevel=2)
        keyword, initial_transform = "init", options.pop("init")
    if method_options is not None:
        if not isinstance(method_options, dict):
            raise InputError(f"method_options must be a dict of option names to values, got {method_options!r}")
        both = sorted(set(method_options) & set(options))
        if both:
            raise InputError(f"option(s) {', '.join(both)} given both in method_options and as keywords",
                             fix="give each option once")
        options = {**options, **method_options}
    if fixed is None or moving is None:
        raise InputError("both images are needed: fixed (the MR) and moving (the TRUS)")
    if initial_transform is None:
        initial_transform = "centres"
    if not isinstance(initial_transform, RigidTransform | str | Path):
        raise InputError(f"{keyword} must be 'centres', 'moments', 'identity', a transform file or a RigidTransform, "
                         f"got {initial_transform!r}")
    out = prepare_out(out)  # before any work: a path through a file fails now, not after the registration

    reg = get_registrar(method, **options)  # its options are checked before any image is read
    f, m = load(fixed, "MR image"), load(moving, "TRUS image")
    lab, mlab = load(fixed_label, "MR prostate label"), load(moving_label, "TRUS prostate label")
    case = Case("pair", f, m, lab, moving_label=mlab,
                metadata={"moving_modality": moving_modality} if moving_modality else {},
                files={k: Path(v) for k, v in (("fixed", fixed), ("moving", moving), ("fixed_label", fixed_label))
                       if isinstance(v, (str, Path))})
    if isinstance(initial_transform, RigidTransform):
        start = initial_transform
    elif str(initial_transform) in (*ALIGNMENTS, *SPELLINGS):
        start = initial_alignment(f, m, str(initial_transform), lab)
    else:
        start = read_transform(initial_transform)
    if reg.capabilities.needs_fixed_label and lab is None:
        raise InputError(f"method {method!r} needs the MR prostate label", fix="pass --fixed-label")
    pairs = [(case, start)]
    try:  # as a comparison runs it: what the registrar returns is checked, what it raises is its failure
        result = check_results(reg.register_many(pairs), pairs, method)[0]
    except ConfigurationError:
        raise
    except (Exception, SystemExit) as exc:  # a plug-in's bug (even sys.exit()) is the registration's failure
        result = RegistrationResult.failure(start, float("nan"), f"{type(exc).__name__}: {exc}")
    files = {}
    resampled = sitk.Resample(m, f, result.transform.to_sitk(), sitk.sitkLinear, 0.0, m.GetPixelID())
    if result.status == FAILED:  # no transform that looks like a result: the folder says what happened, and why
        for name in RESULT_FILES:
            (out / name).unlink(missing_ok=True)
    else:
        files["tfm"] = write_transform(result.transform, out / "transform.tfm")
        files["txt"] = write_transform(result.transform, out / "transform.txt")
        files["moving_resampled"] = write_image(resampled, out / "moving_resampled.nii.gz")
    (consistency,), note = check_safely(reg, pairs, [result]) if qa else ((None,), "")
    output = RegisterOutput(result, files, consistency, note)
    title = f"{method}: {result.status}{', suspect' if output.suspect else ''}, {result.runtime:.2f} s"
    files["overlay"] = overlay(f, resampled, lab, out / "overlay.png",
                               title_text=title + (" (the start)" if result.status == FAILED else ""))
    doc = {"method": method, "options": options, "moving_modality": moving_modality, "status": result.status,
           "message": result.message,
           "runtime_s": result.runtime, "start": start.matrix.tolist(), "transform": result.transform.matrix.tolist(),
           "info": _plain(result.info), "suspect": None if consistency is None else consistency.suspect,
           "consistency": None if consistency is None else consistency.to_dict(), "consistency_note": note,
           "convention": "maps fixed (MR) physical points to moving (TRUS) physical points, LPS mm"}
    (out / "result.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    files["json"] = out / "result.json"
    return output
