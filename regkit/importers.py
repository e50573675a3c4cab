"""Importers: public MR–TRUS layouts converted into regkit's dataset layout (see :mod:`regkit.dataset`).

Two layouts are supported, each with its conventions stated here and tested in ``tests/test_importers.py``.

Paired folders (µ-RegPro, DeepReg) — :func:`import_paired_folders`
------------------------------------------------------------------
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
* There is no ground truth in this layout: each pair is pre-aligned (the µ-RegPro baselines register the arrays
  voxel to voxel), so the ground truth written is the **identity**. By default (``geometry="check"``) the MR and
  TRUS grids must therefore be identical (size, spacing, origin, direction), so that the identity in physical
  space is the voxel-to-voxel alignment. ``geometry="header"`` trusts the headers' physical space instead;
  ``geometry="voxel"`` gives the TRUS image and label the MR grid (same array size needed).
* The MR surface (for SRE) comes from the MR gland label by marching cubes when the case is loaded.

UroNav export (Attention-Reg / FVR-Net authors' lab) — :func:`import_uronav`
----------------------------------------------------------------------------
::

    src/Case0001/   (any folder name)
      MRVol.mhd                       MR, fixed (read with SimpleITK)
      USVol.mhd                       TRUS, moving
      segmentationrtss.uronav.stl     MR prostate surface, MR physical mm
      coreg_refined.txt               preferred ground truth, else
      coreg.txt                       UroNav's registration

* SimpleITK reads a MetaImage's ``Offset`` as the origin and ``TransformMatrix`` as the direction. The lab code
  read only ``Offset`` and ``ElementSpacing`` (it ignored the direction); ``ignore_direction=True`` does the same.
  A non-identity direction is flagged in the case's metadata and with a warning.
* ``coreg_refined.txt`` is a 4×4 matrix ``us2mr`` mapping TRUS physical points to MR points *relative to the MR
  origin* ``O`` (MR physical − ``Offset``). regkit's ground truth (MR physical → TRUS physical) is therefore
  ``T_gt(x) = us2mr⁻¹ (x − O)``, i.e. ``T_gt = us2mr⁻¹ · T(−O)``.
* ``coreg.txt`` (UroNav) holds an MR → US matrix ``mr2us`` in a 4×4 block: rotation ``M[1:, 1:]``, translation
  ``M[1:, 0]`` (row 0 is ignored, as the lab code does). The lab converts it with ``us2mr = T(−O) · mr2us⁻¹``.
  Substituting in the line above, ``T_gt = (T(−O) · mr2us⁻¹)⁻¹ · T(−O) = mr2us · T(O) · T(−O) = mr2us``:
  ``mr2us`` itself maps MR physical to TRUS physical points.
* The MR label is not shipped: the STL is voxelised onto the MR grid (:func:`regkit.surface.label_from_mesh`) to make
  ``mr_label``, and the STL is kept as the case's ``mr_surface.stl`` so SRE uses the original surface points.

Writing and resuming
--------------------
Each case is written into a hidden temporary folder and renamed into place when complete, and the manifest is
rewritten after every case, so an error on one case leaves every earlier case importable and loadable. Cases
already complete in ``dst`` (their ``case.json`` names the same importer and source) are skipped, so a re-run
resumes. Existing manifest entries in ``dst`` are kept: importing several sources (or splits) into one dataset
folder merges them.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regkit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from regkit.case import Case
    from regkit.dataset import Dataset

ProgressCallback = Callable[[str, str], None]  # (case_id, "imported" | "skipped")

PAIRED_FOLDERS = {  # naming -> role -> folder name (DeepReg's are resolved with the MR side)
    "mu-regpro": {"mr_image": "mr_images", "us_image": "us_images", "mr_label": "mr_labels", "us_label": "us_labels"},
}
DEEPREG_SIDES = ("fixed", "moving")
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
GEOMETRY_MODES = ("check", "header", "voxel")
ROLE_NAMES = {"mr_image": "MR image", "us_image": "TRUS image", "mr_label": "MR label", "us_label": "TRUS label"}

URONAV_MR = "MRVol.mhd"
URONAV_US = "USVol.mhd"
URONAV_STL = "segmentationrtss.uronav.stl"
URONAV_REFINED = "coreg_refined.txt"
URONAV_COREG = "coreg.txt"
URONAV_FILES = (URONAV_MR, URONAV_US, URONAV_STL, URONAV_REFINED, URONAV_COREG)
REGISTRATION_CHOICES = ("auto", "refined", "coreg")

PAIRED_CONVENTION = (
    "paired pre-aligned layout: no ground truth is shipped; the pair is pre-aligned, so the ground truth is the "
    "identity (MR physical = TRUS physical)"
)
URONAV_REFINED_CONVENTION = (
    "coreg_refined.txt holds us2mr (TRUS physical -> MR physical - MR origin O); T_gt = inv(us2mr) . T(-O)"
)
URONAV_COREG_CONVENTION = (
    "coreg.txt (UroNav) holds mr2us as rotation M[1:,1:], translation M[1:,0]; the lab's us2mr = T(-O) . inv(mr2us), "
    "so T_gt = mr2us"
)


# =========================================================================== small readers
def _image_stem(path: Path) -> str | None:
    from regkit.image import IMAGE_SUFFIXES, image_suffix

    suffix = image_suffix(path)
    if path.name.startswith(".") or suffix not in IMAGE_SUFFIXES or not path.is_file():
        return None
    return path.name[: -len(suffix)]


def read_label_channel(path: str | Path, what: str = "label", channel: int = 0) -> tuple[sitk.Image, int]:
    """Channel ``channel`` of a label as a binary (0/1, uint8) 3-D image, and the number of channels.

    Accepts 3-D labels (one channel), 4-D ``(x, y, z, k)`` labels and multi-component (vector) labels. Values
    above 0.5 are inside.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputError(f"the {what} file does not exist", path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputError(f"cannot read the {what}: {last}", path, "give a readable NIfTI label") from None
    channels = 1
    if img.GetDimension() == 4:
        size = list(img.GetSize())
        channels = size[3]
        if not 0 <= channel < channels:
            raise InputError(f"the {what} has {channels} channels; channel {channel} is needed", path)
        size[3] = 0
        img = sitk.Extract(img, size, [0, 0, 0, channel],
                           sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
    elif img.GetDimension() != 3:
        raise InputError(f"the {what} is {img.GetDimension()}-D; a 3-D or 4-D (x, y, z, channel) label is needed",
                         path)
    if img.GetNumberOfComponentsPerPixel() > 1:
        channels = img.GetNumberOfComponentsPerPixel()
        if not 0 <= channel < channels:
            raise InputError(f"the {what} has {channels} components; component {channel} is needed", path)
        img = sitk.VectorIndexSelectionCast(img, channel)
    binary = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(img) > 0.5).astype(np.uint8))
    binary.CopyInformation(img)
    return binary, channels


