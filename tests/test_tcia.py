"""The TCIA Prostate-MRI-US-Biopsy importer: the collection's real STL files against someone else's conversion,
and a fixture in the published layout imported end to end (see :mod:`regkit.importers.tcia` for the conventions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from regkit.surface import label_from_mesh, read_mesh


# --------------------------------------------------------------------------- the real sample
def sample_pairs(shared_data: Path) -> list[tuple[Path, Path]]:
    """(STL, label map) pairs of ``tcia_biopsy_sample``: each label map sits in ``<kind>_labelmaps/`` under the
    STL's name with ``.nii.gz``."""
    root = shared_data / "tcia_biopsy_sample"
    if not root.is_dir():
        pytest.skip("../shared/data/tcia_biopsy_sample is not present")
    pairs = []
    for stl in sorted(root.glob("*_STL/*.STL")):
        label = stl.parent.with_name(stl.parent.name.replace("_STL", "_labelmaps")) / (stl.stem + ".nii.gz")
        pairs.append((stl, label))
    assert len(pairs) == 2 and all(label.exists() for _, label in pairs)
    return pairs


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


@pytest.mark.parametrize("flip", [False, True], ids=["lps", "xy-flipped"])
def test_stl_reproduces_the_idc_label_maps(shared_data, flip):
    """Each real STL, read as LPS millimetres and voxelised onto the grid of the Imaging Data Commons team's label
    map (their conversion: 3D Slicer, reference = the T2 series the STL names), reproduces that map (Dice ≥ 0.95).
    Negating x and y (reading the STL as RAS) must break it: the check can fail."""
    for stl, label_path in sample_pairs(shared_data):
        reference = sitk.ReadImage(str(label_path))
        truth = sitk.GetArrayViewFromImage(reference) > 0
        points, faces = read_mesh(stl)
        if flip:
            points = points * np.array([-1.0, -1.0, 1.0])
        mine = sitk.GetArrayFromImage(label_from_mesh(points, faces, reference)) > 0
        score = dice(mine, truth)
        if flip:
            assert score < 0.5, f"{stl.name}: Dice {score:.3f} with x and y negated"
        else:
            assert score >= 0.95, f"{stl.name}: Dice {score:.3f}"
