"""Writing imported cases: the manifest, atomic per-case writing, resume, and folder listings.

Writing and resuming
--------------------
Each case is written into a hidden temporary folder and renamed into place when complete, and the manifest is
rewritten after every case, so an error on one case leaves every earlier case importable and loadable. Cases
already complete in ``dst`` (their ``case.json`` names the same importer and source) are skipped, so a re-run
resumes. Existing manifest entries in ``dst`` are kept: importing several sources (or splits) into one dataset
folder merges them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from regkit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from regkit.case import Case
    from regkit.dataset import Dataset

ProgressCallback = Callable[[str, str], None]  # (case_id, "imported" | "skipped")


class Manifest:
    """The manifest of ``dst``: existing entries kept, new cases added one by one, rewritten after each."""

    def __init__(self, root: Path, source: dict):
        from regkit.dataset import MANIFEST, SPLITS, read_manifest

        self.root = root
        self.splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        self.info: dict = {}
        self.name = root.name
        path = root / MANIFEST
        if path.exists():
            doc = read_manifest(path, fix="repair or remove it, or import into another folder")
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


def check_existing(folder: Path, importer: str, source_key: str) -> bool:
    """True when ``folder`` holds this case, complete, from the same importer and source; raise on a clash."""
    if not folder.exists():
        return False
    meta_path = folder / "case.json"
    if not meta_path.exists():
        raise InputError("a folder of this case's name exists but holds no case.json (not written by an importer)",
                         folder, "remove it, import with a --prefix, or import into another folder")
    from regkit.dataset import read_case_metadata

    meta = read_case_metadata(meta_path)
    source = meta.get("source")
    key = source.get("key") if isinstance(source, dict) else None
    if meta.get("importer") == importer and key == source_key:
        return True
    raise InputError(f"the case folder already holds a case from another source ({key})",
                     folder, "import into another folder, or use a prefix for the case ids")


def write_case_atomically(case: Case, dst: Path, extra_files: dict[str, Path]) -> Path:
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


def run_import(dst: Path, importer: str, source: Path, jobs: list[tuple[str, str, str, Callable[[], tuple]]],
                progress: ProgressCallback | None) -> Dataset:
    """Import ``jobs`` = (case_id, split, source_key, build) one by one; ``build()`` returns (case, extra_files)."""
    from regkit.dataset import load_dataset

    dst.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(dst, {"importer": importer, "source": str(source)})
    manifest.write()
    try:
        for case_id, split, key, build in jobs:
            if check_existing(dst / case_id, importer, key):
                manifest.add(case_id, split)
                if progress:
                    progress(case_id, "skipped")
                continue
            case, extra = build()
            write_case_atomically(case, dst, extra)
            manifest.add(case_id, split)
            if progress:
                progress(case_id, "imported")
    finally:
        rows = write_import_report(dst, manifest.splits)
        flagged = {r["case"]: r["flags"].split("; ") for r in rows if r["flags"]}
        if flagged or "reference_flags" in manifest.info:
            manifest.info["reference_flags"] = flagged
            manifest.write()
    return load_dataset(dst)


REPORT = "import_report.csv"
REPORT_COLUMNS = ("case", "split", "importer", "reference", "landmarks", "landmark_residual_mean_mm",
                  "landmark_residual_max_mm", "surface_distance_mean_mm", "surface_distance_p95_mm", "dice",
                  "identity_sre_mm", "flags", "reasons")


def reference_row(case_id: str, split: str, meta: dict) -> dict:
    """One row of the import report from a case's ``case.json``: the reference's quality and flags."""
    ref = meta.get("reference") or {}
    flags = ref.get("flags") or {}
    row = {"case": case_id, "split": split, "importer": meta.get("importer", ""),
           "reference": ref.get("method", "given" if meta.get("importer") == "uronav" else "")}
    for col in REPORT_COLUMNS[4:11]:
        row[col] = ref.get(col, "")
    row["flags"] = "; ".join(flags)
    row["reasons"] = " | ".join(f"{k}: {v}" for k, v in flags.items())
    return row


def reference_rows(root: Path, splits: dict[str, list[str]]) -> list[dict]:
    """The report rows (:func:`reference_row`) of the cases of ``splits`` in the dataset folder ``root``."""
    return [reference_row(case_id, split, metadata_or_nothing(root / case_id / "case.json"))
            for split, ids in splits.items() for case_id in ids]


def write_import_report(dst: Path, splits: dict[str, list[str]]) -> list[dict]:
    """Rewrite ``dst/import_report.csv``: one row per case of the manifest, from its ``case.json``."""
    import csv
    import io

    from regkit.atomic import write_text

    rows = reference_rows(dst, splits)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(dst / REPORT, buf.getvalue())
    return rows


def metadata_or_nothing(path: Path) -> dict:
    """A case's ``case.json`` for a report: {} when it is missing or damaged (loading the case names the damage)."""
    from regkit.dataset import read_case_metadata

    try:
        return read_case_metadata(path) if path.exists() else {}
    except InputError:
        return {}


