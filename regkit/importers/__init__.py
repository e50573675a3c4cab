"""Importers: public MR–TRUS layouts converted into regkit's dataset layout (see :mod:`regkit.dataset`).

One module per layout, each with its conventions stated once in its docstring and tested in
``tests/test_importers.py``:

* :mod:`regkit.importers.muregpro` — µ-RegPro (``nifti_data/{train,val}/{mr,us}_{images,labels}/``);
* :mod:`regkit.importers.deepreg` — DeepReg paired data (``{moving,fixed}_{images,labels}.h5`` or folders);
* :mod:`regkit.importers.paired` — generic paired folders (``mr_images/``, ``us_images/``, ``mr_labels/``, ...);
* :mod:`regkit.importers.uronav` — the UroNav export (``MRVol.mhd``, ``USVol.mhd``, STL, ``coreg*.txt``);
* :mod:`regkit.importers.tcia` — TCIA Prostate-MRI-US-Biopsy (DICOM series and STL surfaces).

Shared pieces: :mod:`regkit.importers.writing` (manifest, atomic per-case writing, resume, the import report),
:mod:`regkit.importers.labels` (label channels and landmark centroids), :mod:`regkit.importers.reference` (the
rigid reference derived from labels, and its quality) and :mod:`regkit.importers.cases` (a case from a labelled
pair).
"""

from regkit.importers.deepreg import import_deepreg
from regkit.importers.labels import Landmarks, read_label_channel, read_label_channels
from regkit.importers.muregpro import import_muregpro
from regkit.importers.paired import import_paired_folders
from regkit.importers.reference import Reference, ReferenceThresholds, reference_from_labels, reference_from_surfaces
from regkit.importers.tcia import import_tcia
from regkit.importers.uronav import (
    ground_truth_from_uronav_coreg,
    ground_truth_from_us2mr,
    import_uronav,
    uronav_ground_truth,
)

__all__ = [
    "Landmarks",
    "Reference",
    "ReferenceThresholds",
    "ground_truth_from_uronav_coreg",
    "ground_truth_from_us2mr",
    "import_deepreg",
    "import_muregpro",
    "import_paired_folders",
    "import_tcia",
    "import_uronav",
    "read_label_channel",
    "read_label_channels",
    "reference_from_labels",
    "reference_from_surfaces",
    "uronav_ground_truth",
]
