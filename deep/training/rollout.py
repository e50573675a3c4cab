"""Rollout starts: samples whose fresh start a network's passes move first (``--rollout``).

For a fraction of the samples, a fresh start is drawn and moved by a network's passes, and the target is the
correction from where it lands. ``--rollout-from`` names that network's checkpoint (a stage 2 trained on where its
stage 1 lands: one pass from a start drawn over the stage 1's own range); without it the network being trained
makes 1–3 passes from a start in this stage's range (its own errors, DAgger-like). A pass that lands farther
than the range's upper end keeps the start it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from regkit.deep.checkpoint import CheckpointConfig, load_checkpoint, read_config
from regkit.deep.correction import apply_correction
from regkit.deep.crop import CaseInput
from regkit.errors import InputError
from regkit.sre import sre
from regkit.starts import InitSpec, parse_init
from regkit.transform import RigidTransform


def rollout_network(rollout: float, rollout_from: Path | None, init: InitSpec, arch_name: str, variant: str,
                    device: torch.device) -> tuple[torch.nn.Module | None, InitSpec | None, tuple[int, int]]:
    """The network whose passes move the rollout starts (None: the network being trained), the range of its
    fresh starts, and its passes (fewest, most)."""
    if not rollout:
        return None, None, (0, 0)
    if rollout_from is None:
        return None, init, (1, 3)  # the network being trained, from this stage's range
    path = Path(rollout_from)
    cfg = read_config(path)
    own = CheckpointConfig(arch_name, variant).input_options
    if cfg.variant != variant or cfg.input_options != own:
        raise InputError(f"--rollout-from is a {cfg.variant} network with inputs {cfg.input_options}; this run "
                         f"trains a {variant} network with inputs {own}", path,
                         "give a checkpoint of the same variant and input grid (e.g. this network's stage 1)")
    net, _ = load_checkpoint(path, device)
    for p in net.parameters():
        p.requires_grad_(False)
    return net, parse_init(cfg.init_range or "0-20mm")[0], (1, 1)


@torch.no_grad()
def roll_out(net: torch.nn.Module, cases: list[CaseInput], starts: list[RigidTransform], rolled: list[bool],
             rng: np.random.Generator, passes: tuple[int, int], limit: float, autocast) -> list[RigidTransform]:
    """The starts, the rolled ones moved by ``net``'s passes (a number drawn from ``passes`` for each); a pass
    that lands farther than ``limit`` (mm SRE) is not taken. ``autocast()`` gives the passes' autocast context."""
    lo, hi = passes
    count = {i: int(rng.integers(lo, hi + 1)) for i, r in enumerate(rolled) if r}
    starts = list(starts)
    was_training = net.training
    net.eval()
    try:
        for k in range(max(count.values())):
            idx = [i for i, n in count.items() if n > k]
            x = torch.cat([cases[i].inputs(starts[i]) for i in idx])
            with autocast():
                params = net(x).float().cpu().numpy().astype(float)
            for j, i in enumerate(idx):
                moved = apply_correction(cases[i].box, starts[i], params[j])
                if float(np.atleast_1d(sre(moved, cases[i].ground_truth, cases[i].surface_points))[0]) <= limit:
                    starts[i] = moved
    finally:
        net.train(was_training)
    return starts
