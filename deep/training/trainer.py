"""The trainer: one training run's loop (see :mod:`regkit.deep.training` for the recipe)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from regkit.deep.checkpoint import (
    CheckpointConfig,
    load_into,
    read_config,
    read_tensors,
    save_checkpoint,
)
from regkit.deep.correction import apply_correction, correction_target
from regkit.deep.crop import CaseInput
from regkit.deep.layers import flush_denormals
from regkit.deep.networks import architecture, build_network, parameter_count
from regkit.deep.training.budget import FIT_AFTER_STEPS, fitted_epochs, out_of_budget
from regkit.deep.training.data import (
    augment_inputs,
    epoch_order,
    load_training_data,
    validation_groups,
    validation_starts,
)
from regkit.deep.training.options import TrainOptions, trainable_declaration
from regkit.deep.training.rollout import roll_out, rollout_network
from regkit.deep.training.state import TrainState, jsonable, restore_training_state, save_training_state
from regkit.errors import CheckpointError, InputError
from regkit.progress import progress
from regkit.sre import sre
from regkit.starts import InitSpec, draw_start, parse_init
from regkit.transform import RigidTransform

HISTORY_COLUMNS = ["epoch", "step", "samples", "train_loss", "val_loss", "val_sre_mean", "val_sre_median", "lr",
                   "elapsed_s"]


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


class Trainer:
    """One training run (the recipe: :mod:`regkit.deep.training`)."""

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
        self.rollout_net, self.rollout_init, self.rollout_passes = rollout_network(
            self.opts.rollout, self.opts.rollout_from, self.init, self.arch_name, self.variant, self.device)
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

    def save_last(self) -> None:
        if self.rank == 0:
            save_training_state(self.out / "last", self.model, self._config(), self.optimizer, self.scheduler,
                                self.state, self.opts)

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
        self.state = restore_training_state(path, cfg, self.model, self.optimizer, self.scheduler, self.device)
        if self.state.fitted_epochs:
            self.opts.epochs = self.state.fitted_epochs
        hist = self.out / "history.csv"
        if hist.exists():
            with open(hist) as fh:
                self.state.history = list(csv.DictReader(fh))

    def _write_options(self, opts: TrainOptions) -> None:
        """``options.json``: the run's options as they stand (a fitted epoch count included)."""
        (self.out / "options.json").write_text(json.dumps(jsonable(asdict(opts)), indent=2) + "\n")

    def _load_init_weights(self, path: Path) -> None:
        cfg = read_config(path)
        if cfg.architecture != self.arch_name:
            raise CheckpointError(f"--init-weights is a {cfg.architecture!r} checkpoint, not {self.arch_name!r}", path)
        load_into(self.model, read_tensors(path, "cpu"), path, self.arch_name)

    # ------------------------------------------------------------------ steps
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

    def _roll_out(self, cases: list[CaseInput], starts: list[RigidTransform], rolled: list[bool],
                  rng: np.random.Generator) -> list[RigidTransform]:
        """Move the rolled samples' starts by the rollout network's passes (:mod:`~regkit.deep.training.rollout`)."""
        return roll_out(self.rollout_net or self.model, cases, starts, rolled, rng, self.rollout_passes,
                        self.rollout_init.high, self._autocast)

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
        self.tb = self._tensorboard()
        _, self.train_inputs, self.val_inputs = load_training_data(opts, self.variant, self.device)
        self.val_groups = validation_groups(self.val_inputs)
        self.history_columns = HISTORY_COLUMNS + [f"val_sre_{g}" for g in self.val_groups]
        self.val_starts = validation_starts(self.out / "val_starts.csv", self.val_inputs, self.init, opts.val_starts,
                                            opts.seed + 7919, write=self.rank == 0)
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
        return self._summary(stop_reason, step_times, last_metrics)

    def _tensorboard(self):
        """A TensorBoard writer on rank 0 where TensorBoard is installed, else None."""
        if self.rank != 0:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def _summary(self, stop_reason: str, step_times: list[float], last_metrics: dict) -> dict:
        """The run's summary (``summary.json``, written by rank 0)."""
        opts = self.opts
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
        epochs, per_step = fitted_epochs(opts.time_budget, used, step_times, steps_per_epoch, t_val,
                                         opts.val_every, opts.epochs)
        epochs = int(self._from_rank0(epochs))  # every rank must plan the same epochs
        if epochs != opts.epochs:
            opts.epochs = epochs
            self.scheduler = make_scheduler(self.optimizer, self.arch.schedule, epochs)
        self.state.fitted_epochs = epochs
        if self.rank == 0:
            self._write_options(opts)
            print(f"fit epochs: {per_step * 1000:.1f} ms/step, {steps_per_epoch} steps/epoch, validation "
                  f"{t_val:.1f} s → {epochs} epochs in the {opts.time_budget:.0f} s budget", flush=True)

    def _should_stop(self, t_process: float, step_times: list[float], steps_done: int) -> bool:
        stop = out_of_budget(time.perf_counter() - t_process, step_times, steps_done, self.opts.max_steps,
                             self.opts.time_budget)
        return bool(self._from_rank0(1.0 if stop else 0.0))  # every rank must stop at the same step

    def _from_rank0(self, value: float) -> float:
        """Rank 0's ``value``, on every rank (``value`` itself in a single process)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([float(value)], device=self.device)
        dist.broadcast(t, 0)
        return t.item()


class _Stop(Exception):
    pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def replica_difference(model: torch.nn.Module) -> float:
    """Largest absolute difference of any parameter between the DDP replicas (0 when they agree)."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return float(max((g - gathered[0]).abs().max() for g in gathered))


def train(opts: TrainOptions) -> dict:
    """Run a training (the recipe: :mod:`regkit.deep.training`); returns the run summary."""
    return Trainer(opts).run()