def _translation(t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = t
    return m


def _channel_landmarks(mr_label: Path, us_label: Path, channels: int, voxel_grid: sitk.Image | None) -> dict | None:
    """Paired landmarks from the label channels after the gland (µ-RegPro's landmarks): the physical centroid of
    each channel ``k ≥ 1`` that is non-empty in both labels. ``voxel_grid``: give the labels this grid first."""
    import SimpleITK as sitk

    fixed, moving, used = [], [], []
    for k in range(1, channels):
        points = []
        for path, what in ((mr_label, "MR label"), (us_label, "TRUS label")):
            try:
                img, _ = read_label_channel(path, what, k)
            except InputError:  # the TRUS label has fewer channels
                break
            if voxel_grid is not None and img.GetSize() == voxel_grid.GetSize():
                img.CopyInformation(voxel_grid)
            stats = sitk.LabelShapeStatisticsImageFilter()
            stats.Execute(img)
            if not stats.HasLabel(1):
                break
            points.append(list(stats.GetCentroid(1)))
        if len(points) == 2:
            fixed.append(points[0])
            moving.append(points[1])
            used.append(k)
    if not used:
        return None
    return {"fixed": fixed, "moving": moving, "channels": used,
            "note": "centroids (LPS mm) of the label channels after the gland, present in both labels"}


# =========================================================================== UroNav conventions
def ground_truth_from_us2mr(us2mr: np.ndarray, mr_origin: np.ndarray, source: str | Path | None = None):
    """regkit's ground truth from a ``coreg_refined.txt`` matrix: ``T_gt = us2mr⁻¹ · T(−O)``.

    ``us2mr`` maps TRUS physical points to MR points relative to the MR origin ``O`` (MR physical − ``O``).
    """
    from regkit.transform import RigidTransform

    us2mr = RigidTransform.from_matrix(np.asarray(us2mr, float), orthonormalize=True, tolerance=1e-3,
                                       source=None if source is None else str(source))
    return us2mr.inverse() @ RigidTransform.from_matrix(_translation(-np.asarray(mr_origin, float)))


def ground_truth_from_uronav_coreg(block: np.ndarray, source: str | Path | None = None):
    """regkit's ground truth from a UroNav ``coreg.txt`` block: ``mr2us`` with rotation ``M[1:, 1:]`` and
    translation ``M[1:, 0]``, which maps MR physical points to TRUS physical points (``T_gt = mr2us``)."""
    from regkit.transform import RigidTransform

    block = np.asarray(block, float)
    mr2us = np.eye(4)
    mr2us[:3, :3] = block[1:, 1:]
    mr2us[:3, 3] = block[1:, 0]
    return RigidTransform.from_matrix(mr2us, orthonormalize=True, tolerance=1e-3,
                                      source=None if source is None else str(source))


def uronav_ground_truth(folder: str | Path, mr_origin: np.ndarray, registration: str = "auto"):
    """The ground truth of a UroNav case folder, the file it came from, and the convention used.

    ``registration``: ``"auto"`` (``coreg_refined.txt`` when present, else ``coreg.txt``), ``"refined"`` or
    ``"coreg"``.
    """
    from regkit.transform_io import read_matrix

    folder = Path(folder)
    if registration not in REGISTRATION_CHOICES:
        raise InputError(f"unknown registration file choice {registration!r}", fix=f"use one of {REGISTRATION_CHOICES}")
    refined, coreg = folder / URONAV_REFINED, folder / URONAV_COREG
    use_refined = registration == "refined" or (registration == "auto" and refined.exists())
    if use_refined:
        if not refined.exists():
            raise InputError(f"the case has no {URONAV_REFINED}", refined,
                             f"use registration='auto' or 'coreg' to read {URONAV_COREG}")
        return ground_truth_from_us2mr(read_matrix(refined), mr_origin, refined), refined, URONAV_REFINED_CONVENTION
    if not coreg.exists():
        raise InputError(f"the case has no ground-truth registration ({URONAV_REFINED} or {URONAV_COREG})", coreg,
                         f"put the registration in {URONAV_REFINED} (us2mr) or {URONAV_COREG} (UroNav)")
    return ground_truth_from_uronav_coreg(read_matrix(coreg), coreg), coreg, URONAV_COREG_CONVENTION


# =========================================================================== writing
class _Manifest:
    """The manifest of ``dst``: existing entries kept, new cases added one by one, rewritten after each."""

    def __init__(self, root: Path, source: dict):
        from regkit.dataset import MANIFEST, SPLITS

        self.root = root
        self.splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        self.info: dict = {}
        self.name = root.name
        path = root / MANIFEST
        if path.exists():
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(f"the existing manifest is not valid JSON ({exc})", path,
                                 "repair or remove it, or import into another folder") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("splits"), dict):
                raise InputError("the existing manifest has no 'splits' object", path,
                                 "repair or remove it, or import into another folder")
            overrides = doc.get("cases", {}) or {}
            for split, ids in doc["splits"].items():
                kept = [i for i in ids if isinstance(i, str) and (i in overrides or (root / i).is_dir())]
                self.splits[split] = kept
            self.name = str(doc.get("name", root.name))
            self.info = {k: v for k, v in doc.items() if k not in ("splits", "name", "regkit_dataset")}
        imports = list(self.info.get("imported_from", []))
        if source not in imports:
            imports.append(source)
        self.info["imported_from"] = imports

    def add(self, case_id: str, split: str) -> None:
        for ids in self.splits.values():
            if case_id in ids:
                ids.remove(case_id)
        self.splits.setdefault(split, []).append(case_id)
        self.write()

    def write(self) -> None:
        from regkit.dataset import write_manifest

        write_manifest(self.root, self.splits, name=self.name, **self.info)


