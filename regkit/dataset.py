"""Datasets: a folder of case folders and a manifest that names the splits.

Layout
------
::

    my_dataset/
      dataset.json              manifest (below)
      <case_id>/
        mr.nii.gz               fixed image: T2 MR        (.nii.gz, .nii, .mha, .mhd, .nrrd)
        trus.nii.gz             moving image: 3-D TRUS
        mr_label.nii.gz         MR prostate label, on the MR grid
        ground_truth.txt        fixed → moving rigid transform: 4×4 text, or ground_truth.tfm / .h5
        trus_label.nii.gz       optional: TRUS prostate label, on the TRUS grid
        mr_surface.stl          optional: MR prostate surface mesh (.stl/.vtk/...); else marching cubes
        case.json               optional: metadata ("moving_modality" defaults to "US": the moving image is
                                the TRUS, so the classical methods use its fan as their moving mask)

``dataset.json``::

    {"regkit_dataset": 1,
     "name": "my data",
     "splits": {"train": ["case000", ...], "val": [...], "test": [...]},
     "cases": {"case007": {"fixed": "elsewhere/mr7.mha"}}     (optional per-case file overrides)
    }

Paths in ``cases`` are relative to the dataset folder. A case needs ``mr``, ``trus`` and ``mr_label``; the
ground truth is needed for anything that measures SRE.

A case id is the name of a folder directly inside the dataset folder: not empty, not hidden (``.x``), without
``/`` or ``\\``, so that no id (``../other/case002``, ``/data/case002``) and no path in ``cases`` can reach outside
the dataset. An id is listed once: a duplicate in a split, or a case in two splits (train and test, say), is an
error when the manifest is read or written.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from regkit.atomic import write_text
from regkit.case import Case, load_case
from regkit.errors import InputError, check_path
from regkit.image import IMAGE_SUFFIXES
from regkit.records import read_json

MANIFEST = "dataset.json"
SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1

# role -> file stem(s) in a case folder, and the suffixes each may have
CASE_FILES = {
    "fixed": (("mr",), IMAGE_SUFFIXES),
    "moving": (("trus",), IMAGE_SUFFIXES),
    "fixed_label": (("mr_label",), IMAGE_SUFFIXES),
    "moving_label": (("trus_label",), IMAGE_SUFFIXES),
    "ground_truth": (("ground_truth",), (".txt", ".tfm", ".h5", ".hdf5", ".mat")),
    "surface": (("mr_surface",), (".stl", ".vtk", ".vtp", ".obj", ".ply")),
}
REQUIRED = ("fixed", "moving", "fixed_label")
MANIFEST_FIELDS = {"regkit_dataset": int, "name": str, "splits": dict, "cases": (dict, None)}
CASE_FIELDS = {"case_id": str, "moving_modality": (str, None)}  # case.json: free-form, but these have a type


def find_case_file(folder: Path, role: str) -> Path | None:
    """The file playing ``role`` in a case folder, by the layout's names, or None."""
    stems, suffixes = CASE_FILES[role]
    for stem in stems:
        for suffix in suffixes:
            p = folder / f"{stem}{suffix}"
            if p.exists():
                return p
    return None


