"""A small data set in the TCIA Prostate-MRI-US-Biopsy layout, made from regkit cases (MR, simulated TRUS and the
true rigid map between them), with a known random rigid offset between the MR and TRUS physical spaces.

What is written, per patient ``Prostate-MRI-US-Biopsy-NNNN`` (see :mod:`regkit.importers.tcia` for the sources):

* the T2 MR as one DICOM file per slice (MR Image Storage; ImagePositionPatient, ImageOrientationPatient,
  PixelSpacing, SliceThickness, SpacingBetweenSlices, FrameOfReferenceUID, ...), possibly oblique;
* the TRUS as one multi-frame DICOM file (Ultrasound Multi-frame Image Storage) with PixelSpacing and
  SliceThickness and no patient position or orientation, as the collection ships it. Its physical frame is the
  one the TRUS surfaces are in: ``trus_frame="centred"`` (the volume centred on the origin, axes permuted: see
  :func:`centred_frame`, written here from the published conversion script's recipe, not from regkit's code) or
  ``"dicom"`` (the frame SimpleITK reads: origin 0, identity direction);
* binary STL surfaces in MATLAB ``stlwrite`` format (80-byte header ``Created by stlwrite.m <date>``, float32,
  outward unit normals, attribute 0): the prostate on the MR series and on the TRUS series, and targets (``Target1``
  on the MR, and on the TRUS too for every other patient), named
  ``Prostate-MRI-US-Biopsy-NNNN-{ProstateSurface|TargetK}-seriesUID-<SeriesInstanceUID>.STL``.

Folders as downloaded: ``layout="nbia"`` writes the NBIA Data Retriever's descriptive tree
``manifest-<digits>/Prostate-MRI-US-Biopsy/<patient>/<MM-DD-YYYY>-NA-<study>-<5 digits>/<n>.000000-<series>-<5
digits>/1-NN.dcm`` and the STL archive's ``STLs/STLs/``; ``layout="idc"`` writes IDC's
``<collection>/<patient>/<StudyInstanceUID>/<Modality>_<SeriesInstanceUID>/<uuid>.dcm`` and puts the STLs in one
flat folder.

The TRUS surface is the MR surface mapped by the case's true rigid map, so the two surfaces determine the offset
exactly (the simulated TRUS image itself may carry probe deformation around that rigid truth).
"""

from __future__ import annotations

import locale
import struct
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.case import Case
from regkit.image import ImageGeometry
from regkit.importers.reference import random_offset
from regkit.transform import RigidTransform

COLLECTION = "Prostate-MRI-US-Biopsy"
UID_ROOT = "1.3.6.1.4.1.14519.5.2.1."  # the TCIA de-identification root seen in the collection's UIDs
MR_STORAGE, US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.3.1"


@dataclass
class PatientTruth:
    """What the import must recover for one patient."""

    patient: str
    mr_series_uid: str
    us_series_uid: str
    offset: RigidTransform  # MR physical → TRUS physical (the TRUS surfaces' frame)
    mr_surface: np.ndarray  # vertices of the MR prostate STL, MR physical mm
    trus_targets: list[str] = field(default_factory=list)
    mr_folder: Path | None = None
    us_file: Path | None = None


@dataclass
class Collection:
    root: Path
    dicom_root: Path
    stl_dir: Path
    patients: list[PatientTruth]


def centred_frame(size_crf: tuple[int, int, int], spacing_crf: tuple[float, float, float]) -> RigidTransform:
    """Continuous index (column, row, frame) of the multi-frame TRUS → its physical point, in the frame of the
    published conversion script: it transposes the (frame, row, column) pixel array to (column, frame, row), flips
    the first two axes and centres the origin, so ``x = s_row·(row − R/2)``, ``y = s_frame·(F − 1 − frame − F/2)``,
    ``z = s_col·(C − 1 − column − C/2)``. Returned as the rigid part after scaling the index by the spacing."""
    (n_c, n_r, n_f), (s_c, s_r, s_f) = size_crf, spacing_crf
    rotation = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])
    origin = np.array([-s_r * n_r / 2, s_f * (n_f - 1 - n_f / 2), s_c * (n_c - 1 - n_c / 2)])
    return RigidTransform.from_rotation_translation(rotation, origin)