def _check_existing(folder: Path, importer: str, source_key: str) -> bool:
    """True when ``folder`` holds this case, complete, from the same importer and source; raise on a clash."""
    if not folder.exists():
        return False
    meta_path = folder / "case.json"
    if not meta_path.exists():
        raise InputError("a folder of this case's name exists but holds no case.json (not written by an importer)",
                         folder, "remove it, import with a --prefix, or import into another folder")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        meta = {}
    if meta.get("importer") == importer and meta.get("source", {}).get("key") == source_key:
        return True
    raise InputError(f"the case folder already holds a case from another source ({meta.get('source', {}).get('key')})",
                     folder, "import into another folder, or use a prefix for the case ids")


def _write_case_atomically(case: Case, dst: Path, extra_files: dict[str, Path]) -> Path:
    """Write ``case`` into ``dst/<case_id>`` by way of a hidden temporary folder renamed into place."""
    from regkit.dataset import write_case
    from regkit.surface import read_mesh, read_mesh_points, write_mesh

    final = dst / case.case_id
    tmp = dst / f".{case.case_id}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for name, src in extra_files.items():
            shutil.copyfile(src, tmp / name)
            if name.startswith("mr_surface"):
                try:
                    read_mesh_points(tmp / name)
                except InputError:  # a file meshio cannot read: rewrite the same triangles in a form it can
                    pts, faces = read_mesh(src)
                    write_mesh(pts, faces, tmp / name)
                    case.metadata["surface_rewritten"] = "the source STL was rewritten because meshio could not read it"
        write_case(case, tmp)  # writes case.json last
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _run_import(dst: Path, importer: str, source: Path, jobs: list[tuple[str, str, str, Callable[[], tuple]]],
                progress: ProgressCallback | None) -> Dataset:
    """Import ``jobs`` = (case_id, split, source_key, build) one by one; ``build()`` returns (case, extra_files)."""
    from regkit.dataset import load_dataset

    dst.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(dst, {"importer": importer, "source": str(source)})
    manifest.write()
    for case_id, split, key, build in jobs:
        if _check_existing(dst / case_id, importer, key):
            manifest.add(case_id, split)
            if progress:
                progress(case_id, "skipped")
            continue
        case, extra = build()
        _write_case_atomically(case, dst, extra)
        manifest.add(case_id, split)
        if progress:
            progress(case_id, "imported")
    return load_dataset(dst)


