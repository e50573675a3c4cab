"""Importers: public MR–TRUS layouts converted into regkit's dataset layout (see :mod:`regkit.dataset`).

One module per layout, each with its conventions stated once in its docstring and tested in
``tests/test_importers.py``:

* :mod:`regkit.importers.paired` — generic paired folders (``mr_images/``, ``us_images/``, ``mr_labels/``, ...);
* :mod:`regkit.importers.uronav` — the UroNav export (``MRVol.mhd``, ``USVol.mhd``, STL, ``coreg*.txt``);
* :mod:`regkit.importers.tcia` — TCIA Prostate-MRI-US-Biopsy (DICOM series and STL surfaces).

Shared pieces: :mod:`regkit.importers.writing` (manifest, atomic per-case writing, resume) and
:mod:`regkit.importers.labels` (label channels and landmark centroids).
"""

from regkit.importers.labels import read_label_channel
from regkit.importers.paired import import_paired_folders
from regkit.importers.tcia import import_tcia
from regkit.importers.uronav import (
    ground_truth_from_uronav_coreg,
    ground_truth_from_us2mr,
    import_uronav,
    uronav_ground_truth,
)

__all__ = [
    "ground_truth_from_uronav_coreg",
    "ground_truth_from_us2mr",
    "import_paired_folders",
    "import_tcia",
    "import_uronav",
    "read_label_channel",
    "uronav_ground_truth",
]
