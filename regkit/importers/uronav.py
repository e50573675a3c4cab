"""The UroNav export importer (Attention-Reg / FVR-Net authors' lab).

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
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regkit.errors import InputError
from regkit.importers.writing import ProgressCallback, check_source, listing, run_import

if TYPE_CHECKING:  # pragma: no cover
    from regkit.dataset import Dataset

URONAV_MR = "MRVol.mhd"
URONAV_US = "USVol.mhd"
URONAV_STL = "segmentationrtss.uronav.stl"
URONAV_REFINED = "coreg_refined.txt"
URONAV_COREG = "coreg.txt"
URONAV_FILES = (URONAV_MR, URONAV_US, URONAV_STL, URONAV_REFINED, URONAV_COREG)
REGISTRATION_CHOICES = ("auto", "refined", "coreg")

URONAV_REFINED_CONVENTION = (
    "coreg_refined.txt holds us2mr (TRUS physical -> MR physical - MR origin O); T_gt = inv(us2mr) . T(-O)"
)
URONAV_COREG_CONVENTION = (
    "coreg.txt (UroNav) holds mr2us as rotation M[1:,1:], translation M[1:,0]; the lab's us2mr = T(-O) . inv(mr2us), "
    "so T_gt = mr2us"
)


def _translation(t: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = t
    return m


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


def _uronav_case_folders(src: Path) -> list[Path]:
    def is_case(p: Path) -> bool:
        return any((p / name).exists() for name in URONAV_FILES)

    if is_case(src):
        return [src]
    folders = [p for p in sorted(src.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_case(p)]
    if not folders:
        raise InputError(
            f"no UroNav case folders: no subfolder holds {URONAV_MR}, {URONAV_US}, {URONAV_STL} or a coreg file; "
            f"{listing(src)}",
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
    src, dst = check_source(src, dst, split)
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
    return run_import(dst, "uronav", src, jobs, progress)


def _build_uronav(folder: Path, case_id: str, split: str, registration: str, ignore_direction: bool,
                  mr_file: str, key: str):
    import SimpleITK as sitk

    from regkit.case import Case
    from regkit.image import ImageGeometry, read_image
    from regkit.surface import label_from_mesh, read_mesh

    mr_path, us_path, stl_path = folder / mr_file, folder / URONAV_US, folder / URONAV_STL
    for path, what in ((mr_path, "MR image"), (us_path, "TRUS image"), (stl_path, "MR prostate surface (STL)")):
        if not path.exists():
            raise InputError(f"case {folder.name!r} has no {what} ({path.name}); {listing(folder)}", path,
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
