"""The generic paired-folder importer — :func:`import_paired_folders`.

For the published layouts, prefer their own importers: :mod:`regkit.importers.muregpro` and
:mod:`regkit.importers.deepreg` (which derive the reference from the labels by default).

Paired folders
--------------
::

    src/                                    or   src/{train,val,test}/  (µ-RegPro ships nifti_data/{train,val})
      mr_images/<case>.nii.gz   MR, fixed          fixed_images/   DeepReg naming: which side is MR is
      us_images/<case>.nii.gz   TRUS, moving       fixed_labels/   an option (DeepReg's MR-US demo uses
      mr_labels/<case>.nii.gz   MR labels          moving_images/  moving = MR, fixed = US; µ-RegPro's
      us_labels/<case>.nii.gz   TRUS labels        moving_labels/  baselines use moving = US, fixed = MR)

* Matching file names across the folders make a case; ``us_labels/`` is optional.
* Labels are 4-D ``(x, y, z, k)`` NIfTI whose channel ``k = 0`` is the prostate gland (µ-RegPro and the DeepReg
  demo store landmarks in the other channels). Channel 0 is taken; 3-D labels are used as they are, and vector
  (multi-component) labels give their component 0. Labels are binarised at 0.5.
* There is no ground truth in this layout. ``reference="identity"`` (this importer's default, and its meaning:
  the user states that each pair is pre-aligned) writes the **identity**; by default (``geometry="check"``) the
  MR and TRUS grids must then be identical (size, spacing, origin, direction), so that the identity in physical
  space is the voxel-to-voxel alignment. ``geometry="header"`` trusts the headers' physical space instead;
  ``geometry="voxel"`` gives the TRUS image and label the MR grid (same array size needed). Where TRUS labels
  exist, the label-derived reference (:mod:`regkit.importers.reference`, refined from the identity without the
  orientation search) is computed too and recorded beside the identity in ``case.json`` (``label_reference``,
  with its SRE from the identity); when it fits cleanly and lies over 1 mm from the identity, ``case.json`` says
  so (``note``).
* ``reference="labels"`` makes the label-derived reference the ground truth instead (TRUS labels needed; any
  grids).
* The MR surface (for SRE) comes from the MR gland label by marching cubes when the case is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from regkit.errors import InputError
from regkit.importers.cases import ReferenceChoice, check_reference_choice, labelled_case
from regkit.importers.labels import read_label_channels
from regkit.importers.writing import ProgressCallback, check_source, index_folder, listing, run_import

if TYPE_CHECKING:  # pragma: no cover
    from regkit.dataset import Dataset

PAIRED_FOLDERS = {  # naming -> role -> folder name (DeepReg's are resolved with the MR side)
    "mu-regpro": {"mr_image": "mr_images", "us_image": "us_images", "mr_label": "mr_labels", "us_label": "us_labels"},
}
DEEPREG_SIDES = ("fixed", "moving")
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
GEOMETRY_MODES = ("check", "header", "voxel")
ROLE_NAMES = {"mr_image": "MR image", "us_image": "TRUS image", "mr_label": "MR label", "us_label": "TRUS label"}



def _paired_roots(src: Path, split: str) -> list[tuple[str, Path]]:
    def is_root(p: Path) -> bool:
        return any((p / name).is_dir() for name in ("mr_images", "us_images", "fixed_images", "moving_images"))

    if is_root(src):
        return [(split, src)]
    roots = []
    for name, canonical in SPLIT_FOLDERS.items():
        if (src / name).is_dir() and is_root(src / name):
            if any(s == canonical for s, _ in roots):
                raise InputError(f"two subfolders map to the {canonical!r} split", src / name,
                                 "keep one folder per split (train, val, test)")
            roots.append((canonical, src / name))
    if not roots:
        raise InputError(
            f"not a paired MR-TRUS layout: no mr_images/ (or fixed_images/, moving_images/) folder, here or in "
            f"train/, val/, test/ subfolders; {listing(src)}",
            src,
            "give the folder holding mr_images/, us_images/, mr_labels/ (and us_labels/) — µ-RegPro's "
            "nifti_data/ or one of its splits — or DeepReg's fixed_images/, fixed_labels/, moving_images/, "
            "moving_labels/ with deepreg_mr_side",
        )
    return roots


def _paired_folders(root: Path, deepreg_mr_side: str | None) -> tuple[str, dict[str, Path]]:
    has_mu = (root / "mr_images").is_dir() or (root / "us_images").is_dir()
    has_dr = (root / "fixed_images").is_dir() or (root / "moving_images").is_dir()
    if has_mu and has_dr:
        raise InputError("the folder mixes µ-RegPro (mr_images/) and DeepReg (fixed_images/) naming", root,
                         "keep one naming per folder")
    if has_mu:
        naming, names = "mu-regpro", PAIRED_FOLDERS["mu-regpro"]
    else:
        if deepreg_mr_side not in DEEPREG_SIDES:
            raise InputError(
                "the folder uses DeepReg's fixed_/moving_ naming, which does not say which side is the MR", root,
                "pass deepreg_mr_side='moving' (DeepReg's MR-US demo: moving = MR, fixed = US) or 'fixed' "
                "(µ-RegPro's baselines: fixed = MR, moving = US); on the command line --deepreg-mr-side",
            )
        us_side = "fixed" if deepreg_mr_side == "moving" else "moving"
        naming = f"deepreg (MR = {deepreg_mr_side})"
        names = {"mr_image": f"{deepreg_mr_side}_images", "us_image": f"{us_side}_images",
                 "mr_label": f"{deepreg_mr_side}_labels", "us_label": f"{us_side}_labels"}
    folders = {role: root / name for role, name in names.items()}
    for role in ("mr_image", "us_image", "mr_label"):
        if not folders[role].is_dir():
            raise InputError(
                f"the {names[role]}/ folder is missing ({naming} layout); {listing(root)}", folders[role],
                f"put the cases in {names['mr_image']}/, {names['us_image']}/, {names['mr_label']}/ "
                f"(and optionally {names['us_label']}/) with matching file names",
            )
    return naming, folders


def import_paired_folders(src: str | Path, dst: str | Path, *, split: str = "test",
                          deepreg_mr_side: str | None = None, geometry: str = "check", prefix: str = "",
                          reference: ReferenceChoice = "identity",
                          progress: ProgressCallback | None = None) -> Dataset:
    """Import a µ-RegPro / DeepReg paired layout into regkit's layout (see the module docstring).

    Parameters
    ----------
    src : path-like
        A folder holding ``mr_images/``, ``us_images/``, ``mr_labels/`` (``us_labels/`` optional), or per-split
        subfolders ``train/``, ``val/`` (or ``validation/``), ``test/`` holding them. DeepReg's
        ``fixed_images/``, ``fixed_labels/``, ``moving_images/``, ``moving_labels/`` are accepted with
        ``deepreg_mr_side``.
    dst : path-like
        Dataset folder to write (created; existing cases and manifest entries are kept).
    split : str
        The split of every case when ``src`` has no split subfolders.
    deepreg_mr_side : {"fixed", "moving"}, optional
        Which side of DeepReg's naming is the MR. DeepReg's MR-US demo uses ``"moving"``.
    geometry : {"check", "header", "voxel"}
        How the pre-aligned pair's grids are treated: ``"check"`` requires identical MR and TRUS grids (so the
        identity ground truth is the voxel-to-voxel alignment); ``"header"`` trusts the headers' physical space;
        ``"voxel"`` gives the TRUS image and label the MR grid (same array size needed).
    prefix : str
        Prepended to every case id (to merge sources whose case names collide).
    reference : {"identity", "labels"}
        The ground truth: the identity (the pairs are pre-aligned) or the reference derived from the labels.
    progress : callable, optional
        Called as ``progress(case_id, "imported" | "skipped")`` after each case.

    Returns
    -------
    regkit.dataset.Dataset
        ``load_dataset(dst)``.
    """
    src, dst = check_source(src, dst, split)
    if geometry not in GEOMETRY_MODES:
        raise InputError(f"unknown geometry mode {geometry!r}", fix=f"use one of {GEOMETRY_MODES}")
    check_reference_choice(reference)
    if deepreg_mr_side is not None and deepreg_mr_side not in DEEPREG_SIDES:
        raise InputError(f"deepreg_mr_side must be 'fixed' or 'moving', got {deepreg_mr_side!r}")

    entries = []  # (split, stem, naming, folders, files)
    for split_name, root in _paired_roots(src, split):
        naming, folders = _paired_folders(root, deepreg_mr_side)
        index = {role: index_folder(folder) for role, folder in folders.items()}
        if not index["mr_image"]:
            raise InputError(f"no images in {folders['mr_image'].name}/", folders["mr_image"],
                             "put the MR images there as <case>.nii.gz")
        stems = sorted(set(index["mr_image"]) | set(index["us_image"]) | set(index["mr_label"]))
        for stem in stems:
            entries.append((split_name, stem, naming, folders, {r: index[r].get(stem) for r in index}, index))
    counts: dict[str, int] = {}
    for _, stem, *_ in entries:
        counts[stem] = counts.get(stem, 0) + 1

    from regkit.dataset import check_case_id

    jobs = []
    for split_name, stem, naming, folders, files, index in entries:
        case_id = check_case_id(prefix + (f"{split_name}_{stem}" if counts[stem] > 1 else stem), src)
        key = str((folders["mr_image"] / stem).resolve())

        def build(split_name=split_name, stem=stem, naming=naming, folders=folders, files=files, index=index,
                  case_id=case_id, key=key):
            return _build_paired(case_id, split_name, stem, naming, folders, files, index, geometry, key, reference)

        jobs.append((case_id, split_name, key, build))
    return run_import(dst, "paired", src, jobs, progress)


def _build_paired(case_id, split, stem, naming, folders, files, index, geometry, key, reference):
    import SimpleITK as sitk

    from regkit.image import ImageGeometry, read_image

    required = ("mr_image", "us_image", "mr_label")
    for role in required:
        if files[role] is None:
            stems = [set(index[r]) for r in required]
            unmatched = sorted(set.union(*stems) - set.intersection(*stems))
            raise InputError(
                f"case {stem!r} has no {ROLE_NAMES[role]} (no {folders[role].name}/{stem}.*)",
                folders[role] / f"{stem}.nii.gz",
                f"every case needs files of the same name in {folders['mr_image'].name}/, "
                f"{folders['us_image'].name}/ and {folders['mr_label'].name}/; names not in all three: "
                f"{', '.join(unmatched[:10])}{' ...' if len(unmatched) > 10 else ''}",
            )
    mr = read_image(files["mr_image"], "MR image")
    us = read_image(files["us_image"], "TRUS image")
    mr_channels = read_label_channels(files["mr_label"], "MR prostate label")
    us_channels, us_note = None, None
    if files["us_label"] is not None:
        us_channels = read_label_channels(files["us_label"], "TRUS prostate label")
        if not (sitk.GetArrayViewFromImage(us_channels[0]) > 0).any():
            us_channels, us_note = None, "the TRUS label's channel 0 is empty; it was left out"
    diff = ImageGeometry.of(mr).matches(ImageGeometry.of(us))
    if geometry == "check" and diff and reference == "identity":
        raise InputError(
            f"the TRUS grid differs from the MR grid ({diff}), so the identity ground truth of a pre-aligned pair "
            "is ambiguous", files["us_image"],
            "pass geometry='voxel' (--geometry voxel) if the arrays are aligned voxel to voxel, "
            "geometry='header' if the headers' physical space is the alignment, or reference='labels' "
            "(--reference labels) to derive the reference from the labels",
        )
    if geometry == "voxel":
        if mr.GetSize() != us.GetSize():
            raise InputError(f"geometry='voxel' needs equal array sizes; the TRUS is {us.GetSize()}, the MR "
                             f"{mr.GetSize()}", files["us_image"], "use geometry='header'")
        us.CopyInformation(mr)
        for img in us_channels or []:
            if img.GetSize() != mr.GetSize():
                raise InputError("the TRUS label's size differs from the TRUS image", files["us_label"])
            img.CopyInformation(mr)
        for img in mr_channels:
            if img.GetSize() == mr.GetSize():
                img.CopyInformation(mr)
    source = {"key": key, "mr": str(files["mr_image"]), "trus": str(files["us_image"]),
              "mr_label": str(files["mr_label"])}
    if files["us_label"] is not None:
        source["trus_label"] = str(files["us_label"])
    metadata = {
        "importer": "paired",
        "layout": naming,
        "split": split,
        "source": source,
        "label_channel": 0,
        "geometry": geometry if not diff else f"{geometry} (grids differed: {diff})",
    }
    if us_note:
        metadata["note"] = us_note
    roles = {"fixed": files["mr_image"], "moving": files["us_image"], "fixed_label": files["mr_label"]}
    if us_channels is not None:
        roles["moving_label"] = files["us_label"]
    return labelled_case(case_id, mr, us, mr_channels, us_channels, roles, metadata, reference), {}
