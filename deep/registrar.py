"""Deep registrars: a network (or a cascade of stage networks) plus checkpoints, behind the Registrar interface.

Registry names (the fixed channel is the MR image unless the name ends in ``-label``):

=================  ==================  =====================================================================
name               network             weights when no checkpoint is given
=================  ==================  =====================================================================
``attreg``         Attention-Reg       bundled stage 1 + stage 2 (the paper's two-stage cascade)
``attreg-label``   Attention-Reg       bundled stage 1 + stage 2
``featreg``        Feature-Reg         bundled stage 1
``featreg-label``  Feature-Reg         bundled stage 1 when present
``msreg``          MSReg               none: pass ``checkpoint=``
``dvnet``          DVNet               none: pass ``checkpoint=``
=================  ==================  =====================================================================

Options: ``checkpoint`` (stage 1; ``"random"`` for an untrained network, to test pipelines), ``stage2``
(a second checkpoint: the cascade), ``stages`` (run only the first k stages), ``device`` (default: CUDA when
present, else CPU), ``batch_size``, ``attention`` (``"fused"`` or ``"explicit"``).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from deep.checkpoint import CheckpointConfig, load_checkpoint
from deep.correction import apply_correction
from deep.crop import CaseInput
from deep.networks import build_network, parameter_count
from regkit.case import Case
from regkit.errors import InputError
from regkit.registrar import RegistrarBase, RegistrationResult
from regkit.transform import RigidTransform

WEIGHTS_DIR = Path(__file__).parent / "weights"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bundled_checkpoints(name: str) -> list[Path]:
    """The bundled stage checkpoints of a registry name, in stage order (may be empty)."""
    out = []
    for stage in (1, 2):
        p = WEIGHTS_DIR / f"{name}-stage{stage}.safetensors"
        if p.exists():
            out.append(p)
        else:
            break
    return out


class DeepRegistrar(RegistrarBase):
    """A network, or a cascade of networks, that predicts rigid corrections (see :mod:`deep.correction`).

    Parameters
    ----------
    architecture : str
        ``attention_reg``, ``feature_reg``, ``msreg`` or ``dvnet``.
    variant : {"image", "label"}
        Fixed channel: MR image or MR prostate label.
    checkpoint : path, "random" or None
        Stage-1 weights. None: the bundled weights of ``bundled_name``.
    stage2 : path, optional
        Stage-2 weights; stage 2 runs on the TRUS resampled again under stage 1's result.
    stages : int, optional
        Run only the first ``stages`` stages.
    """

    kind = "deep"
    name = "deep"
    summary = "a deep rigid registration network"
    default_architecture: ClassVar[str] = "attention_reg"

    def __init__(self, architecture: str = "attention_reg", variant: str = "image",
                 checkpoint: str | Path | None = None, stage2: str | Path | None = None, stages: int | None = None,
                 device: str | None = None, batch_size: int = 16, attention: str = "fused",
                 bundled_name: str | None = None):
        if variant not in ("image", "label"):
            raise InputError(f"unknown fixed-input variant {variant!r}; use 'image' or 'label'")
        self.architecture = architecture
        self.variant = variant
        self.device = torch.device(device) if device else default_device()
        self.batch_size = int(batch_size)
        self.networks: list[torch.nn.Module] = []
        self.configs: list[CheckpointConfig] = []
        if checkpoint is None:
            paths = bundled_checkpoints(bundled_name or self.name)
            if not paths:
                raise InputError(
                    f"registrar {self.name!r} has no bundled weights, so it needs checkpoint=PATH",
                    fix="train one with `regkit train --method "
                        f"{bundled_name or self.name} ...` and pass --checkpoint (or checkpoint=) to use it")
        elif str(checkpoint) == "random":
            paths = ["random"]
        else:
            paths = [Path(checkpoint)]
        if stage2 is not None:
            paths = [*paths[:1], Path(stage2)]
        if stages is not None:
            paths = paths[: int(stages)]
        for p in paths:
            if p == "random":
                with torch.random.fork_rng(devices=[]):  # reproducible, without resetting the caller's stream
                    torch.manual_seed(0)
                    net = build_network(architecture, attention).to(self.device).eval()
                cfg = CheckpointConfig(architecture, variant, parameter_count=parameter_count(architecture),
                                       training={"note": "random initialisation"})
            else:
                net, cfg = load_checkpoint(p, self.device, expect_architecture=architecture, attention=attention)
                if cfg.variant != variant:
                    raise InputError(f"checkpoint {p} was trained with the {cfg.variant} variant, not {variant}",
                                     p, f"use the {cfg.variant} registrar or a {variant} checkpoint")
            self.networks.append(net)
            self.configs.append(cfg)

    @classmethod
    def parameter_count(cls) -> int:
        """Parameters of one stage's network, as the paper's Table 2 counts them."""
        return parameter_count(cls.default_architecture)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, network: torch.nn.Module, inputs: torch.Tensor) -> np.ndarray:
        """Six parameters for a batch of inputs (N, 2, D, H, W), in chunks of ``batch_size``."""
        out = [network(inputs[i:i + self.batch_size]).float().cpu() for i in range(0, len(inputs), self.batch_size)]
        return torch.cat(out).numpy().astype(float)

    def run_stages(self, case_input: CaseInput, starts: RigidTransform) -> list[RigidTransform]:
        """The estimate after each stage, for a batch of starts of one case."""
        estimate = starts
        out = []
        for net in self.networks:
            params = self.predict(net, case_input.inputs(estimate))
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
                stages = self.run_stages(CaseInput(case, self.variant, self.device), starts)
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
                    info={"stage_transforms": [s[k] for s in stages], "batch": len(idx)})
        return results


def _named(reg_name: str, arch: str, variant: str, summary: str):
    class Named(DeepRegistrar):
        name = reg_name
        default_architecture = arch

        def __init__(self, **options):
            super().__init__(arch, variant, bundled_name=reg_name, **options)

    Named.summary = summary
    Named.__name__ = Named.__qualname__ = "".join(w.capitalize() for w in reg_name.replace("-", "_").split("_"))
    return Named


AttRegImage = _named("attreg", "attention_reg", "image", "Attention-Reg (image), two-stage cascade")
AttRegLabel = _named("attreg-label", "attention_reg", "label", "Attention-Reg (label), two-stage cascade")
FeatRegImage = _named("featreg", "feature_reg", "image", "Feature-Reg (image): Attention-Reg without attention")
FeatRegLabel = _named("featreg-label", "feature_reg", "label", "Feature-Reg (label): Attention-Reg without attention")
MSRegImage = _named("msreg", "msreg", "image", "MSReg: 3-D ResNeXt, cardinality 16")
DVNetImage = _named("dvnet", "dvnet", "image", "DVNet-style 2-D CNN over slices (regkit's design)")

__all__ = ["AttRegImage", "AttRegLabel", "DVNetImage", "DeepRegistrar", "FeatRegImage", "FeatRegLabel",
           "MSRegImage", "bundled_checkpoints"]
