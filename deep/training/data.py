"""The data of a training run: the training and validation cases as network inputs, the validation groups and
starts, the order of an epoch's cases, and the on-the-fly intensity augmentation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from regkit.deep.crop import CaseInput
from regkit.deep.training.options import TrainOptions
from regkit.errors import InputError
from regkit.progress import progress
from regkit.starts import InitSpec, Start, make_starts, read_starts, write_starts


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


def validation_starts(path: Path, val_inputs: list[CaseInput], init: InitSpec, count: int, seed: int,
                      write: bool) -> list[Start]:
    """The run's fixed validation starts: ``count`` per validation case, drawn once and kept in ``path``
    (``val_starts.csv``; written when ``write``), or read back from it when the run folder has them.

    A run folder's starts must be of this run's validation cases and range (else :class:`InputError`).
    """
    if not path.exists():
        starts = make_starts(val_inputs, init, count, seed=seed)
        if write:
            write_starts(starts, path)
        return starts
    starts = read_starts(path)
    want = {ci.case_id for ci in val_inputs}
    got = {st.case for st in starts}
    inits = {st.init for st in starts}
    if got != want or inits != {init.label}:
        raise InputError(f"the run folder's validation starts ({sorted(inits)}, {len(got)} cases) do not match "
                         f"this run ({init.label}, {len(want)} validation cases)", path,
                         "use a new --out folder for a new stage or dataset")
    return starts


def epoch_order(n_cases: int, count: int, seed: int, epoch: int) -> np.ndarray:
    """The training cases of one epoch: shuffled, every case before any repeats, ``count`` long."""
    rng = np.random.default_rng([seed, epoch])
    return np.concatenate([rng.permutation(n_cases) for _ in range(math.ceil(count / n_cases))])[:count]


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

