"""Checkpoints: weights as safetensors, with a JSON config beside them.

``name.safetensors`` holds the tensors (never pickled, so loading a downloaded file runs no code);
``name.json`` holds the architecture, the fixed-input variant, the input grid and normalisation, the stage, and
the training provenance. Either file's path (or the common stem) names the checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from regkit.atomic import atomic_path
from regkit.deep.crop import ENLARGE, INPUT_SHAPE, NORMALIZATION
from regkit.deep.methods import Architecture
from regkit.deep.networks import architecture, build_network
from regkit.errors import CheckpointError
from regkit.records import is_json_type, read_json

FORMAT = 1
CONFIG_FIELDS = {"architecture": str, "variant": str, "stage": int, "init_range": str, "input_shape": list,
                 "enlarge": float, "normalization": str, "correction": str, "parameter_count": int, "dtype": str,
                 "training": dict, "regkit_checkpoint": int}  # the JSON type of each CheckpointConfig field


@dataclass
class CheckpointConfig:
    architecture: str
    variant: str  # "image" or "label": the fixed channel
    stage: int = 1
    init_range: str = "0-20mm"
    input_shape: tuple[int, int, int] = INPUT_SHAPE
    enlarge: float = ENLARGE
    normalization: str = NORMALIZATION  # per channel; a label channel is 0/1
    correction: str = "T_new = T o C^-1, C in the crop-box frame about the box centre (regkit.deep.correction)"
    parameter_count: int = 0
    dtype: str = "float32"
    training: dict = field(default_factory=dict)
    regkit_checkpoint: int = FORMAT

    @property
    def input_options(self) -> dict:
        """How to build this network's input (:class:`~regkit.deep.crop.CaseInput` keyword arguments)."""
        return {"shape": tuple(self.input_shape), "enlarge": float(self.enlarge), "normalization": self.normalization}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) paths of a checkpoint named by either file or their common stem."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(model: nn.Module, config: CheckpointConfig, path: str | Path,
                    dtype: torch.dtype = torch.float32, extra_tensors: dict[str, torch.Tensor] | None = None,
                    skip_unused: bool = False) -> Path:
    """Write ``path.safetensors`` and ``path.json`` atomically; returns the weights path.

    ``skip_unused`` leaves out the parameters the forward pass never uses (``unused.*``, MSReg's).
    """
    from safetensors.torch import save_file

    weights, cfg_path = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # DistributedDataParallel
    state = {}
    for k, v in model.state_dict().items():
        if skip_unused and k.startswith(UNUSED_PREFIX):
            continue
        v = v.detach().cpu()
        state[k] = v.to(dtype).contiguous() if v.is_floating_point() else v.contiguous()
    for k, v in (extra_tensors or {}).items():
        state[k] = v.detach().cpu().contiguous()
    config.dtype = str(dtype).removeprefix("torch.")
    with atomic_path(weights) as tmp_w, atomic_path(cfg_path) as tmp_c:
        save_file(state, str(tmp_w), metadata={"architecture": config.architecture, "variant": config.variant})
        tmp_c.write_text(config.to_json())
    return weights


def read_config(path: str | Path) -> CheckpointConfig:
    weights, cfg_path = checkpoint_paths(path)
    if not cfg_path.exists() and not weights.exists():
        raise CheckpointError(f"no checkpoint here (neither {weights.name} nor {cfg_path.name} exists)", path,
                              "name a checkpoint by its .safetensors, its .json or their common stem")
    if not cfg_path.exists():
        raise CheckpointError("the checkpoint has no JSON config beside its weights", cfg_path,
                              "keep name.json next to name.safetensors")
    doc = read_json(cfg_path, "checkpoint config", CONFIG_FIELDS, required=("architecture", "variant"),
                    version_key="regkit_checkpoint", version=FORMAT, version_required=True, error=CheckpointError,
                    fix="give the .json that was saved with these weights (regkit writes it beside them)")
    shape = doc.get("input_shape", INPUT_SHAPE)
    if len(shape) != 3 or not all(is_json_type(v, int) and v >= 1 for v in shape):
        raise CheckpointError(f"the checkpoint config's 'input_shape' must be 3 whole numbers ≥ 1, got {shape!r}",
                              cfg_path, "give the .json that was saved with these weights")
    doc["input_shape"] = tuple(shape)
    known = CheckpointConfig.__dataclass_fields__
    return CheckpointConfig(**{k: v for k, v in doc.items() if k in known})


def read_tensors(path: str | Path, device="cpu") -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, _ = checkpoint_paths(path)
    if not weights.exists():
        raise CheckpointError("the checkpoint weights file does not exist", weights)
    try:
        return load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"the weights file is damaged or not safetensors ({exc})", weights,
                              "re-download or re-train it; regkit never unpickles .pt/.pth files") from None


# parameters a network registers but never uses in its forward pass (MSReg's, kept for the paper's count):
# bundled weights may leave them out, and they then keep their initial values
UNUSED_PREFIX = "unused."


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path, arch: str) -> None:
    """Load a state dict strictly, turning mismatches into a clear error."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors and not k.startswith(UNUSED_PREFIX)]
    unexpected = [k for k in tensors if k not in own and not k.startswith("_train.")]
    wrong = [k for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label} {keys[:3]}{'…' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise CheckpointError(f"the weights do not fit architecture {arch!r} ({detail})", source,
                              "give a checkpoint trained for this registrar (see its JSON 'architecture')")
    model.load_state_dict({k: tensors[k].to(own[k].dtype) if k in tensors else own[k] for k in own})


def load_checkpoint(path: str | Path, device="cpu", expect_architecture: str | Architecture | None = None,
                    attention: str = "fused") -> tuple[nn.Module, CheckpointConfig]:
    """Build the network a checkpoint describes and load its weights (eval mode, float32).

    With ``expect_architecture`` the checkpoint must be of that network, which is then built (so that a
    network declared only in this process loads too).
    """
    weights, _ = checkpoint_paths(path)
    config = read_config(path)
    if expect_architecture is None:
        arch = architecture(config.architecture)
    else:
        arch = architecture(expect_architecture)
        if config.architecture != arch.name:
            raise CheckpointError(f"the checkpoint is for {config.architecture!r}, not {arch.name!r}", weights,
                                  "pass a checkpoint of the matching architecture, or use the registrar for "
                                  f"{config.architecture!r}")
    model = build_network(arch, attention)
    load_into(model, read_tensors(path, device), weights, arch.name)
    return model.to(device).eval(), config


def export_checkpoint(src: str | Path, dst: str | Path, dtype: torch.dtype = torch.float16,
                      note: str | None = None) -> Path:
    """Copy a checkpoint's weights (without training state) to ``dst``, cast to ``dtype`` (for bundling).

    Parameters the forward pass never uses are left out (they keep their initial values when loaded).
    """
    model, config = load_checkpoint(src)
    config.training.pop("resume", None)
    if note:
        config.training["note"] = note
    if any(k.startswith(UNUSED_PREFIX) for k in model.state_dict()):
        config.training["omitted"] = "parameters the forward pass never uses (unused.*): they load at their " \
                                     "initial values"
    return save_checkpoint(model, config, dst, dtype=dtype, skip_unused=True)