@dataclass
class Dataset:
    """A dataset folder: its splits, and cases loaded on demand (a few are kept in memory).

    Open one with :func:`load_dataset`.

    Attributes
    ----------
    root : Path
        The dataset folder.
    splits : dict of str to list of str
        Case ids per split (``"train"``, ``"val"``, ``"test"``).
    name : str
        The dataset's name, from its manifest.
    overrides : dict
        Per-case file overrides from the manifest: case id → {role: path relative to ``root``}.
    info : dict
        The rest of the manifest (generator, source, ...).
    cache_size : int
        How many loaded cases are kept in memory.
    """

    root: Path
    splits: dict[str, list[str]]
    name: str = ""
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    cache_size: int = 4
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def case_ids(self, split: str | None = None) -> list[str]:
        """Case ids of one split, or of all splits in manifest order."""
        if split is None:
            seen: list[str] = []
            for ids in self.splits.values():
                seen.extend(i for i in ids if i not in seen)
            return seen
        if split not in self.splits:
            raise InputError(
                f"the dataset has no split {split!r}; it has {sorted(self.splits)}",
                self.root / MANIFEST,
                f"use one of {sorted(self.splits)}",
            )
        return list(self.splits[split])

    def case_files(self, case_id: str) -> dict[str, Path]:
        """The files of a case, by role."""
        folder = self.root / case_id
        files: dict[str, Path] = {}
        for role in CASE_FILES:
            if role in self.overrides.get(case_id, {}):
                files[role] = self.root / self.overrides[case_id][role]
            else:
                p = find_case_file(folder, role)
                if p is not None:
                    files[role] = p
        missing = [r for r in REQUIRED if r not in files]
        if missing:
            names = {r: CASE_FILES[r][0][0] for r in missing}
            raise InputError(
                f"case {case_id!r} has no {', '.join(f'{r} image ({n}.*)' for r, n in names.items())}",
                folder,
                "put the files in the case folder under the layout's names (see regkit.dataset), or name them "
                "in dataset.json under 'cases'",
            )
        return files

    def load(self, case_id: str) -> Case:
        """Load one case (cached)."""
        if case_id in self._cache:
            self._cache.move_to_end(case_id)
            return self._cache[case_id]
        if case_id not in self.case_ids():
            raise InputError(f"no case {case_id!r} in the dataset", self.root / MANIFEST)
        files = self.case_files(case_id)
        meta_path = self.root / case_id / "case.json"
        meta = read_case_metadata(meta_path) if meta_path.exists() else {}
        meta.setdefault("moving_modality", "US")  # the layout's moving image is trus.*; case.json may say otherwise
        case = load_case(case_id, metadata=meta, **{k: v for k, v in files.items()})
        self._cache[case_id] = case
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return case

    __getitem__ = load

    def __len__(self) -> int:
        return len(self.case_ids())

    def __iter__(self):
        for cid in self.case_ids():
            yield self.load(cid)


def read_case_metadata(path: str | Path) -> dict:
    """A case folder's ``case.json``, checked: a JSON object (free-form, but see :data:`CASE_FIELDS`)."""
    return read_json(path, "case's metadata", CASE_FIELDS, fix="repair it, or remove it")


def read_manifest(path: str | Path, fix: str = "repair it (see regkit.dataset for the layout), or write it again"
                  ) -> dict:
    """The checked ``dataset.json`` at ``path``: a JSON object of format :data:`FORMAT_VERSION` (a manifest
    written by hand may leave ``regkit_dataset`` out), with a ``splits`` object of lists of case ids, a ``cases``
    object of ``{role: path}`` objects and a textual ``name``; ``fix`` is the advice for a damaged one."""
    path = Path(path)
    doc = read_json(path, "manifest", MANIFEST_FIELDS, required=("splits",), version_key="regkit_dataset",
                    version=FORMAT_VERSION, fix=fix)
    for split, ids in doc["splits"].items():
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InputError(f"split {split!r} must be a list of case ids", path, f'write "{split}": ["case000", ...]')
    return doc


def load_dataset(path: str | Path) -> Dataset:
    """Open a dataset folder (see the module docstring for the layout).

    Parameters
    ----------
    path : str or Path
        The dataset folder, holding ``dataset.json`` and a folder per case.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        The folder or its manifest is missing or malformed, or a listed case folder does not exist.
    """
    root = check_path("the dataset folder", path)
    if not root.is_dir():
        raise InputError("the dataset folder does not exist", root, "give a folder made by `regkit synth` or an "
                         "importer, or laid out as documented in regkit.dataset")
    manifest = root / MANIFEST
    if not manifest.exists():
        raise InputError(f"the dataset has no {MANIFEST} manifest", root,
                         f"write {MANIFEST} with the splits (see regkit.dataset), or import with `regkit import`")
    doc = read_manifest(manifest)
    splits = {split: list(ids) for split, ids in doc["splits"].items()}
    check_splits(splits, manifest)
    overrides = doc.get("cases", {}) or {}
    check_overrides(root, overrides, manifest)
    for ids in splits.values():
        for cid in ids:
            if cid not in overrides and not (root / cid).is_dir():
                raise InputError(f"case folder {cid!r} listed in the manifest does not exist", root / cid)
    return Dataset(root=root, splits=splits, name=str(doc.get("name", root.name)), overrides=overrides,
                   info={k: v for k, v in doc.items() if k not in ("splits", "cases")})


