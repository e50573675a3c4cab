"""See an imported dataset before trusting it: per case, an overlay of the MR with the TRUS gland contour under the
identity and under the reference, and a table of the reference's residuals with the flagged cases.

Used by ``regkit inspect DATASET`` and ``regkit import ... --check``.
"""

from __future__ import annotations

from pathlib import Path

from regkit.app.overlays import case_overlay

CHECK_FOLDER = "check"


def reference_table(rows: list[dict]) -> str:
    """A plain-text table of the reference's quality per case, flagged cases marked, and their reasons below."""
    head = ("case", "split", "reference", "lm", "lm mean", "lm max", "surf mean", "surf p95", "Dice", "id SRE",
            "flags")
    keys = ("case", "split", "reference", "landmarks", "landmark_residual_mean_mm", "landmark_residual_max_mm",
            "surface_distance_mean_mm", "surface_distance_p95_mm", "dice", "identity_sre_mm", "flags")

    def cell(v):
        if isinstance(v, float):
            return f"{v:.2f}"
        return "" if v is None else str(v)

    table = [head] + [tuple(cell(r.get(k)) for k in keys) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    flagged = [r for r in rows if r.get("flags")]
    lines.append(f"{len(flagged)} of {len(rows)} cases flagged (mm; id SRE: the identity's SRE against the reference)")
    lines += [f"  {r['case']}: {r['reasons']}" for r in flagged]
    return "\n".join(lines)


def inspect_dataset(path: str | Path, out: str | Path | None = None, cases: list[str] | None = None,
                    overlays: bool = True) -> tuple[list[dict], Path]:
    """Write an overlay per case into ``out`` (default ``DATASET/check/``) and return the report rows (from each
    case's ``case.json``) and the overlay folder. The import report ``import_report.csv`` is rewritten too."""
    from regkit.dataset import load_dataset, read_case_metadata
    from regkit.importers.writing import reference_row, write_import_report

    ds = load_dataset(path)
    out = Path(out) if out is not None else ds.root / CHECK_FOLDER
    write_import_report(ds.root, ds.splits)
    split_of = {cid: s for s, ids in ds.splits.items() for cid in ids}
    rows = []
    for cid in cases or ds.case_ids():
        meta_path = ds.root / cid / "case.json"
        meta = read_case_metadata(meta_path) if meta_path.exists() else {}
        rows.append(reference_row(cid, split_of.get(cid, ""), meta))
        if overlays:
            case = ds.load(cid)
            flags = rows[-1]["flags"]
            case_overlay(case, out / f"{cid}.png",
                         f"{cid}: MR gland (red), TRUS gland in MR space (yellow)" + (f"; FLAGGED: {flags}" if flags
                                                                                      else ""))
    return rows, out
