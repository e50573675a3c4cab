"""Writing synthetic datasets in regkit's layout, in parallel and resumably."""

from __future__ import annotations

import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from regkit.dataset import SPLITS, load_dataset, read_case_metadata, write_case, write_manifest
from regkit.errors import InputError
from regkit.image import IMAGE_SUFFIXES, image_suffix, read_image
from regkit.progress import progress

LABEL_TAGS = ("gland", "label", "mask", "seg")


SMALL = 10  # below this many cases a dataset is for evaluation only


def split_sizes(n: int, val: float = 0.15, test: float = 0.15) -> dict[str, int]:
    """Train/val/test counts for ``n`` cases.

    Fewer than 10 cases are too few to train on, and a held-out split of one or two of them would allow no
    case-level statistics, so they all go to ``test`` (what ``regkit compare`` evaluates). From 10 cases on,
    about 70/15/15, with at least one validation case and two test cases.
    """
    if n < 1:
        raise InputError(f"need at least 1 case, got {n}")
    if n < SMALL:
        return {"train": 0, "val": 0, "test": n}
    n_val = max(1, round(val * n))
    n_test = max(2, round(test * n))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def default_splits(n: int, sizes: dict[str, int] | None = None) -> dict[str, list[str]]:
    """Case ids ``case000``... laid into train, val and test in that order (``sizes`` or :func:`split_sizes`)."""
    sizes = sizes or split_sizes(n)
    if sum(sizes.get(k, 0) for k in SPLITS) != n or any(v < 0 for v in sizes.values()):
        raise InputError(f"split sizes {sizes} do not add up to {n} cases",
                         fix="give three counts TRAIN,VAL,TEST that sum to --cases, e.g. 6,2,2 for 10")
    ids = [f"case{i:03d}" for i in range(n)]
    out, k = {}, 0
    for split in SPLITS:
        out[split] = ids[k:k + sizes.get(split, 0)]
        k += sizes.get(split, 0)
    return out


def find_mr_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """(MR, label) pairs in a folder: ``<name>_t2.*`` (or ``<name>.*``) with ``<name>_gland|label|mask|seg.*``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("the MR folder does not exist", folder)
    images = {p.name[: -len(image_suffix(p))]: p for p in folder.iterdir() if image_suffix(p) in IMAGE_SUFFIXES}
    pairs = []
    for stem, path in sorted(images.items()):
        m = re.match(rf"^(.*)_({'|'.join(LABEL_TAGS)})$", stem)
        if m:
            continue
        base = re.sub(r"_t2w?$", "", stem)
        label = next((images[f"{base}_{tag}"] for tag in LABEL_TAGS if f"{base}_{tag}" in images), None)
        if label is not None:
            pairs.append((path, label))
    if not pairs:
        raise InputError("no (MR, label) pairs found", folder,
                         "name them <case>_t2.nii.gz and <case>_gland.nii.gz (or _label/_mask/_seg)")
    return pairs


def _make_one(args) -> str:
    out, case_id, seed, index, mr_pair, randomise = args
    from regkit.synth.phantom import synth_case, synth_case_from_mr

    if mr_pair is None:
        case = synth_case(seed, index, case_id=case_id, randomise=randomise)
    else:
        mr, label = (read_image(p, what) for p, what in zip(mr_pair, ("MR image", "MR label"), strict=True))
        case = synth_case_from_mr(mr, label, seed, index, case_id=case_id, randomise=randomise)
        case.metadata["source_mr"] = str(mr_pair[0])
    write_case(case, Path(out) / case_id)
    return case_id


def _check_kept_case(folder: Path, seed: int, index: int, source_mr: Path | None, randomised: bool = False) -> None:
    """A case kept from an earlier run must be the one this run would make: same seed, index, source MR and
    mode (randomised or not)."""
    try:
        meta = read_case_metadata(folder / "case.json")
    except InputError:
        meta = {}
    if meta.get("generator") != "regkit.synth":
        raise InputError("the output folder holds a case that regkit synth did not make", folder,
                         "give a new --out folder for a synthetic dataset")
    made_mr = meta.get("source_mr")
    made = (meta.get("seed"), meta.get("index"), Path(made_mr).name if made_mr else None)
    wanted = (seed, index, Path(source_mr).name if source_mr is not None else None)
    if made != wanted:
        raise InputError(f"this case was synthesised with seed {made[0]}, index {made[1]}, source MR {made[2]}; this "
                         f"run would make it with seed {wanted[0]}, index {wanted[1]}, source MR {wanted[2]}", folder,
                         "use a new --out folder, or the seed (and --from-mr) the folder was made with")
    if bool(meta.get("randomised", False)) != randomised:
        made_mode, mode = ("randomised", "unrandomised") if randomised is False else ("unrandomised", "randomised")
        raise InputError(f"this case was synthesised {made_mode}; this run makes {mode} cases", folder,
                         "use a new --out folder, or the same --randomise setting the folder was made with")


def synth_dataset(out: str | Path, cases: int, seed: int = 0, from_mr: str | Path | None = None,
                  splits: dict[str, list[str]] | None = None, workers: int = 1, show_progress: bool = True,
                  name: str | None = None, index_of: dict[str, int] | None = None, randomise=None):
    """Write a synthetic dataset of ``cases`` cases to ``out`` and return it (:func:`regkit.load_dataset`).

    Cases already written (a ``case.json`` exists) are kept, so an interrupted run resumes. With ``from_mr``
    the TRUS volumes are simulated from the real labelled MRs in that folder, cycling through them.
    A case's random stream is ``(seed, index)``, its position in ``splits`` unless ``index_of`` says otherwise.
    With ``randomise`` (a :class:`regkit.synth.randomise.Randomisation`), the cases come from the randomised
    training distribution.
    """
    out = Path(out)
    splits = splits or default_splits(cases)
    ids = [cid for split in SPLITS for cid in splits.get(split, [])]
    pairs = find_mr_pairs(from_mr) if from_mr is not None else None
    todo = []
    for position, cid in enumerate(ids):
        index = index_of[cid] if index_of else position
        if (out / cid / "case.json").exists():
            _check_kept_case(out / cid, seed, index, pairs[index % len(pairs)][0] if pairs else None,
                             randomise is not None)
        else:
            todo.append((str(out), cid, seed, index, pairs[index % len(pairs)] if pairs else None, randomise))
    out.mkdir(parents=True, exist_ok=True)
    with progress(total=len(todo), desc="synth", unit="case", disable=not show_progress) as bar:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for _ in pool.map(_make_one, todo):
                    bar.update()
        else:
            for job in todo:
                _make_one(job)
                bar.update()
    write_manifest(out, {k: v for k, v in splits.items()}, name=name or out.name,
                   source={"generator": "regkit synth", "seed": seed, "cases": len(ids),
                           "from_mr": str(from_mr) if from_mr else None,
                           "randomise": _jsonable(randomise) if randomise is not None else None})
    return load_dataset(out)


def _jsonable(randomise) -> dict:
    from dataclasses import asdict

    return asdict(randomise)