# ---------------------------------------------------------------------------------------------- manifest checks
def check_case_id(case_id, where: str | Path | None = None) -> str:
    """``case_id`` if it names a folder directly inside a dataset folder; else an :class:`InputError`."""
    if not isinstance(case_id, str):
        raise InputError(f"a case id must be a string, got {case_id!r}", where)
    fix = "use a plain folder name for the case, e.g. case002 (a case folder sits directly in the dataset folder)"
    if not case_id.strip() or case_id != case_id.strip():
        raise InputError(f"case id {case_id!r} is empty or starts or ends with white space", where, fix)
    if "/" in case_id or "\\" in case_id or Path(case_id).is_absolute() or case_id in (".", ".."):
        raise InputError(f"case id {case_id!r} is a path: it would leave the dataset folder or nest in it", where,
                         fix)
    if case_id.startswith(".") or "\0" in case_id:
        raise InputError(f"case id {case_id!r} is a hidden or invalid folder name", where, fix)
    return case_id


def check_splits(splits: dict[str, list[str]], where: str | Path | None = None) -> None:
    """Every id valid (:func:`check_case_id`), listed once in its split, and in one split only."""
    if not isinstance(splits, dict) or not all(isinstance(ids, list | tuple) for ids in splits.values()):
        raise InputError(f"splits must map split names to lists of case ids, got {splits!r}"[:300], where,
                         'e.g. {"train": ["case000"], "test": ["case001"]}')
    first: dict[str, str] = {}
    for split, ids in splits.items():
        seen: set[str] = set()
        for cid in ids:
            check_case_id(cid, where)
            if cid in seen:
                raise InputError(f"case {cid!r} is listed twice in split {split!r}", where,
                                 "list each case once")
            seen.add(cid)
            if cid in first:
                raise InputError(f"case {cid!r} is in both split {first[cid]!r} and split {split!r}: a case in two "
                                 "splits leaks between training and evaluation", where,
                                 "keep each case in one split")
            first[cid] = split


def check_overrides(root: Path, overrides, where: str | Path | None = None) -> None:
    """The ``cases`` entries of a manifest: known roles, and paths that stay inside the dataset folder."""
    if not isinstance(overrides, dict):
        raise InputError("'cases' must map case ids to {role: path} objects", where)
    inside = root.resolve()
    for cid, files in overrides.items():
        check_case_id(cid, where)
        if not isinstance(files, dict):
            raise InputError(f"'cases'[{cid!r}] must map roles to paths, got {files!r}", where)
        for role, rel in files.items():
            if role not in CASE_FILES:
                raise InputError(f"'cases'[{cid!r}] names an unknown role {role!r}", where,
                                 f"use one of {', '.join(CASE_FILES)}")
            if not isinstance(rel, str) or Path(rel).is_absolute() or not (root / rel).resolve().is_relative_to(inside):
                raise InputError(f"'cases'[{cid!r}][{role!r}] = {rel!r} leaves the dataset folder", where,
                                 "give a path relative to the dataset folder, inside it (copy or link the file in)")


def write_manifest(root: str | Path, splits: dict[str, list[str]], name: str = "", **info) -> Path:
    """Write ``dataset.json`` atomically."""
    root = Path(root)
    check_splits(splits, root / MANIFEST)
    root.mkdir(parents=True, exist_ok=True)
    doc = {"regkit_dataset": FORMAT_VERSION, "name": name or root.name, "splits": splits, **info}
    return write_text(root / MANIFEST, json.dumps(doc, indent=2) + "\n")


def write_case(case: Case, folder: str | Path) -> Path:
    """Write a case in the dataset layout (NIfTI images, 4×4 ground truth text, case.json metadata)."""
    from regkit.image import write_image
    from regkit.transform_io import write_matrix_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_image(case.fixed, folder / "mr.nii.gz")
    write_image(case.moving, folder / "trus.nii.gz")
    if case.fixed_label is not None:
        write_image(case.fixed_label, folder / "mr_label.nii.gz")
    if case.moving_label is not None:
        write_image(case.moving_label, folder / "trus_label.nii.gz")
    if case.ground_truth is not None:
        write_matrix_text(case.ground_truth, folder / "ground_truth.txt")
    write_text(folder / "case.json", json.dumps({"case_id": case.case_id, **case.metadata}, indent=2) + "\n")
    return folder
