"""Figures of one MR–TRUS pair: three orthogonal planes through the MR prostate.

* :func:`overlay` (``regkit register``'s ``overlay.png``): a checkerboard of the MR and the TRUS resampled into MR
  space, and the TRUS with the MR's edges and prostate contour; misregistration shows as broken edges at tile
  borders and MR edges that do not follow TRUS structures.
* :func:`case_overlay` (``regkit inspect``, ``regkit import --check``): the MR with its gland contour and the TRUS
  gland mapped into MR space under the identity and under the case's reference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Plane = tuple[str, Callable[[np.ndarray], np.ndarray], float]  # name, cut of a (z, y, x) array, aspect


def planes(centre, spacing_zyx) -> list[Plane]:
    """Axial, coronal and sagittal cuts through ``centre`` (a (z, y, x) index), with their display aspects."""
    c, sp = [int(v) for v in centre], np.asarray(spacing_zyx, float)
    return [("axial", lambda a: a[c[0]], sp[1] / sp[2]),
            ("coronal", lambda a: a[:, c[1], :][::-1], sp[0] / sp[2]),
            ("sagittal", lambda a: a[:, :, c[2]][::-1], sp[0] / sp[1])]


def _save(fig, path: str | Path, **savefig) -> Path:
    from regkit.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig)
    return path


def _normalise(a: np.ndarray) -> np.ndarray:
    v = a[a != 0]
    lo, hi = (np.percentile(v, [1, 99]) if v.size else (0.0, 1.0))
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)


def overlay(fixed, moving_resampled, fixed_label, path: str | Path, tiles: int = 8, title_text: str = "") -> Path:
    """Three orthogonal slices through the prostate: a checkerboard of MR and resampled TRUS (top) and the TRUS
    with the MR's edges and prostate contour (bottom). Misregistration shows as broken edges at tile borders and
    MR edges that do not follow TRUS structures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk
    from skimage.feature import canny

    mr = _normalise(sitk.GetArrayFromImage(fixed).astype(float))
    us = _normalise(sitk.GetArrayFromImage(moving_resampled).astype(float))
    lab = sitk.GetArrayFromImage(fixed_label) > 0 if fixed_label is not None else None
    sp = np.array(fixed.GetSpacing())[::-1]  # (z, y, x)
    if lab is not None and lab.any():
        nz = np.nonzero(lab)
        centre = [round(np.mean(ix)) for ix in nz]
        # show the prostate and 25 mm around it
        lo = [max(0, int(ix.min() - 25 / s)) for ix, s in zip(nz, sp, strict=True)]
        hi = [min(n, int(ix.max() + 25 / s) + 1) for ix, s, n in zip(nz, sp, mr.shape, strict=True)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        mr, us, lab = mr[box], us[box], lab[box]
        centre = [c - a for c, a in zip(centre, lo, strict=True)]
    else:
        centre = [s // 2 for s in mr.shape]
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
    for col, (name, cut, aspect) in enumerate(planes(centre, sp)):
        m, u = cut(mr), cut(us)
        ty, tx = (np.indices(m.shape) * tiles // np.array(m.shape)[:, None, None])
        board = np.where((ty + tx) % 2 == 0, m, u)
        axes[0, col].imshow(board, cmap="gray", aspect=aspect, vmin=0, vmax=1)
        axes[0, col].set_title(f"{name}: checkerboard MR / TRUS")
        axes[1, col].imshow(u, cmap="gray", aspect=aspect, vmin=0, vmax=1)
        edges = canny(m, sigma=1.5, low_threshold=0.85, high_threshold=0.95, use_quantiles=True)
        rgba = np.zeros((*edges.shape, 4))
        rgba[edges] = (0.1, 0.9, 1.0, 0.8)
        axes[1, col].imshow(rgba, aspect=aspect)
        axes[1, col].set_title(f"{name}: TRUS with MR edges")
        if lab is not None:
            for ax in axes[:, col]:
                ax.contour(cut(lab.astype(float)), [0.5], colors="red", linewidths=1.2)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title_text:
        fig.suptitle(title_text)
    fig.tight_layout()
    out = _save(fig, path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


def _slices(mr, mr_gland, under_identity, under_reference):
    """Axial, coronal and sagittal planes through the MR gland's centre: (name, MR, contours, aspect)."""
    import SimpleITK as sitk

    from regkit.image import intensity_window

    lo, hi = intensity_window(mr)
    a = np.clip((sitk.GetArrayFromImage(mr).astype(float) - lo) / (hi - lo), 0, 1)
    labs = [sitk.GetArrayFromImage(x) > 0 if x is not None else None for x in (mr_gland, under_identity,
                                                                               under_reference)]
    centre = [np.round(np.mean(ix)) for ix in np.nonzero(labs[0])]
    return [(name, cut(a), [None if lab is None else cut(lab) for lab in labs], aspect)
            for name, cut, aspect in planes(centre, np.array(mr.GetSpacing())[::-1])]


def case_overlay(case, path: str | Path, title: str = "") -> Path:
    """Two rows of three planes through the MR gland: the MR with its gland contour (red) and the TRUS gland
    contour mapped into MR space (yellow) under the identity (top) and under the reference (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    if case.moving_label is None:
        under = [None, None]
    else:
        under = [sitk.Resample(case.moving_label, case.fixed, t, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
                 for t in (sitk.Transform(), case.ground_truth.to_sitk())]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for row, label in enumerate(("identity", "reference")):
        for col, (name, img, (mr_lab, *trus), aspect) in enumerate(_slices(case.fixed, case.fixed_label, *under)):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", aspect=aspect, vmin=0, vmax=1)
            ax.contour(mr_lab.astype(float), [0.5], colors="red", linewidths=1.2)
            if trus[row] is not None and trus[row].any():
                ax.contour(trus[row].astype(float), [0.5], colors="yellow", linewidths=1.2)
            ax.set_title(f"{name}: TRUS gland under the {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title or f"{case.case_id}: MR gland (red), TRUS gland mapped into MR space (yellow)", fontsize=10)
    fig.tight_layout()
    out = _save(fig, path, dpi=110)
    plt.close(fig)
    return out
