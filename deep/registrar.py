"""Deep registrars: a network (or a cascade of stage networks) plus checkpoints, behind the Registrar interface.

The registry's deep methods (:mod:`regkit.deep.methods`) are all this one class, constructed with the
declaration's architecture, fixed-input variant and bundled weights. Options: ``checkpoint`` (stage 1;
``"random"`` for an untrained network, to test pipelines), ``stage2`` (a second checkpoint: the cascade),
``stages`` (run only the first k stages), ``device`` (default: CUDA when present, else CPU), ``batch_size``,
``attention`` (``"fused"`` or ``"explicit"``). Each stage builds its input as its checkpoint says (grid,
crop-box enlargement, intensity normalisation).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from regkit.case import Case
from regkit.deep.checkpoint import CheckpointConfig, checkpoint_paths, load_checkpoint
from regkit.deep.correction import apply_correction
from regkit.deep.crop import CaseInput, percentiles
from regkit.deep.layers import ChannelsLast, flush_denormals, fold_batch_norms
from regkit.deep.methods import DEEP_CAPABILITIES, Architecture
from regkit.deep.networks import architecture as find_architecture
from regkit.deep.networks import build_network, parameter_count
from regkit.errors import ConfigurationError, InputError, check_whole
from regkit.registrar import RegistrarBase, RegistrationResult, Variant
from regkit.transform import RigidTransform

#: Arithmetic of inference: ``"auto"`` (bf16 on a CPU where it is native, else float32), ``"float32"``, ``"bf16"``.
Precision = Literal["auto", "float32", "bf16"]
#: The attention's implementation: torch's fused kernel, or the explicit ``softmax(QKᵀ)V`` (a reference).
AttentionImplementation = Literal["fused", "explicit"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 arithmetic is native on ``device``: a CPU with AMX or AVX-512 bf16 instructions (the flags of
    Linux's ``/proc/cpuinfo``). Elsewhere bf16 is emulated, slower than float32."""
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device from ``cpu``, ``cuda``, ``cuda:N`` (or None: CUDA when present, else the CPU), checked to exist
    here, with an :class:`InputError` that names it otherwise."""
    if device is None or device == "":
        return default_device()
    fix = "use cpu, cuda or cuda:N (N below the number of GPUs), or leave the device out to choose automatically"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r}", fix=fix) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for, but CUDA is not available here", fix=fix)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)",
                             fix=fix)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} asked for, but MPS is not available here", fix=fix)
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {device!r} is not supported by regkit", fix=fix)
    return dev


def _check_inference_options(stages, batch_size, attention) -> None:
    """Range checks of a deep registrar's options (their types are checked by the registry)."""
    from regkit.deep.attention import ATTENTION_IMPLEMENTATIONS

    check_whole("stages", stages, 1, optional=True, fix="stages=1 runs stage 1 alone; leave it out to run every stage")
    check_whole("batch_size", batch_size, 1, fix="e.g. 16")
    if attention not in ATTENTION_IMPLEMENTATIONS:
        raise InputError(f"unknown attention implementation {attention!r}",
                         fix=f"use one of {', '.join(ATTENTION_IMPLEMENTATIONS)}")


def bundled_checkpoints(weights: Sequence[str | Path]) -> list[Path]:
    """The declared bundled checkpoints that exist, in stage order (stopping at the first missing stage)."""
    out = []
    for stem in weights:
        p, _ = checkpoint_paths(stem)
        if not p.exists():
            break
        out.append(p)
    return out