def listing(folder: Path, limit: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not p.name.startswith("."))
    if not names:
        return "it is empty"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return "it holds " + ", ".join(names[:limit]) + more


def check_source(src, dst, split: str) -> tuple[Path, Path]:
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise InputError("the source folder does not exist", src)
    if not split or "/" in split:
        raise InputError(f"{split!r} is not a split name", fix="use train, val or test")
    return src, dst


def index_folder(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        stem = image_stem(p)
        if stem is None:
            continue
        if stem in out:
            raise InputError(f"two images are named {stem!r} ({out[stem].name} and {p.name})", folder,
                             "keep one file per case")
        out[stem] = p
    return out


def image_stem(path: Path) -> str | None:
    from regkit.image import IMAGE_SUFFIXES, image_suffix

    suffix = image_suffix(path)
    if path.name.startswith(".") or suffix not in IMAGE_SUFFIXES or not path.is_file():
        return None
    return path.name[: -len(suffix)]


def reference_summary(dataset: Dataset, cases: Iterable[str] | None = None) -> dict | None:
    """The quality of a dataset's label-derived references (the "ground truth" regkit derived, see
    :mod:`regkit.importers.reference`), for a comparison's ``run.json``, ``metrics.json`` and Table 1's note.

    Parameters
    ----------
    dataset : Dataset
        The dataset (:func:`regkit.dataset.load_dataset`).
    cases : iterable of str, optional
        The cases to summarise (a comparison's); every case of the manifest by default.

    Returns
    -------
    dict or None
        How many cases per reference method, the median and worst landmark residual, gland surface distance
        (95th percentile) and Dice of the mapped labels, and the flagged cases with their flags. None when no
        case has a label-derived reference (synthetic data, UroNav, paired folders with a given transform).
    """
    import numpy as np

    chosen = None if cases is None else set(cases)
    splits = {split: [c for c in ids if chosen is None or c in chosen] for split, ids in dataset.splits.items()}
    rows = [r for r in reference_rows(dataset.root, splits) if r["reference"] not in ("", "given")]  # derived ones
    if not rows:
        return None

    def stats(col: str, worst) -> dict | None:
        v = np.array([r[col] for r in rows if isinstance(r[col], (int, float))], float)
        return {"median": round(float(np.median(v)), 3), "worst": round(float(worst(v)), 3)} if v.size else None

    methods: dict[str, int] = {}
    for r in rows:
        methods[r["reference"]] = methods.get(r["reference"], 0) + 1
    return {"cases": len(rows), "methods": methods,
            "landmark_residual_mean_mm": stats("landmark_residual_mean_mm", np.max),
            "surface_distance_p95_mm": stats("surface_distance_p95_mm", np.max),
            "dice": stats("dice", np.min),
            "flagged": {r["case"]: r["flags"].split("; ") for r in rows if r["flags"]}}


def reference_note(summary: dict | None) -> str:
    """One sentence on how far a comparison's ground truth can be trusted (from :func:`reference_summary`);
    empty when the references were given, not derived."""
    if not summary:
        return ""

    def figure(key: str, what: str, unit: str) -> str:
        v = summary.get(key)
        return f"{what} median {v['median']:g}{unit} (worst {v['worst']:g}{unit})" if v else ""

    how = ", ".join(f"{m} {n}" for m, n in summary["methods"].items())
    figures = "; ".join(f for f in (figure("landmark_residual_mean_mm", "landmark residual", " mm"),
                                    figure("surface_distance_p95_mm", "gland surface distance (p95)", " mm"),
                                    figure("dice", "Dice of the mapped labels", "")) if f)
    flagged = summary.get("flagged") or {}
    flags = ("; flagged: " + ", ".join(f"{c} ({', '.join(f)})" for c, f in flagged.items())) if flagged \
        else "; none flagged"
    return (f"Ground truth derived from the labels for {summary['cases']} case(s) ({how}): {figures}{flags}. "
            "SRE and landmark TRE are measured against it, so they are no more certain than it is.")