def write_stlwrite(path: Path, points: np.ndarray, faces: np.ndarray, when: str = "21-Aug-2020 17:31:10") -> Path:
    """A binary STL as MATLAB's ``stlwrite`` writes it: header, facet count, per facet a unit normal, three float32
    vertices and a zero attribute; triangles wound counter-clockwise seen from outside."""
    tri = np.asarray(points, float)[np.asarray(faces)]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if np.einsum("ij,ij->", normal, tri.mean(1) - tri.mean((0, 1))) < 0:  # wound inward: turn every triangle
        tri = tri[:, ::-1]
        normal = -normal
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    record = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rows = np.zeros(len(tri), record)
    rows["n"], rows["v"] = normal, tri
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"Created by stlwrite.m {when}".ljust(80).encode() + struct.pack("<I", len(tri))
                     + rows.tobytes())
    return path


def stl_name(patient: str, structure: str, series_uid: str) -> str:
    return f"{patient}-{structure}-seriesUID-{series_uid}.STL"


def _uid(rng: np.random.Generator) -> str:
    return UID_ROOT + str(int(rng.integers(10 ** 17, 10 ** 18))) + str(int(rng.integers(10 ** 17, 10 ** 18)))


def _ds(values) -> str:
    return "\\".join(f"{float(v):.10g}" for v in values)


