"""Training the deep registrars: fresh starts every step, a fixed validation set, resumable, DDP-ready.

The recipe follows the paper (§2.3, §3.1) and the authors' code:

* every sample is a (case, start) pair with a start drawn fresh by the paper's generator
  (:mod:`regkit.starts`), its target SRE uniform in the stage's range (stage 1: 0–20 mm, stage 2: 0–8 mm);
  an epoch draws one start for every training case; the training volumes are rendered once and only the
  TRUS is resampled per sample (batched ``grid_sample``);
* the validation set is fixed: 5 starts per validation case, saved with the run (``val_starts.csv``);
* loss: MSE on the six parameters; optimiser: Adam. Schedules per network: Attention-Reg/Feature-Reg lr 1e-3,
  ×0.3 at 40 %, 57 % and 83 % of the epochs (the paper's 120/170/250 of 300); MSReg 5e-5 and DVNet 1e-3, ×0.9
  every 5 epochs;
* the best checkpoint is kept by validation SRE (``best.*``), the last one for resuming (``last.*``, with the
  optimiser, scheduler and random-stream positions);
* on the CPU, bf16 autocast is used where the processor supports it, and the fused attention always;
* ``data`` may name several datasets (``"builtin"`` is the built-in benchmark): their training splits are
  pooled, and their validation splits are pooled too, each dataset's validation SRE logged as its own column
  (``val_sre_<dataset>``), the best checkpoint chosen on the mean over all validation starts. Training cases are
  held compactly (the fixed crop and an 8-bit TRUS), so hundreds fit in memory;
* ``augment`` varies the network inputs' intensities on the fly (gamma, smooth bias, noise; per sample and
  channel, the label channel excepted), on top of what the randomised data (``regkit synth --randomise``) vary;
* ``rollout`` (a fraction) trains on the starts a network leaves behind, not only on fresh ones: for that
  fraction of the samples, a fresh start is drawn and moved by a network's passes first, and the target is the
  correction from where it lands. ``rollout_from`` names that network's checkpoint (a stage 2 trained on where
  its stage 1 lands: one pass from a start drawn over the stage 1's own range); without it the network being
  trained makes 1–3 passes from a start in this stage's range (its own errors, DAgger-like). A pass that lands
  farther than the range's upper end keeps the start it came from.

Run under ``torchrun --nproc_per_node N`` and the same code trains with DistributedDataParallel (NCCL on GPUs,
gloo on CPUs); every rank validates (so all agree on the best epoch) and rank 0 writes.

``--time-budget`` limits each invocation: a resumed run gets the budget again. SIGTERM and Ctrl-C stop cleanly
with ``last.*`` saved (a stop in mid-epoch validates that partial epoch, and resuming continues from the next
step).
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from regkit.deep.checkpoint import (
    CheckpointConfig,
    load_checkpoint,
    load_into,
    read_config,
    read_tensors,
    save_checkpoint,
)
from regkit.deep.correction import apply_correction, correction_target
from regkit.deep.crop import CaseInput
from regkit.deep.layers import flush_denormals
from regkit.deep.networks import architecture, build_network, parameter_count
from regkit.errors import CheckpointError, InputError, check_whole
from regkit.progress import progress
from regkit.registrar import MethodDeclaration
from regkit.sre import sre
from regkit.starts import InitSpec, draw_start, make_starts, parse_init, read_starts, write_starts
from regkit.transform import RigidTransform


def trainable_methods() -> dict[str, MethodDeclaration]:
    """The declared methods that name a network (``regkit train --method`` takes these)."""
    from regkit.registry import available_registrars

    return {name: d for name, d in available_registrars().items() if d.trainable}


def trainable_declaration(method: str) -> MethodDeclaration:
    methods = trainable_methods()
    if method not in methods:
        raise InputError(f"{method!r} is not a trainable registrar", fix=f"use one of {', '.join(methods)}")
    return methods[method]

FIT_AFTER_STEPS = 12  # --fit-epochs measures this many steps (or the first epoch, if shorter) before it plans
FIT_SAFETY = 0.92  # of the budget left that the fitted epochs plan to use (the step time drifts)

HISTORY_COLUMNS = ["epoch", "step", "samples", "train_loss", "val_loss", "val_sre_mean", "val_sre_median", "lr",
                   "elapsed_s"]


@dataclass
class TrainOptions:
    """Options of ``regkit train`` (see ``regkit train --help``)."""

    method: str
    out: Path
    data: Path | str | list | tuple | None = None  # dataset folder(s); "builtin" = the built-in benchmark
    stage: int = 1
    init_range: str | None = None
    epochs: int = 100
    batch_size: int | None = None
    lr: float | None = None
    resume: Path | None = None
    init_weights: Path | None = None
    seed: int = 0
    time_budget: float | None = None
    val_starts: int = 5
    val_every: int = 1
    samples_per_epoch: int | None = None
    bf16: bool | None = None
    compile: bool = False
    device: str | None = None
    threads: int | None = None
    show_progress: bool = True
    max_steps: int | None = None  # stop after this many optimiser steps in this process (tests, benchmarks)
    augment: bool = False
    fit_epochs: bool = False  # with time_budget: lower `epochs` after the first steps to what fits in the budget
    rollout: float = 0.0  # the fraction of samples whose start a network's passes move first (module docstring)
    rollout_from: Path | None = None  # that network's checkpoint; None: the network being trained

    def resolved(self) -> TrainOptions:
        decl = trainable_declaration(self.method)
        if self.stage not in (1, 2):
            raise InputError(f"stage must be 1 or 2, got {self.stage}")
        check_train_options(self)
        arch = architecture(decl.architecture)
        self.init_range = self.init_range or ("0-20mm" if self.stage == 1 else "0-8mm")
        self.batch_size = self.batch_size or arch.batch_size
        self.lr = self.lr or arch.lr
        self.out = Path(self.out)
        return self

    @property
    def sources(self) -> list[str]:
        """The datasets, as strings: folders, or "builtin"."""
        if self.data is None:
            return ["builtin"]
        items = [self.data] if isinstance(self.data, (str, Path)) else list(self.data)
        return [str(d) for d in items] or ["builtin"]


def check_train_options(opts: TrainOptions) -> None:
    """Range checks of the training options, and that the dataset folders exist, before any work, as
    :class:`InputError` naming the option or the folder."""
    from regkit.deep.registrar import resolve_device

    for source in opts.sources:
        if source != "builtin" and not Path(source).is_dir():
            raise InputError("the dataset folder does not exist", source, "give a dataset folder, or 'builtin'")

    for name in ("epochs", "batch_size", "val_starts", "val_every", "samples_per_epoch", "threads", "max_steps"):
        check_whole(name, getattr(opts, name), 1, optional=True)
    check_whole("seed", opts.seed, 0, optional=True)
    if (isinstance(opts.rollout, bool) or not isinstance(opts.rollout, int | float)
            or not 0 <= opts.rollout <= 1):
        raise InputError(f"rollout must be a fraction from 0 to 1, got {opts.rollout!r}")
    if opts.rollout_from is not None and not opts.rollout:
        raise InputError("rollout_from is given but rollout is 0, so it would never be used",
                         fix="give --rollout, the fraction of samples that start where that network leaves them")
    for name in ("lr", "time_budget"):
        value = getattr(opts, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or value <= 0):
            raise InputError(f"{name} must be a positive number, got {value!r}")
    if opts.device is not None:
        resolve_device(opts.device)


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


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def make_scheduler(optimizer, arch_schedule: str, epochs: int):
    if arch_schedule == "multistep":
        milestones = sorted({max(1, round(f * epochs)) for f in (120 / 300, 170 / 300, 250 / 300)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.3)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.9)


def _open_source(source: str, show_progress: bool):
    from regkit.benchmark import open_dataset

    if source == "builtin":
        return "builtin", open_dataset(None, ("train", "val"), show_progress=show_progress)
    return Path(source).name, open_dataset(source)


def load_training_data(opts: TrainOptions, variant: str, device):
    """Training and validation cases of every dataset, prepared as network inputs once.

    Returns the datasets, the training inputs and the validation inputs. With several datasets, case ids are
    prefixed with the dataset's folder name (``name/case000``); a validation input's ``group`` is that name.
    """
    sources = opts.sources
    datasets, train_items, val_items = [], [], []
    for source in sources:
        group, ds = _open_source(source, opts.show_progress)
        datasets.append(ds)
        prefix = f"{group}/" if len(sources) > 1 else ""
        for split, items in (("train", train_items), ("val", val_items)):
            ids = ds.case_ids(split) if split in ds.splits else []
            for cid in progress(ids, desc=f"load {group} {split}", unit="case", disable=not opts.show_progress):
                case = ds.load(cid)
                if case.fixed_label is None:
                    raise InputError(f"case {cid!r} has no MR prostate label (mr_label.*)", ds.root / cid,
                                     "the crop box, and the label variant, need the MR prostate label")
                if case.ground_truth is None:
                    raise InputError(f"case {cid!r} has no ground truth; training needs it", ds.root / cid)
                ci = CaseInput(case, variant, device, compact=split == "train", group=group)
                ci.case_id = prefix + cid
                items.append(ci)
    where = ", ".join(sources)
    if not train_items:
        raise InputError(f"the training split is empty ({where})", fix="list training cases under splits.train "
                         "in dataset.json")
    if not val_items:
        raise InputError(f"the validation split is empty ({where}); the best checkpoint is chosen on it",
                         fix="list validation cases under splits.val in dataset.json, or add a dataset with a "
                             "validation split")
    return datasets, train_items, val_items


def validation_groups(val_inputs: list[CaseInput]) -> list[str]:
    """The validation datasets, when there are several (each gets its own history column), else none."""
    names = list(dict.fromkeys(ci.group for ci in val_inputs))
    return names if len(names) > 1 else []


def augment_inputs(x: torch.Tensor, rng: np.random.Generator, fixed_is_label: bool) -> torch.Tensor:
    """Random intensity changes of a batch of network inputs (N, 2, D, H, W), per sample and channel.

    A gamma curve (exp(U(-0.4, 0.4))), a smooth multiplicative bias (a 4×6×6 random field, cubic-upsampled,
    up to ±25 %) and Gaussian noise (σ up to 0.03), clipped to [0, 1]; zeros (outside the TRUS fan) stay zero.
    The label channel is left alone. The random draws are made on the batch's device (the same stream on the
    CPU for the same ``rng``; another, equally reproducible one on a GPU).
    """
    dev = x.device  # drawn where the batch lives: on a GPU no volume-sized draw crosses the bus
    g = torch.Generator(device=dev).manual_seed(int(rng.integers(2**62)))
    n = x.shape[0]
    channels = [1] if fixed_is_label else [0, 1]
    out = x.clone()
    for c in channels:
        v = out[:, c]
        inside = v > 0
        gamma = torch.exp((torch.rand(n, generator=g, device=dev) - 0.5) * 0.8).view(n, 1, 1, 1)
        field = (torch.randn(n, 1, 4, 6, 6, generator=g, device=dev)
                 * (torch.rand(n, 1, 1, 1, 1, generator=g, device=dev) * 0.12))
        bias = torch.exp(F.interpolate(field, size=v.shape[1:], mode="trilinear", align_corners=True))[:, 0]
        noise = torch.randn(v.shape, generator=g, device=dev) * (torch.rand(n, 1, 1, 1, generator=g, device=dev) * 0.03)
        v = (v.clamp_min(0).pow(gamma) * bias + noise).clamp(0.0, 1.0)
        out[:, c] = torch.where(inside, v, torch.zeros_like(v))
    return out


class Trainer:
    """One training run (see the module docstring)."""

    def __init__(self, opts: TrainOptions):
        flush_denormals()
        self.opts = opts.resolved()
        self.rank, self.world, local_rank = _distributed()
        decl = trainable_declaration(self.opts.method)
        self.arch = architecture(decl.architecture)
        self.arch_name, self.variant = self.arch.name, decl.variant
        if self.opts.device:
            self.device = torch.device(self.opts.device)
            if self.device.type == "cuda" and self.device.index is None:  # torch.cuda.set_device needs an index
                self.device = torch.device("cuda", local_rank)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.opts.threads:
            torch.set_num_threads(self.opts.threads)
        elif self.world > 1 and self.device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))
        if self.opts.bf16 is None:
            from regkit.deep.registrar import native_bf16

            self.opts.bf16 = native_bf16(self.device)
        self.init = parse_init(self.opts.init_range)
        if len(self.init) != 1:
            raise InputError(f"--init-range takes one range, got {self.opts.init_range!r}")
        self.init: InitSpec = self.init[0]
        self.out = self.opts.out
        self.state = TrainState()

        torch.manual_seed(self.opts.seed)
        self.model = build_network(self.arch).to(self.device)
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=self.opts.lr)
        self.scheduler = make_scheduler(self.optimizer, self.arch.schedule, self.opts.epochs)
        self.rollout_net, self.rollout_init, self.rollout_passes = self._rollout_network()
        if self.opts.resume:
            self._resume(Path(self.opts.resume))
        elif self.opts.init_weights:
            self._load_init_weights(Path(self.opts.init_weights))
        self.net = self.model
        if self.opts.compile:
            self.net = torch.compile(self.net)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.net, device_ids=[self.device.index] if self.device.type == "cuda"
                                               else None)

    # ------------------------------------------------------------------ checkpoints
    def _config(self) -> CheckpointConfig:
        return CheckpointConfig(
            architecture=self.arch_name, variant=self.variant, stage=self.opts.stage,
            init_range=self.init.label, parameter_count=parameter_count(self.arch),
            training={
                "method": self.opts.method, "data": self.opts.sources, "augment": self.opts.augment,
                "seed": self.opts.seed, "epochs_planned": self.opts.epochs, "epochs_done": self.state.epoch,
                "batch_size": self.opts.batch_size, "world_size": self.world, "lr": self.opts.lr,
                "schedule": self.arch.schedule, "bf16": bool(self.opts.bf16), "samples": self.state.samples,
                "best_val_sre_mm": self.state.best_val_sre if math.isfinite(self.state.best_val_sre) else None,
                "best_epoch": self.state.best_epoch, "train_seconds": round(self.state.elapsed, 1),
                "init_weights": str(self.opts.init_weights) if self.opts.init_weights else None,
                "rollout": self.opts.rollout,
                "rollout_from": str(self.opts.rollout_from) if self.opts.rollout_from else None,
                "torch": torch.__version__, "device": str(self.device),
                "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
            },
        )

    def _optimizer_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        sd = self.optimizer.state_dict()
        tensors, scalars = {}, {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"_train.optim.{pid}.{k}"] = v
                else:
                    scalars[f"{pid}.{k}"] = v
        return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}

    def save_last(self) -> None:
        if self.rank != 0:
            return
        tensors, optim_json = self._optimizer_tensors()
        tensors["_train.torch_rng"] = torch.get_rng_state()
        cfg = self._config()
        sched = self.scheduler.state_dict()
        if "milestones" in sched:
            sched["milestones"] = {str(k): v for k, v in sched["milestones"].items()}
        cfg.training["resume"] = {
            "state": {k: v for k, v in asdict(self.state).items() if k != "history"},
            "optimizer": optim_json, "scheduler": sched, "options": _jsonable(asdict(self.opts)),
        }
        save_checkpoint(self.model, cfg, self.out / "last", extra_tensors=tensors)

    def _resume(self, path: Path) -> None:
        if path.is_dir():
            path = path / "last"
        cfg = read_config(path)
        if cfg.architecture != self.arch_name:
            raise CheckpointError(f"the checkpoint to resume is for {cfg.architecture!r}, not {self.arch_name!r} "
                                  f"(method {self.opts.method!r})", path,
                                  "resume with the same --method the run was started with")
        if cfg.variant != self.variant:
            raise CheckpointError(f"the checkpoint to resume uses the {cfg.variant} variant, not {self.variant}", path)
        info = cfg.training.get("resume")
        if not info:
            raise CheckpointError("the checkpoint holds no training state to resume from (a best/bundled "
                                  "checkpoint?)", path, "resume from the run's last.safetensors, or start a new "
                                  "run with --init-weights")
        tensors = read_tensors(path, "cpu")
        load_into(self.model, tensors, path, self.arch_name)
        sd = {"state": {}, "param_groups": info["optimizer"]["param_groups"]}
        for k, v in tensors.items():
            if k.startswith("_train.optim."):
                pid, name = k.removeprefix("_train.optim.").split(".", 1)
                sd["state"].setdefault(int(pid), {})[name] = v.to(self.device)
        for k, v in info["optimizer"]["scalars"].items():
            pid, name = k.split(".", 1)
            sd["state"].setdefault(int(pid), {})[name] = v
        self.optimizer.load_state_dict(sd)
        sched = info["scheduler"]
        if "milestones" in sched:
            from collections import Counter

            sched["milestones"] = Counter({int(k): v for k, v in sched["milestones"].items()})
        self.scheduler.load_state_dict(sched)
        torch.set_rng_state(tensors["_train.torch_rng"])
        self.state = TrainState(**info["state"])
        if self.state.fitted_epochs:
            self.opts.epochs = self.state.fitted_epochs
        hist = self.out / "history.csv"
        if hist.exists():
            with open(hist) as fh:
                self.state.history = list(csv.DictReader(fh))

    def _write_options(self, opts: TrainOptions) -> None:
        """``options.json``: the run's options as they stand (a fitted epoch count included)."""
        (self.out / "options.json").write_text(json.dumps(_jsonable(asdict(opts)), indent=2) + "\n")

    def _load_init_weights(self, path: Path) -> None:
        cfg = read_config(path)
        if cfg.architecture != self.arch_name:
            raise CheckpointError(f"--init-weights is a {cfg.architecture!r} checkpoint, not {self.arch_name!r}", path)
        load_into(self.model, read_tensors(path, "cpu"), path, self.arch_name)

    # ------------------------------------------------------------------ data
    def _rollout_network(self) -> tuple[torch.nn.Module | None, InitSpec | None, tuple[int, int]]:
        """The network whose passes move the rollout starts, the range of its fresh starts, and its passes."""
        if not self.opts.rollout:
            return None, None, (0, 0)
        if self.opts.rollout_from is None:
            return None, self.init, (1, 3)  # the network being trained, from this stage's range
        path = Path(self.opts.rollout_from)
        cfg = read_config(path)
        own = CheckpointConfig(self.arch_name, self.variant).input_options
        if cfg.variant != self.variant or cfg.input_options != own:
            raise InputError(f"--rollout-from is a {cfg.variant} network with inputs {cfg.input_options}; this run "
                             f"trains a {self.variant} network with inputs {own}", path,
                             "give a checkpoint of the same variant and input grid (e.g. this network's stage 1)")
        net, _ = load_checkpoint(path, self.device)
        for p in net.parameters():
            p.requires_grad_(False)
        return net, parse_init(cfg.init_range or "0-20mm")[0], (1, 1)

    def _batch(self, cases: list[CaseInput], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts, rolled = [], []
        for ci in cases:
            roll = bool(self.opts.rollout) and rng.random() < self.opts.rollout  # no draw without rollouts
            init = self.rollout_init if roll else self.init
            starts.append(draw_start(rng, ci.ground_truth, ci.surface_points, init.draw(rng)))
            rolled.append(roll)
        if any(rolled):
            starts = self._roll_out(cases, starts, rolled, rng)
        x = torch.cat([ci.inputs(start) for ci, start in zip(cases, starts, strict=True)])
        targets = [correction_target(ci.box, start, ci.ground_truth) for ci, start in zip(cases, starts, strict=True)]
        if self.opts.augment:
            x = augment_inputs(x, rng, self.variant == "label")
        return x, torch.tensor(np.stack(targets), dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def _roll_out(self, cases: list[CaseInput], starts: list[RigidTransform], rolled: list[bool],
                  rng: np.random.Generator) -> list[RigidTransform]:
        """Move the rolled samples' starts by the rollout network's passes (see the module docstring)."""
        net = self.rollout_net or self.model
        lo, hi = self.rollout_passes
        passes = {i: int(rng.integers(lo, hi + 1)) for i, r in enumerate(rolled) if r}
        limit = self.rollout_init.high
        starts = list(starts)
        was_training = net.training
        net.eval()
        try:
            for k in range(max(passes.values())):
                idx = [i for i, n in passes.items() if n > k]
                x = torch.cat([cases[i].inputs(starts[i]) for i in idx])
                with self._autocast():
                    params = net(x).float().cpu().numpy().astype(float)
                for j, i in enumerate(idx):
                    moved = apply_correction(cases[i].box, starts[i], params[j])
                    if float(np.atleast_1d(sre(moved, cases[i].ground_truth, cases[i].surface_points))[0]) <= limit:
                        starts[i] = moved
        finally:
            net.train(was_training)
        return starts

    def _autocast(self):
        if self.opts.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch (inputs ``x``, target parameters ``y``): the forward pass under autocast,
        MSE on the six parameters, backward, the optimiser's step. Returns the loss, detached."""
        with self._autocast():
            pred = self.net(x)
        loss = F.mse_loss(pred.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        by_case = {ci.case_id: ci for ci in self.val_inputs}
        sres, losses, groups = [], [], []
        for cid, ci in by_case.items():
            starts = [s for s in self.val_starts if s.case == cid]
            if not starts:
                continue
            t = RigidTransform.from_matrix(np.stack([s.transform.matrix for s in starts]))
            x = ci.inputs(t)
            with self._autocast():
                pred = torch.cat([self.model(x[i:i + 8]) for i in range(0, len(x), 8)]).float()
            target = torch.tensor(correction_target(ci.box, t, ci.ground_truth), dtype=torch.float32,
                                  device=pred.device)
            losses.append(F.mse_loss(pred, target, reduction="none").mean(1).cpu().numpy())
            est = apply_correction(ci.box, t, pred.cpu().numpy().astype(float))
            sres.append(np.atleast_1d(sre(est, ci.ground_truth, ci.surface_points)))
            groups += [ci.group] * len(starts)
        self.model.train()
        s = np.concatenate(sres)
        out = {"val_loss": float(np.concatenate(losses).mean()), "val_sre_mean": float(s.mean()),
               "val_sre_median": float(np.median(s))}
        groups = np.array(groups)
        for g in self.val_groups:
            out[f"val_sre_{g}"] = float(s[groups == g].mean())
        return out

    def _log(self, row: dict) -> None:
        if self.rank != 0:
            return
        self.state.history.append(row)
        path = self.out / "history.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.history_columns)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in self.history_columns})
        if self.tb is not None:
            for k in ("train_loss", "val_loss", "val_sre_mean", "lr"):
                if row.get(k) not in (None, ""):
                    self.tb.add_scalar(k, float(row[k]), row["step"])

    def _validate_and_keep_best(self, train_loss: float | None) -> dict:
        metrics = self.validate()
        row = {"epoch": self.state.epoch, "step": self.state.global_step, "samples": self.state.samples,
               "train_loss": "" if train_loss is None else round(train_loss, 5),
               "lr": self.optimizer.param_groups[0]["lr"],
               "elapsed_s": round(self.state.elapsed, 1), **{k: round(v, 4) for k, v in metrics.items()}}
        self._log(row)
        if metrics["val_sre_mean"] < self.state.best_val_sre:
            self.state.best_val_sre = metrics["val_sre_mean"]
            self.state.best_epoch = self.state.epoch
            if self.rank == 0:
                save_checkpoint(self.model, self._config(), self.out / "best")
        return metrics

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        opts = self.opts
        self.out.mkdir(parents=True, exist_ok=True)
        self.tb = None
        if self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tensorboard"))
            except ImportError:
                pass
        _, self.train_inputs, self.val_inputs = load_training_data(opts, self.variant, self.device)
        self.val_groups = validation_groups(self.val_inputs)
        self.history_columns = HISTORY_COLUMNS + [f"val_sre_{g}" for g in self.val_groups]
        val_path = self.out / "val_starts.csv"
        if val_path.exists():
            self.val_starts = read_starts(val_path)
            want = {ci.case_id for ci in self.val_inputs}
            got = {st.case for st in self.val_starts}
            inits = {st.init for st in self.val_starts}
            if got != want or inits != {self.init.label}:
                raise InputError(f"the run folder's validation starts ({sorted(inits)}, {len(got)} cases) do not match "
                                 f"this run ({self.init.label}, {len(want)} validation cases)", val_path,
                                 "use a new --out folder for a new stage or dataset")
        else:
            self.val_starts = make_starts(self.val_inputs, self.init, opts.val_starts,
                                          seed=opts.seed + 7919)
            if self.rank == 0:
                write_starts(self.val_starts, val_path)
        if self.rank == 0:
            self._write_options(opts)

        n_train = len(self.train_inputs)
        per_epoch = opts.samples_per_epoch or n_train
        global_batch = opts.batch_size * self.world
        steps_per_epoch = max(1, math.ceil(per_epoch / global_batch))
        total_steps = opts.epochs * steps_per_epoch
        t_val = 0.0
        if self.state.global_step == 0 and not self.state.history:
            t0 = time.perf_counter()
            self._validate_and_keep_best(None)  # the starting point of the curve
            t_val = time.perf_counter() - t0
        fit_after = None
        if opts.fit_epochs and opts.time_budget and self.state.fitted_epochs is None:
            fit_after = min(steps_per_epoch, FIT_AFTER_STEPS)

        self.model.train()
        t_process = time.perf_counter()  # the time budget counts this process only; `elapsed` sums all of them
        t_start = t_process - self.state.elapsed
        step_times: list[float] = []
        stop_reason = "epochs done"
        running = []
        bar = progress(total=total_steps, initial=self.state.global_step, desc=f"train {opts.method} s{opts.stage}",
                       unit="step", disable=not opts.show_progress or self.rank != 0)
        steps_this_process = 0
        last_metrics: dict = {}
        previous_term = None
        if threading.current_thread() is threading.main_thread():  # SIGTERM stops cleanly, like Ctrl-C
            previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while self.state.epoch < opts.epochs:
                order = epoch_order(n_train, steps_per_epoch * global_batch, opts.seed, self.state.epoch)
                while self.state.step_in_epoch < steps_per_epoch:
                    if self._should_stop(t_process, step_times, steps_this_process):
                        stop_reason = "time budget" if opts.time_budget else "max steps"
                        raise _Stop
                    t0 = time.perf_counter()
                    k = self.state.step_in_epoch
                    lo = k * global_batch + self.rank * opts.batch_size
                    cases = [self.train_inputs[i] for i in order[lo:lo + opts.batch_size]]
                    rng = np.random.default_rng([opts.seed, self.state.epoch, k, self.rank, 1])
                    loss = self.train_step(*self._batch(cases, rng))
                    running.append(float(loss))
                    self.state.step_in_epoch += 1
                    self.state.global_step += 1
                    self.state.samples += global_batch
                    steps_this_process += 1
                    step_times.append(time.perf_counter() - t0)
                    self.state.elapsed = time.perf_counter() - t_start
                    bar.update()
                    if fit_after is not None and steps_this_process == fit_after:
                        fit_after = None
                        self._fit_epochs(time.perf_counter() - t_process, step_times, steps_per_epoch, t_val)
                        total_steps = opts.epochs * steps_per_epoch
                        bar.total = total_steps
                    bar.set_postfix(loss=f"{np.mean(running[-20:]):.3g}",
                                    val_sre=f"{self.state.history[-1]['val_sre_mean'] if self.state.history else '?'}",
                                    lr=f"{self.optimizer.param_groups[0]['lr']:.2g}")
                self.state.epoch += 1
                self.state.step_in_epoch = 0
                self.scheduler.step()
                if self.state.epoch % opts.val_every == 0 or self.state.epoch == opts.epochs:
                    last_metrics = self._validate_and_keep_best(float(np.mean(running)) if running else None)
                    running = []
                self.state.elapsed = time.perf_counter() - t_start
                self.save_last()
        except (_Stop, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):
                stop_reason = "interrupted"
            self.state.elapsed = time.perf_counter() - t_start
            if running:
                last_metrics = self._validate_and_keep_best(float(np.mean(running)))
            self.save_last()
            if isinstance(exc, KeyboardInterrupt) and self.world == 1:
                bar.close()
                raise
        finally:
            bar.close()
            if self.tb is not None:
                self.tb.close()
            if previous_term is not None:
                signal.signal(signal.SIGTERM, previous_term)
        summary = {
            "method": opts.method, "stage": opts.stage, "stop_reason": stop_reason, "epochs": self.state.epoch,
            "steps": self.state.global_step, "samples": self.state.samples,
            "train_seconds": round(self.state.elapsed, 1),
            "seconds_per_step": float(np.median(step_times)) if step_times else None,
            "val_sre_start": float(self.state.history[0]["val_sre_mean"]) if self.state.history else None,
            "val_sre_last": last_metrics.get("val_sre_mean"), "best_val_sre": self.state.best_val_sre,
            "best_epoch": self.state.best_epoch, "epochs_planned": opts.epochs,
            "out": str(self.out), "world_size": self.world,
            "rank": self.rank,
        }
        if self.world > 1:
            summary["replica_max_abs_diff"] = replica_difference(self.model)
        if self.rank == 0:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _fit_epochs(self, used: float, step_times: list[float], steps_per_epoch: int, t_val: float) -> None:
        """Lower ``epochs`` to what the time budget holds at the measured step and validation times.

        Called once, in the first epoch, before the scheduler has stepped: the learning-rate schedule is rebuilt
        for the new count, so that it completes within the budget (the paper's milestones at 40/57/83 %).
        """
        opts = self.opts
        warm = step_times[2:] if len(step_times) > 4 else step_times
        per_step = float(np.median(warm))
        per_epoch = steps_per_epoch * per_step + t_val / opts.val_every
        done = len(step_times) * per_step
        fit = int(FIT_SAFETY * (opts.time_budget - used + done) / per_epoch)
        epochs = max(1, min(opts.epochs, fit))
        if self.world > 1:  # every rank must plan the same epochs
            import torch.distributed as dist

            t = torch.tensor([float(epochs)], device=self.device)
            dist.broadcast(t, 0)
            epochs = int(t.item())
        if epochs != opts.epochs:
            opts.epochs = epochs
            self.scheduler = make_scheduler(self.optimizer, self.arch.schedule, epochs)
        self.state.fitted_epochs = epochs
        if self.rank == 0:
            self._write_options(opts)
            print(f"fit epochs: {per_step * 1000:.1f} ms/step, {steps_per_epoch} steps/epoch, validation "
                  f"{t_val:.1f} s → {epochs} epochs in the {opts.time_budget:.0f} s budget", flush=True)

    def _should_stop(self, t_process: float, step_times: list[float], steps_done: int) -> bool:
        stop = False
        if self.opts.max_steps is not None and steps_done >= self.opts.max_steps:
            stop = True
        if self.opts.time_budget is not None:
            typical = float(np.median(step_times[-10:])) if step_times else 0.0
            stop = stop or (time.perf_counter() - t_process + typical > self.opts.time_budget)
        if self.world > 1:  # every rank must stop at the same step
            import torch.distributed as dist

            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop


class _Stop(Exception):
    pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def epoch_order(n_cases: int, count: int, seed: int, epoch: int) -> np.ndarray:
    """The training cases of one epoch: shuffled, every case before any repeats, ``count`` long."""
    rng = np.random.default_rng([seed, epoch])
    return np.concatenate([rng.permutation(n_cases) for _ in range(math.ceil(count / n_cases))])[:count]


def replica_difference(model: torch.nn.Module) -> float:
    """Largest absolute difference of any parameter between the DDP replicas (0 when they agree)."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return float(max((g - gathered[0]).abs().max() for g in gathered))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def train(opts: TrainOptions) -> dict:
    """Run a training (see the module docstring); returns the run summary."""
    return Trainer(opts).run()
