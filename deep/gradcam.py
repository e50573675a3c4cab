"""Grad-CAM on the cross-modal attention blocks (the paper's Fig. 4), and on Feature-Reg's matching layers.

For a sample (case, start) the network predicts the correction θ. The score explained is the size of the
predicted correction, ``s = ‖θ‖²`` (or one parameter ``θ_k``). For each branch the activation ``A`` is the
output of its attention block (Feature-Reg: the same position, the pooled branch features). Grad-CAM weighs
each channel by its spatially averaged gradient, ``α_c = mean_x ∂s/∂A_c(x)``, and the map is
``ReLU(Σ_c α_c A_c)``, upsampled trilinearly from the 16×24×24 feature grid to the 32×96×96 input and scaled
to [0, 1]. One map per branch: the MR (fixed) branch and the TRUS (moving) branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from regkit.deep.attention_reg import AttentionReg


@dataclass
class GradCam:
    fixed: np.ndarray  # (D, H, W) input channels
    moving: np.ndarray
    cam_fixed: np.ndarray  # (D, H, W) maps in [0, 1]
    cam_moving: np.ndarray
    prediction: np.ndarray  # (6,)


def grad_cam(network: AttentionReg, inputs: torch.Tensor, target: int | None = None) -> GradCam:
    """Grad-CAM maps for one input ``(1, 2, D, H, W)`` (see the module docstring)."""
    if not isinstance(network, AttentionReg):
        raise TypeError("Grad-CAM here explains Attention-Reg and Feature-Reg networks")
    network.eval()
    x = inputs.detach().clone()
    mr, us = network.features(x)
    mr.retain_grad()
    us.retain_grad()
    theta = network.head(mr, us)
    score = (theta**2).sum() if target is None else theta[0, target]
    network.zero_grad(set_to_none=True)
    score.backward()
    maps = []
    for a in (mr, us):
        weights = a.grad.mean(dim=(2, 3, 4), keepdim=True)
        cam = torch.relu((weights * a).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[2:], mode="trilinear", align_corners=False)[0, 0]
        cam = cam / cam.max().clamp_min(1e-12)
        maps.append(cam.detach().numpy())
    return GradCam(x[0, 0].numpy(), x[0, 1].numpy(), maps[0], maps[1], theta.detach()[0].numpy())


def explain_figure(cams: list[tuple[str, GradCam]], path: str | Path, title: str = "") -> Path:
    """Rows of (MR, MR + CAM, TRUS, TRUS + CAM) through the middle of the crop, one row per network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(cams), 4, figsize=(15, 4.1 * len(cams)), squeeze=False,
                             layout="constrained")
    for row, (name, g) in enumerate(cams):
        z = g.fixed.shape[0] // 2
        for col, (img, cam, label) in enumerate(((g.fixed, None, "MR (fixed)"), (g.fixed, g.cam_fixed, "MR branch CAM"),
                                                 (g.moving, None, "TRUS (moving)"),
                                                 (g.moving, g.cam_moving, "TRUS branch CAM"))):
            ax = axes[row, col]
            ax.imshow(img[z], cmap="gray", vmin=0, vmax=1)
            if cam is not None:
                ax.imshow(cam[z], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def explain(methods=("attreg",), case: str | None = None, data: str | Path | None = None, init: str = "8mm",
            start_id: int = 0, seed: int = 0, out: str | Path = "regkit-explain",
            checkpoints: dict[str, str] | None = None) -> dict[str, Path]:
    """Grad-CAM figures for one (case, start) and one or more networks (e.g. ``("attreg", "featreg")``).

    The start is start ``start_id`` drawn by the protocol at ``init`` with ``seed`` (as ``regkit compare``
    draws them). Writes ``explain.png`` (one row per network, stage-1 network) and ``gradcam.npz``.
    """
    from regkit.benchmark import open_dataset
    from regkit.deep.crop import CaseInput
    from regkit.deep.registrar import DeepRegistrar
    from regkit.errors import InputError
    from regkit.progress import note
    from regkit.registry import declaration, get_registrar
    from regkit.starts import make_starts

    for m in [methods] if isinstance(methods, str) else methods:  # before any work: a method with no network
        if declaration(m).architecture is None:
            raise InputError(f"explain works on Attention-Reg and Feature-Reg registrars, not {m!r}")
    ds = open_dataset(data, ("test",))
    cid = case or ds.case_ids("test" if "test" in ds.splits else None)[0]
    c = ds.load(cid)
    start = make_starts([c], init, start_id + 1, seed)[start_id].transform
    cams, arrays = [], {}
    for m in ([methods] if isinstance(methods, str) else methods):
        opts = {"checkpoint": checkpoints[m]} if checkpoints and m in checkpoints else {}
        reg = get_registrar(m, **opts)
        if not isinstance(reg, DeepRegistrar) or not isinstance(reg.networks[0], AttentionReg):
            raise InputError(f"explain works on Attention-Reg and Feature-Reg registrars, not {m!r}")
        note(f"{m}: Grad-CAM of case {cid}, start {start_id} at {init} (one pass through the network and back)...")
        x = CaseInput(c, reg.variant, reg.device, **reg.configs[0].input_options).inputs(start)
        g = grad_cam(reg.networks[0].float(), x.float())
        cams.append((m, g))
        arrays[f"{m}_cam_fixed"], arrays[f"{m}_cam_moving"] = g.cam_fixed, g.cam_moving
        arrays[f"{m}_fixed"], arrays[f"{m}_moving"] = g.fixed, g.moving
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    note(f"drawing {out / 'explain.png'}...")
    fig = explain_figure(cams, out / "explain.png", title=f"Grad-CAM, case {cid}, start {start_id} at {init}")
    np.savez_compressed(out / "gradcam.npz", **arrays)
    return {"figure": fig, "arrays": out / "gradcam.npz"}
