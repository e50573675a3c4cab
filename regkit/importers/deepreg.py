"""DeepReg paired data (h5 files or NIfTI folders) — :func:`import_deepreg`.

Layouts, as DeepReg's paired loaders read them (``deepreg/dataset/loader/h5_loader.py``, ``nifti_loader.py``)::

    src/  (or src/{train,valid,val,test}/)         src/  (or src/{train,valid,val,test}/)
      moving_images.h5   keys "obs1", "obs2", ...     moving_images/<name>.nii.gz
      fixed_images.h5    the same keys                fixed_images/<name>.nii.gz
      moving_labels.h5   the same keys                moving_labels/<name>.nii.gz
      fixed_labels.h5    the same keys                fixed_labels/<name>.nii.gz

Conventions
-----------
* A case is a key (h5) or a file name (NIfTI) present in all four; a name missing from any is an error listing
  it. Non-array entries of a label file (the UCL files' ``num_labels``, ``num_important``) are ignored.
* Arrays are indexed ``(W, H, D)`` — DeepReg's order, which is NIfTI's voxel order ``(x, y, z)`` as nibabel reads
  it — so ``array[i, j, k]`` is voxel ``(x, y, z) = (i, j, k)``. Labels are ``(W, H, D)`` or ``(W, H, D, n)``:
  channel 0 is the gland, the others corresponding landmarks (a ``(W, H, D, 1)`` label is one channel). Values
  above 0.5 are inside (DeepReg's labels are in [0, 1]).
* Which side is the MR is the user's choice (``mr_side``): DeepReg's MR–US demo uses moving = MR, fixed = US.
  regkit's case always has the MR fixed and the TRUS moving.
* Geometry: an h5 array holds none. Its voxel ``spacing`` comes from the user; the default is 0.8 mm isotropic,
  the spacing the UCL MR–US data were resampled to (µ-RegPro's too). ``frame`` says where an array sits in
  physical space: ``"centre"`` (default) puts each array's centre at the origin, ``"corner"`` its first voxel;
  the direction is the identity. Both sides get the same frame, so the identity maps array centres (or corners)
  onto each other — what DeepReg assumes when it warps one array onto another. Both choices are recorded in
  ``case.json`` (``geometry``). NIfTI folders use their headers (``geometry="header"``), or, like DeepReg, only
  their arrays (``geometry="array"``, with ``spacing`` and ``frame``).
* Ground truth: DeepReg's data ship none; the reference is derived from the labels
  (:mod:`regkit.importers.reference`), with its quality in ``case.json``; ``reference="identity"`` only by name.
  A wrong spacing scales one side, which no rigid reference can absorb: the surface distance and the flags show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from regkit.errors import InputError
from regkit.importers.cases import ReferenceChoice, check_reference_choice, labelled_case
from regkit.importers.writing import ProgressCallback, check_source, index_folder, listing, run_import

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from regkit.dataset import Dataset
    from regkit.importers.reference import ReferenceThresholds

NAMES = ("moving_images", "fixed_images", "moving_labels", "fixed_labels")
SPLITS = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}
DEFAULT_SPACING = (0.8, 0.8, 0.8)
IGNORED_KEYS = ("num_labels", "num_important")
Frame = Literal["centre", "corner"]


def _kind(root: Path) -> str | None:
    if any((root / f"{n}.h5").is_file() for n in NAMES):
        return "h5"
    if any((root / n).is_dir() for n in NAMES):
        return "nifti"
    return None


def deepreg_roots(src: Path, split: str) -> list[tuple[str, Path, str]]:
    """(split, folder, "h5" | "nifti") for ``src`` or its split folders."""
    if (kind := _kind(src)) is not None:
        return [(SPLITS.get(src.name.lower(), split), src, kind)]
    roots = []
    for p in sorted(q for q in src.iterdir() if q.is_dir()):
        canonical = SPLITS.get(p.name.lower())
        if canonical and (kind := _kind(p)) is not None:
            if any(s == canonical for s, _, _ in roots):
                raise InputError(f"two folders map to the {canonical!r} split", p, "keep one per split")
            roots.append((canonical, p, kind))
    if not roots:
        raise InputError(
            f"not a DeepReg paired layout: no moving_images.h5 / fixed_images.h5 (or moving_images/, fixed_images/ "
            f"folders) here or in train/, valid/, test/; {listing(src)}", src,
            "give the folder holding moving_images.h5, fixed_images.h5, moving_labels.h5, fixed_labels.h5 (or the "
            "same names as NIfTI folders), or its parent with train/, valid/, test/")
    return roots


def _h5_keys(path: Path) -> list[str]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return sorted(k for k, v in f.items() if isinstance(v, h5py.Dataset) and k not in IGNORED_KEYS)
    except OSError as exc:
        raise InputError(f"cannot read the h5 file ({exc})", path, "give an HDF5 file as DeepReg writes it") from None


def _index(root: Path, kind: str, required: list[str]) -> dict[str, dict[str, object]]:
    index = {}
    for name in NAMES:
        path = root / (f"{name}.h5" if kind == "h5" else name)
        if not path.exists():
            if name in required:
                wanted = ", ".join(n + (".h5" if kind == "h5" else "/") for n in required)
                why = (" (labels are needed to derive the reference; or pass reference='identity')"
                       if name.endswith("labels") else "")
                raise InputError(f"{path.name} is missing; {listing(root)}", path,
                                 f"DeepReg's paired layout needs {wanted}{why}")
            index[name] = {}
            continue
        if kind == "h5":
            index[name] = {k: (path, k) for k in _h5_keys(path)}
        else:
            index[name] = dict(index_folder(path))
        if name in required and not index[name]:
            raise InputError(f"{path.name} holds no {'array' if kind == 'h5' else 'image'}", path,
                             "put one entry per case, with the same key (file name) in the four")
    return index


def _array_image(a: np.ndarray, spacing, frame: Frame) -> sitk.Image:
    from regkit.image import make_image

    size = np.array(a.shape[:3])
    origin = np.zeros(3) if frame == "corner" else -(size - 1) / 2 * np.asarray(spacing)
    return make_image(np.ascontiguousarray(np.transpose(a, (2, 1, 0))), spacing, origin)


def _read_h5(path: Path, key: str, what: str, label: bool, spacing, frame: Frame) -> list[sitk.Image]:
    import h5py

    with h5py.File(path, "r") as f:
        a = np.asarray(f[key], dtype=np.float32)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or (not label and a.shape[3] != 1):
        shape = "(W, H, D) or (W, H, D, n)" if label else "(W, H, D)"
        raise InputError(f"{what} {key!r} has shape {a.shape}; DeepReg's is {shape}", path,
                         "store one 3-D array per case (labels may add a channel axis last)")
    if not np.isfinite(a).all():
        raise InputError(f"{what} {key!r} holds NaN or infinite values", path, "replace them before importing")
    if label:
        return [_array_image((a[..., k] > 0.5).astype(np.uint8), spacing, frame) for k in range(a.shape[3])]
    return [_array_image(a[..., 0], spacing, frame)]


def _read_nifti(path: Path, what: str, label: bool, geometry: str, spacing, frame: Frame) -> list[sitk.Image]:
    from regkit.image import read_image
    from regkit.importers.labels import read_label_channels

    images = read_label_channels(path, what) if label else [read_image(path, what)]
    if geometry == "array":
        import SimpleITK as sitk

        return [_array_image(np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0)), spacing, frame) for img in images]
    return images


def import_deepreg(src: str | Path, dst: str | Path, *, mr_side: Literal["fixed", "moving"],
                   spacing: float | tuple[float, ...] | None = None, frame: Frame = "centre",
                   geometry: Literal["header", "array"] = "header", split: str = "test",
                   reference: ReferenceChoice = "labels", prefix: str = "",
                   thresholds: ReferenceThresholds | None = None,
                   progress: ProgressCallback | None = None) -> Dataset:
    """Import DeepReg paired data, h5 or NIfTI (see the module docstring for the layouts and conventions).

    Parameters
    ----------
    src : path-like
        The folder holding the four h5 files (or NIfTI folders), or its parent with ``train/``, ``valid/``,
        ``test/``.
    dst : path-like
        Dataset folder to write (created; existing cases and manifest entries are kept; a re-run resumes).
    mr_side : {"fixed", "moving"}
        Which of DeepReg's sides is the MR (DeepReg's MR–US demo: ``"moving"``).
    spacing : float or (float, float, float), optional
        Voxel spacing (mm) of arrays without geometry (h5, or NIfTI with ``geometry="array"``); default 0.8 mm.
    frame : {"centre", "corner"}
        Where such arrays sit in physical space: centred on the origin, or first voxel at it.
    geometry : {"header", "array"}
        NIfTI only: trust the headers, or use the arrays with ``spacing`` and ``frame`` as DeepReg does.
    split : str
        The split of the cases when ``src`` has no split folders.
    reference : {"labels", "identity"}
        The reference derived from the labels, or the identity (by name only).
    thresholds : ReferenceThresholds, optional
        Where the reference is flagged (:class:`regkit.importers.reference.ReferenceThresholds`).
    prefix : str
        Prepended to every case id.
    progress : callable, optional
        Called as ``progress(case_id, "imported" | "skipped")`` after each case.
    """
    src, dst = check_source(src, dst, split)
    check_reference_choice(reference)
    if mr_side not in ("fixed", "moving"):
        raise InputError(f"mr_side must be 'fixed' or 'moving', got {mr_side!r}",
                         fix="DeepReg's MR-US demo uses moving = MR (mr_side='moving'; --mr-side moving)")
    if frame not in ("centre", "corner"):
        raise InputError(f"unknown frame {frame!r}", fix="use 'centre' or 'corner'")
    if geometry not in ("header", "array"):
        raise InputError(f"unknown geometry {geometry!r}", fix="use 'header' or 'array'")
    given = spacing is not None
    sp = DEFAULT_SPACING if spacing is None else tuple(np.broadcast_to(np.asarray(spacing, float), 3).tolist())
    if not all(v > 0 and np.isfinite(v) for v in sp):
        raise InputError(f"the spacing must be positive millimetres, got {spacing!r}", fix="e.g. spacing=0.8")
    us_side = "fixed" if mr_side == "moving" else "moving"
    roles = {"mr_image": f"{mr_side}_images", "us_image": f"{us_side}_images", "mr_label": f"{mr_side}_labels",
             "us_label": f"{us_side}_labels"}
    required = [roles["mr_image"], roles["us_image"], roles["mr_label"]]
    if reference == "labels":
        required.append(roles["us_label"])
    from regkit.dataset import check_case_id

    entries = []
    for split_name, root, kind in deepreg_roots(src, split):
        index = _index(root, kind, required)
        names = sorted(set().union(*(index[n] for n in required)))
        unmatched = {n: [r for r in required if n not in index[r]] for n in names}
        unmatched = {n: m for n, m in unmatched.items() if m}
        if unmatched:
            shown = "; ".join(f"{n} (not in {', '.join(m)})" for n, m in list(unmatched.items())[:8])
            raise InputError(f"{len(unmatched)} key(s) are not in every {'file' if kind == 'h5' else 'folder'}: "
                             f"{shown}", root, "every case needs the same key (file name) in the moving/fixed "
                             "images and labels: add the missing entries, or remove the unmatched ones")
        entries += [(split_name, root, kind, n, {r: index[f].get(n) for r, f in roles.items()}) for n in names]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e[3]] = counts.get(e[3], 0) + 1
    geo = {"spacing_mm": list(sp), "spacing_from": "user" if given else "default (0.8 mm, the UCL MR-US resampling)",
           "frame": frame, "direction": "identity", "axis_order": "(W, H, D) = voxel (x, y, z)"}
    jobs = []
    for split_name, root, kind, name, items in entries:
        stem = name.removesuffix(".nii.gz") if kind == "nifti" else name
        case_id = check_case_id(prefix + (f"{split_name}_{stem}" if counts[name] > 1 else stem), root)
        key = f"{(root / roles['mr_image']).resolve()}:{name}"
        arrays = kind == "h5" or geometry == "array"
        meta_geo = geo if arrays else {"source": "NIfTI headers"}

        def build(case_id=case_id, split_name=split_name, root=root, kind=kind, name=name, items=items, key=key,
                  meta_geo=meta_geo):
            def read(role: str, what: str, label: bool):
                item = items[role]
                if item is None:
                    return None
                if kind == "h5":
                    return _read_h5(*item, what, label, sp, frame)
                return _read_nifti(item, what, label, geometry, sp, frame)

            mr, us = read("mr_image", "MR image", False)[0], read("us_image", "TRUS image", False)[0]
            mr_ch, us_ch = read("mr_label", "MR label", True), read("us_label", "TRUS label", True)
            where = {r: (it[0] if kind == "h5" else it) for r, it in items.items() if it is not None}
            source = {"key": key, "format": kind, "name": name, "mr_side": mr_side,
                      **{r: str(p) for r, p in where.items()}}
            metadata = {"importer": "deepreg", "layout": f"deepreg {kind} (MR = {mr_side})", "split": split_name,
                        "source": source, "geometry": meta_geo}
            files = {"fixed": where.get("mr_image"), "moving": where.get("us_image"),
                     "fixed_label": where.get("mr_label")}
            if us_ch is not None:
                files["moving_label"] = where.get("us_label")
            return labelled_case(case_id, mr, us, mr_ch, us_ch, files, metadata, reference, thresholds), {}

        jobs.append((case_id, split_name, key, build))
    return run_import(dst, "deepreg", src, jobs, progress)