def _listing(folder: Path, limit: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not p.name.startswith("."))
    if not names:
        return "it is empty"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return "it holds " + ", ".join(names[:limit]) + more


# =========================================================================== paired folders
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
            f"train/, val/, test/ subfolders; {_listing(src)}",
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
                f"the {names[role]}/ folder is missing ({naming} layout); {_listing(root)}", folders[role],
                f"put the cases in {names['mr_image']}/, {names['us_image']}/, {names['mr_label']}/ "
                f"(and optionally {names['us_label']}/) with matching file names",
            )
    return naming, folders


def _index_folder(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        stem = _image_stem(p)
        if stem is None:
            continue
        if stem in out:
            raise InputError(f"two images are named {stem!r} ({out[stem].name} and {p.name})", folder,
                             "keep one file per case")
        out[stem] = p
    return out


def _check_source(src, dst, split: str) -> tuple[Path, Path]:
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise InputError("the source folder does not exist", src)
    if not split or "/" in split:
        raise InputError(f"{split!r} is not a split name", fix="use train, val or test")
    return src, dst


def import_paired_folders(src: str | Path, dst: str | Path, *, split: str = "test",
                          deepreg_mr_side: str | None = None, geometry: str = "check", prefix: str = "",
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
    progress : callable, optional
        Called as ``progress(case_id, "imported" | "skipped")`` after each case.

    Returns
    -------
    regkit.dataset.Dataset
        ``load_dataset(dst)``. Ground truths are the identity (the pairs are pre-aligned).
    """
    src, dst = _check_source(src, dst, split)
    if geometry not in GEOMETRY_MODES:
        raise InputError(f"unknown geometry mode {geometry!r}", fix=f"use one of {GEOMETRY_MODES}")
    if deepreg_mr_side is not None and deepreg_mr_side not in DEEPREG_SIDES:
        raise InputError(f"deepreg_mr_side must be 'fixed' or 'moving', got {deepreg_mr_side!r}")

    entries = []  # (split, stem, naming, folders, files)
    for split_name, root in _paired_roots(src, split):
        naming, folders = _paired_folders(root, deepreg_mr_side)
        index = {role: _index_folder(folder) for role, folder in folders.items()}
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
            return _build_paired(case_id, split_name, stem, naming, folders, files, index, geometry, key)

        jobs.append((case_id, split_name, key, build))
    return _run_import(dst, "paired", src, jobs, progress)


def _build_paired(case_id, split, stem, naming, folders, files, index, geometry, key):
    import SimpleITK as sitk

    from regkit.case import Case
    from regkit.image import ImageGeometry, read_image
    from regkit.transform import RigidTransform

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
    mr_label, channels = read_label_channel(files["mr_label"], "MR prostate label", 0)
    us_label, us_note = None, None
    if files["us_label"] is not None:
        us_label, _ = read_label_channel(files["us_label"], "TRUS prostate label", 0)
        if not (sitk.GetArrayViewFromImage(us_label) > 0).any():
            us_label, us_note = None, "the TRUS label's channel 0 is empty; it was left out"
    diff = ImageGeometry.of(mr).matches(ImageGeometry.of(us))
    if geometry == "check" and diff:
        raise InputError(
            f"the TRUS grid differs from the MR grid ({diff}), so the identity ground truth of a pre-aligned pair "
            "is ambiguous", files["us_image"],
            "pass geometry='voxel' (--geometry voxel) if the arrays are aligned voxel to voxel, or "
            "geometry='header' if the headers' physical space is the alignment",
        )
    if geometry == "voxel":
        if mr.GetSize() != us.GetSize():
            raise InputError(f"geometry='voxel' needs equal array sizes; the TRUS is {us.GetSize()}, the MR "
                             f"{mr.GetSize()}", files["us_image"], "use geometry='header'")
        us.CopyInformation(mr)
        if us_label is not None:
            if us_label.GetSize() != mr.GetSize():
                raise InputError("the TRUS label's size differs from the TRUS image", files["us_label"])
            us_label.CopyInformation(mr)
        if mr_label.GetSize() == mr.GetSize():
            mr_label.CopyInformation(mr)
    source = {"key": key, "mr": str(files["mr_image"]), "trus": str(files["us_image"]),
              "mr_label": str(files["mr_label"])}
    if files["us_label"] is not None:
        source["trus_label"] = str(files["us_label"])
    metadata = {
        "importer": "paired",
        "layout": naming,
        "split": split,
        "source": source,
        "ground_truth_convention": PAIRED_CONVENTION,
        "label_channel": 0,
        "label_channels": channels,
        "geometry": geometry if not diff else f"{geometry} (grids differed: {diff})",
    }
    if us_note:
        metadata["note"] = us_note
    if files["us_label"] is not None and channels > 1:
        lm = _channel_landmarks(files["mr_label"], files["us_label"], channels, mr if geometry == "voxel" else None)
        if lm is not None:
            metadata["landmarks"] = lm
    files_by_role = {"fixed": files["mr_image"], "moving": files["us_image"], "fixed_label": files["mr_label"]}
    if files["us_label"] is not None:
        files_by_role["moving_label"] = files["us_label"]
    case = Case(case_id=case_id, fixed=mr, moving=us, fixed_label=mr_label, ground_truth=RigidTransform.identity(),
                moving_label=us_label, metadata=metadata, files=files_by_role)
    return case, {}


# =========================================================================== UroNav
def _uronav_case_folders(src: Path) -> list[Path]:
    def is_case(p: Path) -> bool:
        return any((p / name).exists() for name in URONAV_FILES)

    if is_case(src):
        return [src]
    folders = [p for p in sorted(src.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_case(p)]
    if not folders:
        raise InputError(
            f"no UroNav case folders: no subfolder holds {URONAV_MR}, {URONAV_US}, {URONAV_STL} or a coreg file; "
            f"{_listing(src)}",
            src,
            f"give the folder of case folders (Case0001/, ...) each holding {URONAV_MR}, {URONAV_US}, {URONAV_STL} "
            f"and {URONAV_REFINED} or {URONAV_COREG}",
        )
    return folders


def import_uronav(src: str | Path, dst: str | Path, *, split: str = "test", registration: str = "auto",
                  ignore_direction: bool = False, mr_file: str = URONAV_MR, prefix: str = "",
                  progress: ProgressCallback | None = None) -> Dataset:
    """Import a UroNav-style export (folders of ``MRVol.mhd``, ``USVol.mhd``, STL, coreg) into regkit's layout.

    See the module docstring for the conventions.

    Parameters
    ----------
    src : path-like
        A folder of case folders (any names), or one case folder.
    dst : path-like
        Dataset folder to write (created; existing cases and manifest entries are kept).
    split : str
        The split every case goes to.
    registration : {"auto", "refined", "coreg"}
        Ground-truth file: ``coreg_refined.txt`` when present (``"auto"``), or forced.
    ignore_direction : bool
        Set both images' direction to the identity, as the lab code read them (Offset and spacing only).
    mr_file : str
        Name of the MR volume in each case folder (the lab also used ``MRVol_adjusted.mhd``).
    prefix : str
        Prepended to every case id.
    progress : callable, optional
        Called as ``progress(case_id, "imported" | "skipped")`` after each case.
    """
    src, dst = _check_source(src, dst, split)
    if registration not in REGISTRATION_CHOICES:
        raise InputError(f"unknown registration file choice {registration!r}", fix=f"use one of {REGISTRATION_CHOICES}")
    from regkit.dataset import check_case_id

    jobs = []
    for folder in _uronav_case_folders(src):
        case_id = check_case_id(prefix + folder.name, folder)
        key = str(folder.resolve())

        def build(folder=folder, case_id=case_id, key=key):
            return _build_uronav(folder, case_id, split, registration, ignore_direction, mr_file, key)

        jobs.append((case_id, split, key, build))
    return _run_import(dst, "uronav", src, jobs, progress)


def _build_uronav(folder: Path, case_id: str, split: str, registration: str, ignore_direction: bool,
                  mr_file: str, key: str):
    import SimpleITK as sitk

    from regkit.case import Case
    from regkit.image import ImageGeometry, read_image
    from regkit.surface import label_from_mesh, read_mesh

    mr_path, us_path, stl_path = folder / mr_file, folder / URONAV_US, folder / URONAV_STL
    for path, what in ((mr_path, "MR image"), (us_path, "TRUS image"), (stl_path, "MR prostate surface (STL)")):
        if not path.exists():
            raise InputError(f"case {folder.name!r} has no {what} ({path.name}); {_listing(folder)}", path,
                             f"each case folder needs {mr_file}, {URONAV_US}, {URONAV_STL} and "
                             f"{URONAV_REFINED} or {URONAV_COREG}")
    mr = read_image(mr_path, f"MR image ({mr_path.name})")
    us = read_image(us_path, f"TRUS image ({us_path.name})")
    notes = []
    for img, name in ((mr, mr_path.name), (us, us_path.name)):
        if not np.allclose(np.array(img.GetDirection()), np.eye(3).ravel(), atol=1e-6):
            if ignore_direction:
                img.SetDirection(np.eye(3).ravel().tolist())
                notes.append(f"{name}: TransformMatrix ignored (set to identity), as the lab code did")
            else:
                notes.append(f"{name}: non-identity TransformMatrix kept as the direction (the lab code ignored it)")
                warnings.warn(f"{folder / name}: non-identity TransformMatrix; kept as the image direction, while the "
                              "lab code ignored it (pass ignore_direction=True to do the same)", stacklevel=3)
    gt, gt_file, convention = uronav_ground_truth(folder, np.array(mr.GetOrigin()), registration)
    points, faces = read_mesh(stl_path)

    geo = ImageGeometry.of(mr)
    idx = geo.to_index(points)
    inside_mr = float(np.mean(np.all((idx >= -0.5) & (idx <= np.array(geo.size) - 0.5), axis=1)))
    if inside_mr < 0.5:
        raise InputError(
            f"only {100 * inside_mr:.0f}% of the STL surface lies inside the MR volume ({mr_path.name}); the "
            "surface must be in MR physical coordinates", stl_path,
            "check that the STL belongs to this MR (if its points are relative to the MR origin, add the MR "
            "Offset to them)",
        )
    label = label_from_mesh(points, faces, mr)
    if int(np.count_nonzero(sitk.GetArrayViewFromImage(label))) < 8:
        raise InputError("the STL surface encloses fewer than 8 MR voxels (is it closed?)", stl_path,
                         "give a closed prostate surface mesh")
    moved = ImageGeometry.of(us).to_index(gt.apply(points))
    inside_us = float(np.mean(np.all((moved >= -0.5) & (moved <= np.array(us.GetSize()) - 0.5), axis=1)))
    if inside_us < 0.5:
        notes.append(f"only {100 * inside_us:.0f}% of the ground-truth-mapped surface lies inside the TRUS volume")
        warnings.warn(f"{gt_file}: only {100 * inside_us:.0f}% of the MR surface maps inside the TRUS volume under "
                      "the ground truth; check the registration file and its convention", stacklevel=3)

    source = {"key": key, "folder": str(folder), "mr": str(mr_path), "trus": str(us_path), "surface": str(stl_path),
              "registration": str(gt_file)}
    metadata = {
        "importer": "uronav",
        "layout": "uronav",
        "split": split,
        "source": source,
        "ground_truth_convention": convention,
        "mr_origin": [float(v) for v in mr.GetOrigin()],
        "direction": "ignored (identity), as the lab code" if ignore_direction else "from the MetaImage header",
        "mr_label": "voxelised from the STL surface (majority of three ray-parity tests)",
        "surface_inside_trus_fraction": round(inside_us, 4),
    }
    other = folder / (URONAV_COREG if gt_file.name == URONAV_REFINED else URONAV_REFINED)
    if other.exists():  # both registrations shipped: record how far apart they are on the surface
        try:
            alt, _, _ = uronav_ground_truth(folder, np.array(mr.GetOrigin()),
                                            "coreg" if other.name == URONAV_COREG else "refined")
            gap = np.linalg.norm(alt.apply(points) - gt.apply(points), axis=1).mean()  # the SRE of one vs the other
            metadata[f"sre_vs_{other.stem}_mm"] = round(float(gap), 4)
        except InputError as exc:
            metadata[f"sre_vs_{other.stem}_mm"] = f"unreadable: {exc}"
    if notes:
        metadata["notes"] = notes
    files = {"fixed": mr_path, "moving": us_path, "fixed_label": stl_path, "surface": stl_path,
             "ground_truth": gt_file}
    case = Case(case_id=case_id, fixed=mr, moving=us, fixed_label=label, ground_truth=gt, surface_points=points,
                metadata=metadata, files=files)
    return case, {"mr_surface.stl": stl_path}