@contextmanager
def kept_locale():
    """GDCM's writer leaves the process in the C locale when a slice carries decimal-string tags (seen with
    SimpleITK 2.5), and text files written afterwards with the default encoding then fail on "±": put it back."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def write_mr_series(folder: Path, mr: sitk.Image, tags: dict[str, str], file_name) -> list[Path]:
    """One DICOM file per slice, written with SimpleITK's GDCM writer; ``file_name(k)`` names slice ``k``."""
    folder.mkdir(parents=True, exist_ok=True)
    geo = ImageGeometry.of(mr)
    d, spacing = geo.direction, geo.spacing
    image = sitk.Cast(sitk.Clamp(mr, sitk.sitkFloat32, 0, 4000), sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    with kept_locale():
        for k in range(mr.GetSize()[2]):
            sl = image[:, :, k]
            slice_tags = {
                **tags,
                "0008|0018": f"{tags['0020|000e']}.{k + 1}",  # SOPInstanceUID
                "0020|0013": str(k + 1),  # InstanceNumber
                "0020|0032": _ds(geo.to_physical(np.array([0.0, 0.0, k]))),  # ImagePositionPatient
                "0020|0037": _ds(list(d[:, 0]) + list(d[:, 1])),  # ImageOrientationPatient
                "0028|0030": _ds([spacing[1], spacing[0]]),  # PixelSpacing: row spacing \ column spacing
                "0018|0050": _ds([spacing[2]]),  # SliceThickness
                "0018|0088": _ds([spacing[2]]),  # SpacingBetweenSlices
            }
            for key, value in slice_tags.items():
                sl.SetMetaData(key, value)
            paths.append(folder / file_name(k))
            writer.SetFileName(str(paths[-1]))
            writer.Execute(sl)
    return paths


def write_us_multiframe(path: Path, array_frc: np.ndarray, spacing_crf, tags: dict[str, str]) -> Path:
    """One multi-frame ultrasound DICOM file: frames × rows × columns, PixelSpacing and SliceThickness, no patient
    position or orientation (the Ultrasound Multi-frame Image IOD has no plane module)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_frc).astype(np.uint8))
    s_c, s_r, s_f = spacing_crf
    img.SetSpacing((s_c, s_r, 1.0))
    for key, value in {**tags, "0028|0030": _ds([s_r, s_c]), "0018|0050": _ds([s_f])}.items():
        img.SetMetaData(key, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    with kept_locale():
        writer.Execute(img)
    return path


def _placed(image: sitk.Image, m: RigidTransform) -> sitk.Image:
    """``image`` moved rigidly by ``m`` (its origin and direction), without resampling."""
    out = sitk.Image(image)
    geo = ImageGeometry.of(image)
    out.SetOrigin(tuple(m.apply(geo.origin)))
    out.SetDirection(tuple((m.rotation @ geo.direction).ravel()))
    return out


def _gland_mesh(label: sitk.Image, step_mm: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """A marching-cubes mesh of ``label`` sampled every ``step_mm`` or so: about as coarse as the collection's
    surfaces (the real sample's gland has 601 vertices)."""
    from skimage.measure import marching_cubes

    step = max(1, round(step_mm / min(label.GetSpacing())))
    a = np.pad(sitk.GetArrayViewFromImage(label) > 0, step).astype(np.float32)
    verts, faces, _, _ = marching_cubes(a, level=0.5, step_size=step)
    return ImageGeometry.of(label).to_physical(verts[:, ::-1] - step), faces


def _target_mesh(rng: np.random.Generator, mr_label: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """A small ellipsoidal lesion (a UV sphere, 8 × 16 facets around) centred in the gland, physical mm."""
    geo = ImageGeometry.of(mr_label)
    inside = np.argwhere(sitk.GetArrayViewFromImage(mr_label) > 0)[:, ::-1]
    centre = geo.to_physical(inside[rng.integers(len(inside))].astype(float))
    n_t, n_p = 8, 16
    theta = np.linspace(0, np.pi, n_t + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_p, endpoint=False)
    ring = np.stack([np.outer(np.sin(theta), np.cos(phi)), np.outer(np.sin(theta), np.sin(phi)),
                     np.outer(np.cos(theta), np.ones(n_p))], -1).reshape(-1, 3)
    unit = np.vstack([[0, 0, 1], ring, [0, 0, -1]])
    points = centre + unit * rng.uniform(3.0, 5.0, 3)
    idx = lambda t, k: 1 + t * n_p + k % n_p  # noqa: E731
    faces = [(0, idx(0, k + 1), idx(0, k)) for k in range(n_p)]
    for t in range(n_t - 2):
        for k in range(n_p):
            faces += [(idx(t, k), idx(t, k + 1), idx(t + 1, k)), (idx(t, k + 1), idx(t + 1, k + 1), idx(t + 1, k))]
    last = len(unit) - 1
    faces += [(last, idx(n_t - 2, k), idx(n_t - 2, k + 1)) for k in range(n_p)]
    return points, np.array(faces)


def _cropped(case: Case, margin_mm: float = 25.0) -> tuple[sitk.Image, sitk.Image]:
    """The MR and its label cropped to the gland's bounding box plus ``margin_mm`` (a small, fast series)."""
    inside = np.argwhere(sitk.GetArrayViewFromImage(case.fixed_label) > 0)[:, ::-1]
    pad = np.ceil(margin_mm / np.array(case.fixed.GetSpacing())).astype(int)
    lo = np.maximum(inside.min(0) - pad, 0)
    hi = np.minimum(inside.max(0) + pad, np.array(case.fixed.GetSize()) - 1)
    size = [int(v) for v in hi - lo + 1]
    return (sitk.RegionOfInterest(case.fixed, size, [int(v) for v in lo]),
            sitk.RegionOfInterest(case.fixed_label, size, [int(v) for v in lo]))


def write_tcia_collection(root: Path, cases: list[Case], seed: int = 0, patients_per_case: int = 2,
                          layout: str = "nbia", trus_frame: str = "centred", max_offset_mm: float = 20.0,
                          max_offset_deg: float = 15.0) -> Collection:
    """Write ``len(cases) × patients_per_case`` patients (each with its own random offset) under ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    if layout == "nbia":
        dicom_root = root / "manifest-1694710246744" / COLLECTION
        stl_dir = root / "STLs" / "STLs"
    elif layout == "idc":
        dicom_root = root / "prostate_mri_us_biopsy"
        stl_dir = root / "stl"
    else:
        raise ValueError(layout)
    patients = []
    number = 0
    for case in cases:
        for _ in range(patients_per_case):
            number += 1
            patient = f"{COLLECTION}-{number:04d}"
            patients.append(_write_patient(rng, case, patient, dicom_root, stl_dir, layout, trus_frame,
                                           max_offset_mm, max_offset_deg, trus_targets=number % 2 == 1))
    if layout == "nbia":
        (dicom_root.parent / "metadata.csv").write_text(
            "Series UID,Collection,Subject ID,Modality,File Location\n"
            + "".join(f"{p.mr_series_uid},{COLLECTION},{p.patient},MR,.\\{p.mr_folder.relative_to(root)}\n"
                      f"{p.us_series_uid},{COLLECTION},{p.patient},US,.\\{p.us_file.parent.relative_to(root)}\n"
                      for p in patients))
    return Collection(root, dicom_root, stl_dir, patients)


def _write_patient(rng, case: Case, patient: str, dicom_root: Path, stl_dir: Path, layout: str, trus_frame: str,
                   max_mm: float, max_deg: float, trus_targets: bool) -> PatientTruth:
    us = case.moving
    us_geo = ImageGeometry.of(us)
    array_frc = sitk.GetArrayFromImage(us)  # the simulated TRUS's (z, y, x) array becomes (frame, row, column)
    spacing_crf = tuple(us_geo.spacing)
    if trus_frame == "centred":
        frame = centred_frame(tuple(us.GetSize()), spacing_crf)
    elif trus_frame == "dicom":
        frame = RigidTransform.identity()
    else:
        raise ValueError(trus_frame)
    # W: simulated TRUS physical → the written TRUS's physical frame (same index, same spacing)
    w = frame @ RigidTransform.from_rotation_translation(us_geo.direction.T, -us_geo.direction.T @ us_geo.origin)
    truth_to_trus = w @ case.ground_truth  # MR (as simulated) → written TRUS frame
    gland = np.argwhere(sitk.GetArrayViewFromImage(case.fixed_label) > 0)[:, ::-1].mean(0)
    centre = truth_to_trus.apply(ImageGeometry.of(case.fixed_label).to_physical(gland))
    offset = random_offset(rng, max_mm, max_deg, centre)  # about the gland: the MR lands within max_mm of it
    place = offset.inverse() @ truth_to_trus  # where the MR goes so that MR → TRUS is `offset`
    mr, mr_label = (_placed(img, place) for img in _cropped(case))
    verts, faces = _gland_mesh(mr_label)

    study_mr, study_us = _uid(rng), _uid(rng)
    mr_uid, us_uid = _uid(rng), _uid(rng)
    common = {"0010|0010": patient, "0010|0020": patient, "0008|0020": "20090628", "0008|0070": "SIEMENS"}
    mr_tags = {**common, "0008|0060": "MR", "0008|0016": MR_STORAGE, "0020|000d": study_mr, "0020|000e": mr_uid,
               "0020|0052": _uid(rng), "0020|0011": "11", "0008|103e": "t2_spc_rst_axial obl_Prostate",
               "0008|1030": "MRI PROSTATE W WO CONTRAST", "0008|0008": "ORIGINAL\\PRIMARY\\M\\ND"}
    us_tags = {**common, "0008|0060": "US", "0008|0016": US_MULTIFRAME_STORAGE, "0020|000d": study_us,
               "0020|000e": us_uid, "0020|0011": "1", "0008|0020": "20090817", "0008|0070": "Eigen",
               "0008|103e": "3D Rendering", "0008|1030": "US BIOPSY PROSTATE"}
    if layout == "nbia":
        suffix = lambda: f"{int(rng.integers(10000, 99999))}"  # noqa: E731 - NBIA appends 5 digits of the UID
        mr_dir = dicom_root / patient / f"06-28-2009-NA-MRI PROSTATE W WO CONTRAST-{suffix()}" \
            / f"11.000000-t2spcrstaxial oblProstate-{suffix()}"
        us_file = dicom_root / patient / f"08-17-2009-NA-US BIOPSY PROSTATE-{suffix()}" \
            / f"1.000000-3D Rendering-{suffix()}" / "1-1.dcm"
        mr_name = lambda k: f"1-{k + 1:02d}.dcm"  # noqa: E731
    else:
        mr_dir = dicom_root / patient / study_mr / f"MR_{mr_uid}"
        us_file = dicom_root / patient / study_us / f"US_{us_uid}" / f"{uuid.UUID(int=int(rng.integers(2**62)))}.dcm"
        mr_name = lambda k: f"{uuid.UUID(int=int(rng.integers(2**62)))}.dcm"  # noqa: E731
    write_mr_series(mr_dir, mr, mr_tags, mr_name)
    write_us_multiframe(us_file, array_frc, spacing_crf, us_tags)

    write_stlwrite(stl_dir / stl_name(patient, "ProstateSurface", mr_uid), verts, faces)
    write_stlwrite(stl_dir / stl_name(patient, "ProstateSurface", us_uid), offset.apply(verts), faces)
    t_verts, t_faces = _target_mesh(rng, mr_label)
    write_stlwrite(stl_dir / stl_name(patient, "Target1", mr_uid), t_verts, t_faces)
    targets = []
    if trus_targets:
        write_stlwrite(stl_dir / stl_name(patient, "Target1", us_uid), offset.apply(t_verts), t_faces)
        targets.append("Target1")
    return PatientTruth(patient, mr_uid, us_uid, offset, verts, targets, mr_dir, us_file)
