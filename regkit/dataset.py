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
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from regkit.atomic import write_text
from regkit.case import Case, load_case
from regkit.errors import InputError
from regkit.image import IMAGE_SUFFIXES

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
    """A dataset folder: its splits, and cases loaded on demand (a few are kept in memory)."""

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
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
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


def load_dataset(path: str | Path) -> Dataset:
    """Open a dataset folder (see the module docstring for the layout).

    Raises
    ------
    InputError
        The folder or its manifest is missing or malformed, or a listed case folder does not exist.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError("the dataset folder does not exist", root, "give a folder made by `regkit synth` or an "
                         "importer, or laid out as documented in regkit.dataset")
    manifest = root / MANIFEST
    if not manifest.exists():
        raise InputError(f"the dataset has no {MANIFEST} manifest", root,
                         f"write {MANIFEST} with the splits (see regkit.dataset), or import with `regkit import`")
    try:
        doc = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"the manifest is not valid JSON ({exc})", manifest) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("splits"), dict):
        raise InputError("the manifest has no 'splits' object", manifest,
                         'add "splits": {"train": [...], "val": [...], "test": [...]}')
    splits = {}
    for split, ids in doc["splits"].items():
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InputError(f"split {split!r} must be a list of case ids", manifest)
        splits[split] = list(ids)
    overrides = doc.get("cases", {}) or {}
    for ids in splits.values():
        for cid in ids:
            if cid not in overrides and not (root / cid).is_dir():
                raise InputError(f"case folder {cid!r} listed in the manifest does not exist", root / cid)
    return Dataset(root=root, splits=splits, name=str(doc.get("name", root.name)), overrides=overrides,
                   info={k: v for k, v in doc.items() if k not in ("splits", "cases")})


def write_manifest(root: str | Path, splits: dict[str, list[str]], name: str = "", **info) -> Path:
    """Write ``dataset.json`` atomically."""
    root = Path(root)
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
