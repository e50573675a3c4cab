"""``report.html``: one self-contained page of a comparison, to read and share as a single file.

It gathers the tables (``table1``, ``table2``, ``tests``, ``ranks`` as written beside it), the figures
(embedded as PNG data URIs) and the run record (``run.json``). It loads nothing from the network and runs no
script. Rebuild it from a results folder with :func:`write_report`.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from regkit.evaluation.provenance import read_record

TABLES = (
    ("table1", "Final SRE (cf. the paper's Table 1)",
     "Mean ± std over samples; 95 % CI of the mean by a cluster bootstrap over cases."),
    ("table2", "Stages, parameters and runtime (cf. the paper's Table 2)", ""),
    ("tests", "Paired comparisons: case level, with the paper's sample level beside", None),
    ("ranks", "Significance ranks (challengeR)", None),
)
FIGURES = (
    ("boxplot.png", "Final SRE per method and starting error; the dashed line is the mean start."),
    ("scatter.png", "Initial against final SRE; points below the diagonal improved."),
    ("differences.png", "Per-case paired differences (mean over a case's starts, t interval over them) and the "
                        "case-level estimate with its t and cluster-bootstrap intervals."),
)
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}
th,td{border:1px solid #bbb;padding:0.25em 0.5em;text-align:left}th{background:#eee}
figure{margin:1em 0}img{max-width:100%}figcaption{font-size:0.85em;color:#555}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:0.8em}.note{font-size:0.85em;color:#555}
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table_html(frame: pd.DataFrame, name: str) -> str:
    return frame.to_html(index=False, border=0, escape=True, table_id=f"table-{name}", na_rep="-")


def _note(name: str, out: Path) -> str:
    """The note under a Markdown table (after its last row), e.g. the tests' correction statement."""
    md = out / f"{name}.md"
    if not md.exists():
        return ""
    lines = md.read_text().splitlines()
    body = [ln for ln in lines if ln.strip() and not ln.startswith("|")]
    return " ".join(body)


def _suspect_section(out: Path, record: dict) -> str:
    """The suspect results (``regkit compare --qa``), one row each, as ``metrics.json`` lists them (this run's
    samples, read-only); nothing when consistency was not measured."""
    try:
        methods = json.loads((out / "metrics.json").read_text()).get("methods") or {}
    except (OSError, ValueError, AttributeError):
        return ""
    found = [(label, init, entry["suspect"]) for label, method in methods.items()
             for init, entry in (method.get("inits") or {}).items() if "suspect" in entry]
    checked = sum(s["checked"] for _, _, s in found)
    if not checked:
        return ""
    qa = record.get("qa") or {}
    how = (f"{qa['measure']} above {qa['threshold_mm']:g} mm" if {"measure", "threshold_mm"} <= set(qa)
           else "consistency worse than the threshold")
    head = (f"<h2 id='suspect'>Suspect results</h2><p class='note'>{sum(s['count'] for _, _, s in found)} of "
            f"{checked} checked results are suspect ({html.escape(how)}; measured without the ground truth). They "
            "keep their status and count in every statistic.</p>")

    def shown(v: float | None) -> str:  # metrics.json writes a missing number as null
        return "-" if v is None else f"{v:.2f}"

    table = pd.DataFrame([{"Method": label, "Initialization": init, "Case": r["case"], "Start": r["start_id"],
                           "Status": r["status"], "Consistency (mm)": shown(r["consistency_mm"]),
                           "Final SRE (mm)": shown(r["SRE"])}
                          for label, init, s in found for r in s["samples"]])
    return head if table.empty else head + _table_html(table, "suspect")


def render(out: str | Path, title: str = "regkit comparison") -> str:
    """The report's HTML for the results folder ``out``."""
    out = Path(out)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    record = read_record(out / "run.json") if (out / "run.json").exists() else {}
    if record:
        facts = [("dataset", record.get("dataset")), ("split", record.get("split")),
                 ("cases", len(record.get("cases") or [])), ("starting error", record.get("init")),
                 ("starts per case", record.get("starts_per_case")), ("seeds", record.get("seeds")),
                 ("git", record.get("git")), ("time", record.get("time"))]
        parts.append("<p class='note'>" + "; ".join(f"{k}: {html.escape(str(v))}" for k, v in facts) + "</p>")
    for name, heading, note in TABLES:
        path = out / f"{name}.csv"
        if not path.exists():
            continue
        try:
            frame = pd.read_csv(path, keep_default_na=False, dtype=str)
        except pd.errors.EmptyDataError:  # e.g. no comparisons in a run of one method
            frame = pd.DataFrame({"": ["(none)"]})
        note = _note(name, out) if note is None else note
        parts.append(f"<h2 id='{name}'>{html.escape(heading)}</h2>{_table_html(frame, name)}")
        if note:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
    parts.append(_suspect_section(out, record))
    parts.append("<h2 id='figures'>Figures</h2>")
    for file, caption in FIGURES:
        path = out / file
        if path.exists():
            parts.append(f"<figure id='fig-{path.stem}'><img alt='{html.escape(path.stem)}' "
                         f"src='{_data_uri(path)}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("<h2 id='record'>Run record (run.json)</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(record, indent=2, default=str))}</pre>")
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    parts.append("<p class='note'>Files in the results folder: " + html.escape(", ".join(files)) + "</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(out: str | Path, write=None, title: str = "regkit comparison") -> Path:
    """Write ``out/report.html`` from the tables, figures and run record in ``out``."""
    from regkit.atomic import write_text

    out = Path(out)
    return (write or write_text)(out / "report.html", render(out, title))
