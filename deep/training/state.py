"""A run's state, and what its ``last.*`` checkpoint holds beyond the weights so that a resume continues exactly.

``last.safetensors`` holds, beside the weights (float32), the optimiser's tensors (``_train.optim.<param>.<name>``)
and the torch random stream (``_train.torch_rng``); ``last.json``'s ``training.resume`` holds the loop's counters
(:class:`TrainState`, without the history, which ``history.csv`` keeps), the optimiser's scalars and parameter
groups, the scheduler's state and the run's options.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from regkit.deep.checkpoint import CheckpointConfig, load_into, read_tensors, save_checkpoint
from regkit.errors import CheckpointError


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0
    global_step: int = 0
    samples: int = 0
    best_val_sre: float = math.inf
    best_epoch: int = -1
    elapsed: float = 0.0
    fitted_epochs: int | None = None  # the epochs that --fit-epochs chose (kept when the run is resumed)
    history: list[dict] = field(default_factory=list)


def jsonable(obj):
    """``obj`` with its paths as strings and its tuples as lists (the run's options, for JSON)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_training_state(path: Path, model: torch.nn.Module, config: CheckpointConfig,
                        optimizer: torch.optim.Optimizer, scheduler, state: TrainState, options) -> None:
    """Write the checkpoint ``path`` (a run's ``last``): the weights, and everything a resume needs."""
    tensors, optim_json = _optimizer_tensors(optimizer)
    tensors["_train.torch_rng"] = torch.get_rng_state()
    sched = scheduler.state_dict()
    if "milestones" in sched:
        sched["milestones"] = {str(k): v for k, v in sched["milestones"].items()}
    config.training["resume"] = {
        "state": {k: v for k, v in asdict(state).items() if k != "history"},
        "optimizer": optim_json, "scheduler": sched, "options": jsonable(asdict(options)),
    }
    save_checkpoint(model, config, path, extra_tensors=tensors)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"_train.optim.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_training_state(path: Path, config: CheckpointConfig, model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, scheduler, device: torch.device) -> TrainState:
    """Load a run's ``last`` checkpoint (``path``, with its ``config``) into the model, the optimiser, the
    scheduler and the torch random stream; returns the loop's counters (without the history)."""
    info = config.training.get("resume")
    if not info:
        raise CheckpointError("the checkpoint holds no training state to resume from (a best/bundled "
                              "checkpoint?)", path, "resume from the run's last.safetensors, or start a new "
                              "run with --init-weights")
    tensors = read_tensors(path, "cpu")
    load_into(model, tensors, path, config.architecture)
    sd = {"state": {}, "param_groups": info["optimizer"]["param_groups"]}
    for k, v in tensors.items():
        if k.startswith("_train.optim."):
            pid, name = k.removeprefix("_train.optim.").split(".", 1)
            sd["state"].setdefault(int(pid), {})[name] = v.to(device)
    for k, v in info["optimizer"]["scalars"].items():
        pid, name = k.split(".", 1)
        sd["state"].setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict(sd)
    sched = info["scheduler"]
    if "milestones" in sched:
        sched["milestones"] = Counter({int(k): v for k, v in sched["milestones"].items()})
    scheduler.load_state_dict(sched)
    torch.set_rng_state(tensors["_train.torch_rng"])
    return TrainState(**info["state"])
