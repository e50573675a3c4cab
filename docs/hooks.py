"""MkDocs hooks: the benchmarks page is BENCHMARKS.md itself, and the raw outputs it cites travel with the site.

BENCHMARKS.md (at the repository's root, one source) is read into ``benchmarks.md`` at build time; its links
are written relative to the root (``bench/results/...``, ``docs/...``), so they are rewritten for the page, and
every file of ``bench/results/`` is added to the site, so that ``mkdocs build --strict`` checks each link.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]  # the repository; on_config takes it from mkdocs.yml's place
RESULTS = "bench/results"


@event_priority(100)  # before mkdocstrings builds its handlers
def on_config(config):
    """Point mkdocstrings at the installed package's layout: `baselines/` is `regkit.baselines`, and so on.

    The folders are mapped into `regkit` by `[tool.setuptools.package-dir]`, which griffe's static finder does not
    read; a tree of links with the installed layout lets it find every module without importing it.
    """
    global ROOT
    ROOT = Path(config.config_file_path).parent
    section = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-dir]")[1].split("\n[")[0]
    mapping = dict(re.findall(r'^"([\w.]+)" = "([\w/]+)"$', section, flags=re.M))
    tree = Path(tempfile.mkdtemp(prefix="regkit-docs-"))
    atexit.register(shutil.rmtree, tree, True)
    package = tree / "regkit"
    package.mkdir()
    for entry in (ROOT / "regkit").iterdir():
        (package / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        (tree / name.replace(".", "/")).symlink_to(ROOT / folder)
    config["plugins"]["mkdocstrings"].config["handlers"]["python"]["paths"] = [str(tree)]
    return config


def on_files(files, config):
    for path in sorted((ROOT / RESULTS).iterdir()):
        if path.is_file():
            file = File(f"{RESULTS}/{path.name}", str(ROOT), config["site_dir"], config["use_directory_urls"],
                        inclusion=InclusionLevel.NOT_IN_NAV)
            files.append(file)
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "benchmarks.md":
        return markdown
    text = (ROOT / "BENCHMARKS.md").read_text()
    return re.sub(r"\]\((?!https?://|#)(docs/)?", lambda m: "](", text)