class DeepRegistrar(RegistrarBase):
    """A network, or a cascade of networks, that predicts rigid corrections (see :mod:`regkit.deep.correction`).

    Parameters
    ----------
    architecture : str
        ``attention_reg``, ``feature_reg``, ``msreg``, ``dvnet``, or ``"module:attribute"`` of a plug-in's
        :class:`~regkit.deep.methods.Architecture`.
    variant : {"image", "label"}
        Fixed channel: MR image or MR prostate label.
    checkpoint : path, "random" or None
        Stage-1 weights. None: the bundled ``weights``.
    stage2 : path, optional
        Stage-2 weights; stage 2 runs on the TRUS resampled again under stage 1's result.
    stages : int, optional
        Run only the first ``stages`` stages.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` [CUDA when present].
    batch_size : int
        Starts registered per forward pass.
    attention : {"fused", "explicit"}
        The attention's implementation: torch's fused kernel, or the explicit formula (a reference; slower).
    name : str
        The registry name (set by the declaration).
    weights : sequence of paths
        The bundled checkpoints, in stage order (set by the declaration).
    precision : {"auto", "float32", "bf16"}
        Arithmetic of inference. ``"bf16"`` runs the networks under bf16 autocast, the attention included
        (faster on CPUs with AMX or AVX-512 bf16; SREs move by hundredths of a millimetre, see BENCHMARKS.md).
        ``"auto"``: bf16 on a CPU where it is native (:func:`native_bf16`), float32 otherwise (and on GPUs).
        A result's ``info["precision"]`` says which ran.

    Notes
    -----
    Inference folds each batch norm into the convolution before it and keeps 3-D tensors channels-last
    (same results, faster on the CPU).
    """

    capabilities = DEEP_CAPABILITIES

    def __init__(self, architecture: str | Architecture = "attention_reg", variant: Variant = "image",
                 checkpoint: str | Path | None = None, stage2: str | Path | None = None, stages: int | None = None,
                 device: str | None = None, batch_size: int = 16, attention: AttentionImplementation = "fused",
                 name: str = "deep", weights: Sequence[str | Path] = (), precision: Precision = "auto"):
        flush_denormals()
        settings = self.check_options(architecture=architecture, variant=variant, checkpoint=checkpoint,
                                      stage2=stage2, stages=stages, device=device, batch_size=batch_size,
                                      attention=attention, name=name, weights=weights, precision=precision)
        self.name = name
        self.arch = find_architecture(architecture)
        self.architecture = self.arch.name
        self.variant = variant
        self.device = settings["device"]
        if precision == "auto":
            precision = "bf16" if native_bf16(self.device) else "float32"
        self.precision = precision
        self.batch_size = int(batch_size)
        self.networks: list[torch.nn.Module] = []
        self.configs: list[CheckpointConfig] = []
        paths = settings["paths"]
        for p in paths:
            if p == "random":
                with torch.random.fork_rng(devices=[]):  # reproducible, without resetting the caller's stream
                    torch.manual_seed(0)
                    net = build_network(self.arch, attention).to(self.device).eval()
                cfg = CheckpointConfig(self.architecture, variant, parameter_count=parameter_count(self.arch),
                                       training={"note": "random initialisation"})
            else:
                net, cfg = load_checkpoint(p, self.device, expect_architecture=self.arch, attention=attention)
                if cfg.variant != variant:
                    raise InputError(f"checkpoint {p} was trained with the {cfg.variant} variant, not {variant}",
                                     p, f"use the {cfg.variant} registrar or a {variant} checkpoint")
            percentiles(cfg.normalization)  # an unknown normalisation is an error now, not at the first sample
            fold_batch_norms(net.eval())
            if isinstance(net, ChannelsLast):
                net.set_channels_last(net.channels_last)
            for m in net.modules():
                if hasattr(m, "float32_attention"):
                    m.float32_attention = precision == "float32"
            self.networks.append(net)
            self.configs.append(cfg)

    @staticmethod
    def check_options(*, architecture, variant, checkpoint, stage2, stages, device, batch_size, attention, name,
                      weights, precision) -> dict:
        """Every option's value checked before any network is built (the registry calls this before constructing,
        the constructor too): ``{"device": torch device, "paths": stage checkpoints}``, or an
        :class:`~regkit.errors.InputError` naming the first bad option."""
        if variant not in ("image", "label"):
            raise InputError(f"unknown fixed-input variant {variant!r}; use 'image' or 'label'")
        if precision not in ("auto", "float32", "bf16"):
            raise InputError(f"unknown precision {precision!r}", fix="use 'auto', 'float32' or 'bf16'")
        find_architecture(architecture)
        _check_inference_options(stages, batch_size, attention)
        device = resolve_device(device)
        for option, value in (("checkpoint", checkpoint), ("stage2", stage2)):
            files = checkpoint_paths(value) if value is not None and str(value) != "random" else ()
            if files and not any(f.exists() for f in files):
                raise InputError(f"option {option}={str(value)!r}: no checkpoint here (neither {files[0].name} nor "
                                 f"{files[1].name} exists)", fix="name a checkpoint by its .safetensors, its .json or "
                                 "their common stem (e.g. runs/attreg/best)")
        if checkpoint is None:
            paths = bundled_checkpoints(weights)
            if not paths:
                raise InputError(
                    f"registrar {name!r} has no bundled weights, so it needs checkpoint=PATH",
                    fix=f"train one with `regkit train --method {name} ...` and pass --checkpoint (or checkpoint=) "
                        "to use it")
        elif str(checkpoint) == "random":
            paths = ["random"]
        else:
            paths = [Path(checkpoint)]
        if stage2 is not None:
            paths = [*paths[:1], Path(stage2)]
        if stages is not None:
            if stages > len(paths):
                raise InputError(f"stages={stages}, but registrar {name!r} has {len(paths)} stage checkpoint(s)",
                                 fix="give stage2=PATH for a second stage, or fewer stages")
            paths = paths[: int(stages)]
        return {"device": device, "paths": paths}

    @property
    def ran_with(self) -> dict:
        """What this registrar runs with, its ``"auto"`` settings resolved: recorded in a comparison's run.json."""
        return {"precision": self.precision, "device": str(self.device)}

    @classmethod
    def parameter_count(cls, architecture: str | Architecture = "attention_reg", **_) -> int:
        """The registry's hook (:func:`regkit.registry.parameter_count`): the parameters of one stage's network,
        counted by :func:`regkit.deep.networks.parameter_count` (as the paper's Table 2 counts them)."""
        return parameter_count(architecture)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, network: torch.nn.Module, inputs: torch.Tensor, fixed: torch.Tensor | None = None
                ) -> np.ndarray:
        """Six parameters for a batch of inputs (N, 2, D, H, W), in chunks of ``batch_size``.

        ``fixed``: the fixed channel (D, H, W) that every input shares (the starts of one case). A network with
        an ``encode_fixed`` method (Attention-Reg, Feature-Reg) then runs its fixed branch once, not per input.
        """
        encode = getattr(network, "encode_fixed", None) if fixed is not None else None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            shared = {} if encode is None else {"fixed_features": encode(fixed[None, None])}
            out = [network(inputs[i:i + self.batch_size], **shared).float().cpu()
                   for i in range(0, len(inputs), self.batch_size)]
        return torch.cat(out).numpy().astype(float)

    def run_stages(self, case: Case, starts: RigidTransform) -> list[RigidTransform]:
        """The estimate after each stage, for a batch of starts of one case."""
        inputs: dict[tuple, CaseInput] = {}
        estimate = starts
        out = []
        for net, cfg in zip(self.networks, self.configs, strict=True):
            key = tuple(cfg.input_options.values())
            if key not in inputs:
                inputs[key] = CaseInput(case, self.variant, self.device, **cfg.input_options)
            case_input = inputs[key]
            params = self.predict(net, case_input.inputs(estimate), case_input.fixed)
            estimate = apply_correction(case_input.box, estimate, params)
            out.append(estimate)
        return out

    def register(self, case: Case, initial: RigidTransform) -> RegistrationResult:
        return self.register_many([(case, initial)])[0]

    def register_many(self, pairs: Sequence[tuple[Case, RigidTransform]]) -> list[RegistrationResult]:
        """Register many (case, start) pairs, batching the starts of each case."""
        results: list[RegistrationResult | None] = [None] * len(pairs)
        groups: dict[int, list[int]] = {}
        for i, (case, _) in enumerate(pairs):
            groups.setdefault(id(case), []).append(i)
        for idx in groups.values():
            case = pairs[idx[0]][0]
            starts = RigidTransform.from_matrix(np.stack([pairs[i][1].matrix for i in idx]))
            t0 = time.perf_counter()
            try:
                stages = self.run_stages(case, starts)
            except ConfigurationError:  # not this case's failure: the registrar cannot run at all
                raise
            except Exception as exc:  # one bad case must not stop the others
                dt = (time.perf_counter() - t0) / len(idx)
                for i in idx:
                    results[i] = RegistrationResult.failure(pairs[i][1], dt, f"{type(exc).__name__}: {exc}",
                                                            traceback=traceback.format_exc(limit=6))
                continue
            dt = (time.perf_counter() - t0) / len(idx)
            for k, i in enumerate(idx):
                results[i] = RegistrationResult(
                    transform=stages[-1][k], runtime=dt,
                    info={"stage_transforms": [s[k] for s in stages], "batch": len(idx), "precision": self.precision})
        return results

