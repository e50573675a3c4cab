"""µ-RegPro (MICCAI 2023 challenge, UCL): MR–TRUS pairs with gland and landmark labels — :func:`import_muregpro`.

Layout, as published::

    nifti_data/                   (give it, its parent, or one split folder)
      train/  val/  (test/)
        mr_images/case000NNN.nii.gz    MR, fixed
        us_images/case000NNN.nii.gz    TRUS, moving
        mr_labels/case000NNN.nii.gz    4-D (x, y, z, k) MR labels
        us_labels/case000NNN.nii.gz    4-D (x, y, z, k) TRUS labels

Conventions
-----------
* A case is a file name present in the four folders; a name missing from any of them is an error that lists it.
* Grids: any. The challenge ships MR 120×128×128 and TRUS 81×118×88 voxels at 0.8 mm, but nothing here depends on
  it: physical space (LPS mm) comes from each file's header, and cases may differ in size and spacing. A label
  must share its image's grid.
* Labels: channel ``k = 0`` is the gland; channels ``k ≥ 1`` are corresponding landmarks (apex, base, urethra,
  lesions, cysts, calcifications; how many varies by patient). A landmark is the physical centroid of its channel;
  a channel empty in either modality is skipped (recorded in ``case.json`` under ``landmarks.skipped``). The
  landmarks are kept in ``case.json`` as corresponding point sets in mm (``landmarks.fixed`` MR,
  ``landmarks.moving`` TRUS), so evaluation computes a **landmark TRE in millimetres**. This is *not* the
  challenge's own "TRE", which its baseline code computes from label centroids in voxel indices of resized
  arrays (and with a mean absolute coordinate difference), not in mm.
* Sides: MR fixed, TRUS moving (regkit's convention; the challenge's baselines use the same).
* Ground truth: µ-RegPro ships no registration. The reference (MR physical → TRUS physical) is derived from the
  labels (:mod:`regkit.importers.reference`): landmarks + gland surfaces, or the surfaces alone with fewer than
  3 landmarks. Its quality (landmark residuals, surface distance, Dice) and flags go into ``case.json``
  (``reference``) and the import report. ``reference="identity"`` (by name only) keeps MR physical = TRUS
  physical instead, and records the label-derived one beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from regkit.errors import InputError
from regkit.importers.cases import ReferenceChoice, check_reference_choice, labelled_case
from regkit.importers.writing import ProgressCallback, check_source, index_folder, listing, run_import

if TYPE_CHECKING:  # pragma: no cover
    from regkit.dataset import Dataset
    from regkit.importers.reference import ReferenceThresholds

FOLDERS = {"mr_image": "mr_images", "us_image": "us_images", "mr_label": "mr_labels", "us_label": "us_labels"}
ROLES = {"mr_image": "MR image", "us_image": "TRUS image", "mr_label": "MR label", "us_label": "TRUS label"}
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _is_root(p: Path) -> bool:
    return any((p / name).is_dir() for name in FOLDERS.values())


def _near_misses(root: Path) -> str:
    """Folders whose names look like a µ-RegPro folder spelled otherwise."""
    hints = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        key = p.name.lower().replace("-", "_").replace(" ", "_")
        for name in FOLDERS.values():
            if p.is_dir() and p.name != name and (key == name or key + "s" == name or key == name.replace("_", "")):
                hints.append(f"rename {p.name}/ to {name}/")
    return "; ".join(hints)


def muregpro_roots(src: Path, split: str) -> list[tuple[str, Path]]:
    """(split, folder holding the four folders) for ``src``: a split folder, ``nifti_data/`` or its parent."""
    if (src / "nifti_data").is_dir() and not _is_root(src):
        src = src / "nifti_data"
    if _is_root(src):
        return [(SPLITS.get(src.name.lower(), split), src)]
    roots = []
    for name in sorted(p.name for p in src.iterdir() if p.is_dir()):
        canonical = SPLITS.get(name.lower())
        if canonical and _is_root(src / name):
            if any(s == canonical for s, _ in roots):
                raise InputError(f"two folders map to the {canonical!r} split", src / name, "keep one per split")
            roots.append((canonical, src / name))
    if not roots:
        hint = _near_misses(src) or "; ".join(h for p in src.iterdir() if p.is_dir() and (h := _near_misses(p)))
        raise InputError(
            f"not a µ-RegPro layout: no mr_images/, us_images/, mr_labels/, us_labels/ here, in nifti_data/ or in "
            f"train/, val/, test/; {listing(src)}", src,
            (hint + "; " if hint else "") + "give nifti_data/ (or its parent, or one split folder) as downloaded")
    return roots


def _cases(split: str, root: Path, reference: ReferenceChoice) -> list[tuple[str, dict[str, Path | None]]]:
    required = ["mr_image", "us_image", "mr_label"] + (["us_label"] if reference == "labels" else [])
    for role in required:
        if not (root / FOLDERS[role]).is_dir():
            hint = _near_misses(root)
            raise InputError(f"the {FOLDERS[role]}/ folder is missing ({ROLES[role]}s); {listing(root)}",
                             root / FOLDERS[role],
                             (hint + "; " if hint else "") + "µ-RegPro needs mr_images/, us_images/, mr_labels/ and "
                             "us_labels/ with the same file names"
                             + ("" if role != "us_label" else " (without TRUS labels, only reference='identity' "
                                "is possible)"))
    index = {role: index_folder(root / name) for role, name in FOLDERS.items()}
    if not index["mr_image"]:
        raise InputError("mr_images/ holds no image", root / "mr_images", "put the MR images there as <case>.nii.gz")
    names = sorted(set().union(*(index[r] for r in required)))
    unmatched = {n: [FOLDERS[r] + "/" for r in required if n not in index[r]] for n in names}
    unmatched = {n: missing for n, missing in unmatched.items() if missing}
    if unmatched:
        shown = "; ".join(f"{n} (no file in {', '.join(m)})" for n, m in list(unmatched.items())[:8])
        more = f" and {len(unmatched) - 8} more" if len(unmatched) > 8 else ""
        raise InputError(f"{len(unmatched)} case name(s) are not in every folder: {shown}{more}", root,
                         "every case needs a file of the same name in mr_images/, us_images/, mr_labels/ and "
                         "us_labels/: add the missing files, or move the unmatched ones out")
    return [(n, {r: index[r].get(n) for r in FOLDERS}) for n in names]


def import_muregpro(src: str | Path, dst: str | Path, *, split: str = "test", reference: ReferenceChoice = "labels",
                    prefix: str = "", thresholds: ReferenceThresholds | None = None,
                    progress: ProgressCallback | None = None) -> Dataset:
    """Import µ-RegPro's NIfTI data (see the module docstring for the layout and its conventions).

    Parameters
    ----------
    src : path-like
        ``nifti_data/``, the folder holding it, or one split folder (``train/``, ``val/``).
    dst : path-like
        Dataset folder to write (created; existing cases and manifest entries are kept; a re-run resumes).
    split : str
        The split of the cases when ``src`` is not a split folder and has none.
    reference : {"labels", "identity"}
        ``"labels"``: the reference derived from the labels. ``"identity"``: MR physical = TRUS physical, only
        when asked for by name (the label-derived reference is recorded beside it).
    thresholds : ReferenceThresholds, optional
        Where the reference is flagged (:class:`regkit.importers.reference.ReferenceThresholds`).
    prefix : str
        Prepended to every case id (to merge sources whose names collide).
    progress : callable, optional
        Called as ``progress(case_id, "imported" | "skipped")`` after each case.

    Returns
    -------
    regkit.dataset.Dataset
    """
    src, dst = check_source(src, dst, split)
    check_reference_choice(reference)
    from regkit.dataset import check_case_id

    entries = [(s, root, name, files) for s, root in muregpro_roots(src, split)
               for name, files in _cases(s, root, reference)]
    counts: dict[str, int] = {}
    for _, _, name, _ in entries:
        counts[name] = counts.get(name, 0) + 1
    jobs = []
    for split_name, root, name, files in entries:
        case_id = check_case_id(prefix + (f"{split_name}_{name}" if counts[name] > 1 else name), root)
        key = str((root / "mr_images" / name).resolve())

        def build(case_id=case_id, split_name=split_name, root=root, files=files, key=key):
            return _build(case_id, split_name, root, files, reference, key, thresholds), {}

        jobs.append((case_id, split_name, key, build))
    return run_import(dst, "muregpro", src, jobs, progress)


def _build(case_id: str, split: str, root: Path, files: dict[str, Path | None], reference: ReferenceChoice,
           key: str, thresholds: ReferenceThresholds | None = None):
    from regkit.image import read_image
    from regkit.importers.labels import read_label_channels

    mr = read_image(files["mr_image"], "MR image")
    us = read_image(files["us_image"], "TRUS image")
    mr_channels = read_label_channels(files["mr_label"], "MR label")
    us_channels = read_label_channels(files["us_label"], "TRUS label") if files["us_label"] else None
    source = {"key": key, "mr": str(files["mr_image"]), "trus": str(files["us_image"]),
              "mr_label": str(files["mr_label"])}
    if files["us_label"]:
        source["trus_label"] = str(files["us_label"])
    metadata = {"importer": "muregpro", "layout": "µ-RegPro {train,val}/{mr,us}_{images,labels}", "split": split,
                "source": source, "root": str(root)}
    roles = {"fixed": files["mr_image"], "moving": files["us_image"], "fixed_label": files["mr_label"]}
    if files["us_label"]:
        roles["moving_label"] = files["us_label"]
    return labelled_case(case_id, mr, us, mr_channels, us_channels, roles, metadata, reference, thresholds)
