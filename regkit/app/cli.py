"""The ``regkit`` command line. Each command imports what it needs inside its function, so ``--help`` is instant."""

from __future__ import annotations

import sys

import click

#: ``regkit register``'s exit status when the registration failed (2: a bad input, 1: a file-system error).
EXIT_FAILED = 3


class _Group(click.Group):
    """Turns regkit's own errors into one readable line and exit code 2, and file-system errors (a path through a
    file, a full disk, no permission) into one line naming the path and exit code 1, instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from regkit.errors import RegkitError

            if isinstance(exc, RegkitError):
                click.echo(f"error: {exc}", err=True)
                sys.exit(2)
            if isinstance(exc, OSError) and exc.strerror:
                click.echo(f"error: {_os_error_line(exc)}", err=True)
                sys.exit(1)
            raise


def _os_error_line(exc: OSError) -> str:
    """``[Errno 20] Not a directory: 'a/b'`` → a sentence naming the path and the fix."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    fixes = {errno.ENOTDIR: "a part of this path is a file, not a folder: give a path under a folder",
             errno.EISDIR: "this is a folder: give a file",
             errno.ENOENT: "check the path",
             errno.EACCES: "give a path you may write (or read)", errno.EPERM: "give a path you may write",
             errno.EROFS: "the file system is read-only: give another output folder",
             errno.ENOSPC: "the disk is full: free space, then run the same command again (what was written is kept)",
             errno.EDQUOT: "the disk quota is used up: free space, then run the same command again",
             errno.EFBIG: "the file grew past a file-size limit (ulimit -f): lift it, then run the command again"}
    fix = fixes.get(exc.errno)
    return f"{where}{exc.strerror}" + (f" Fix: {fix}" if fix else "")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="regkit")
def main():
    """regkit: classical and deep rigid MR-to-TRUS prostate registration, compared side by side.

    Transforms map fixed (MR) points to moving (TRUS) points, in LPS millimetres. Without --data, commands use
    the built-in synthetic benchmark (rendered and cached on first use).
    """
    from regkit.progress import note_slow_imports

    note_slow_imports()


@main.command("list")
def list_cmd():
    """List the registrars: name, kind, parameter count (networks), summary and the package declaring it."""
    from regkit.registry import available_registrars, parameter_count

    rows = []
    for name, decl in available_registrars().items():
        count = ""
        if decl.kind != "broken":
            try:
                n = parameter_count(decl)
                count = f"{n:,}" if n is not None else ""
            except Exception as exc:  # a broken network must not hide the list
                count = f"? ({exc})"
        rows.append((name, decl.kind, count, decl.summary, decl.source))
    header = ("name", "kind", "#parameters", "summary", "from")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        click.echo("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]),
                              r[3].ljust(widths[3]), r[4]]).rstrip())


@main.command()
@click.option("--cases", "-n", type=click.IntRange(1), required=True, help="Number of cases to make.")
@click.option("--out", "-o", type=click.Path(file_okay=False), required=True, help="Dataset folder to write.")
@click.option("--seed", "-s", type=click.IntRange(0), default=0, show_default=True,
              help="Random seed (deterministic output).")
@click.option("--from-mr", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of real labelled MRs (<case>_t2.nii.gz + <case>_gland.nii.gz): simulate the TRUS "
                   "from them instead of drawing a synthetic pelvis.")
@click.option("--workers", "-j", type=click.IntRange(1), default=1, show_default=True, help="Parallel processes.")
@click.option("--split-sizes", default=None,
              help="TRAIN,VAL,TEST case counts [under 10 cases all test, for evaluation; else about 70/15/15].")
@click.option("--randomise", is_flag=True,
              help="Draw from the randomised training distribution: random shape deformations (and, from real "
                   "MRs, gland volume), per-tissue contrasts drawn afresh for each modality, and wide ranges of "
                   "MR and TRUS acquisition physics (see regkit.synth.randomise).")
def synth(cases, out, seed, from_mr, workers, split_sizes, randomise):
    """Write a synthetic MR/TRUS dataset (train/val/test splits) in regkit's layout.

    Existing cases in OUT are kept, so an interrupted run resumes.
    """
    from regkit.errors import InputError
    from regkit.synth.dataset import default_splits, synth_dataset
    from regkit.synth.randomise import Randomisation

    sizes = None
    if split_sizes is not None:
        try:
            sizes = dict(zip(("train", "val", "test"), map(int, split_sizes.split(",")), strict=True))
        except ValueError:
            raise InputError(f"cannot read --split-sizes {split_sizes!r}",
                             fix="give three counts, e.g. 6,2,2") from None
    ds = synth_dataset(out, cases, seed=seed, from_mr=from_mr, workers=workers,
                       splits=default_splits(cases, sizes), randomise=Randomisation() if randomise else None)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())
    click.echo(f"wrote {len(ds)} cases to {out} ({sizes})")


def parse_duration(text: str | None) -> float | None:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``1h30m``."""
    import re

    from regkit.errors import InputError

    if text is None:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms]?)", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s", "", text.strip().lower()):
        raise InputError(f"cannot read duration {text!r}", fix="write e.g. 90s, 30m, 2h or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "": 1}[u] for n, u in parts)


@main.command()
@click.option("--method", "-m", required=True,
              help="A registrar with a network (see `regkit list`): e.g. attreg, attreg-label, featreg, msreg, dvnet.")
@click.option("--data", multiple=True, default=None,
              help="Dataset folder (train and val splits); repeat it to pool several datasets; 'builtin' is the "
                   "built-in benchmark. Default: the built-in benchmark.")
@click.option("--stage", type=click.IntRange(1, 2), default=1, show_default=True,
              help="Cascade stage: 1 trains on 0-20mm starts, 2 on 0-8mm.")
@click.option("--init-range", default=None, help="Starting-SRE range of training starts [stage 1: 0-20mm, 2: 0-8mm].")
@click.option("--epochs", type=click.IntRange(1), default=100, show_default=True,
              help="Epochs (one fresh start per training case each); learning-rate milestones scale with it.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Per-process batch [paper: 8, MSReg 16].")
@click.option("--lr", type=float, default=None, help="Learning rate [paper's per-network value].")
@click.option("--out", "-o", type=click.Path(file_okay=False), required=True, help="Run folder (checkpoints, curves).")
@click.option("--resume", type=click.Path(exists=True), default=None,
              help="Continue a run: its folder or its last.safetensors.")
@click.option("--init-weights", type=click.Path(), default=None,
              help="Start from these weights (e.g. stage 1's best for stage 2): a checkpoint's .safetensors, "
                   ".json or their common stem.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--time-budget", default=None, help="Stop cleanly after this long, e.g. 2h or 45m.")
@click.option("--val-every", type=click.IntRange(1), default=1, show_default=True, help="Validate every N epochs.")
@click.option("--bf16/--no-bf16", default=None, help="bf16 autocast [on where the CPU supports it].")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N [CUDA when present].")
@click.option("--threads", type=click.IntRange(1), default=None, help="Torch CPU threads.")
@click.option("--augment", is_flag=True, help="Vary the inputs' intensities on the fly (gamma, bias, noise).")
@click.option("--samples-per-epoch", type=click.IntRange(1), default=None,
              help="Training samples per epoch [one per training case].")
@click.option("--val-starts", type=click.IntRange(1), default=5, show_default=True,
              help="Fixed validation starts per validation case.")
@click.option("--fit-epochs", is_flag=True,
              help="With --time-budget: after the first steps, lower --epochs to what fits in the budget, so that "
                   "the learning-rate schedule completes (a resumed run keeps the fitted count).")
@click.option("--rollout", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="The fraction of samples whose fresh start a network's passes move first; the target is the "
                   "correction from where it lands (the network trained, 1-3 passes; or --rollout-from).")
@click.option("--rollout-from", type=click.Path(), default=None,
              help="The checkpoint whose one pass moves the --rollout starts (e.g. stage 1's, for a stage 2 that "
                   "learns where stage 1 leaves it) [the network being trained].")
def train(method, data, stage, init_range, epochs, batch_size, lr, out, resume, init_weights, seed, time_budget,
          val_every, bf16, compile_, device, threads, augment, samples_per_epoch, val_starts, fit_epochs, rollout,
          rollout_from):
    """Train a deep registrar; the best checkpoint (by validation SRE) is OUT/best.safetensors.

    Works the same under `torchrun --nproc_per_node N regkit train ...` (DistributedDataParallel).
    """
    from regkit.deep.training import TrainOptions
    from regkit.deep.training import train as run

    data = list(data) or None
    summary = run(TrainOptions(
        method=method, out=out, data=data, stage=stage, init_range=init_range, epochs=epochs, batch_size=batch_size,
        lr=lr, resume=resume, init_weights=init_weights, seed=seed, time_budget=parse_duration(time_budget),
        val_every=val_every, bf16=bf16, compile=compile_, device=device, threads=threads, augment=augment,
        samples_per_epoch=samples_per_epoch, val_starts=val_starts, fit_epochs=fit_epochs, rollout=rollout,
        rollout_from=rollout_from))
    if summary["rank"] != 0:
        return
    click.echo(f"{summary['stop_reason']}: {summary['epochs']} epochs, {summary['steps']} steps in "
               f"{summary['train_seconds']:.0f} s; validation SRE {summary['val_sre_start']:.2f} -> "
               f"best {summary['best_val_sre']:.2f} mm (epoch {summary['best_epoch']}); best checkpoint "
               f"{out}/best.safetensors")


@main.command()
@click.option("--methods", "-m", default="mi,mind,attreg", show_default=True,
              help="Comma-separated registrar names (see `regkit list`); NAME=REGISTRAR gives an alias; "
                   "A+B chains registrars (B starts where A ended).")
@click.option("--init", "init", default="8mm", show_default=True,
              help="Starting SRE: 8mm, 16mm, a range 0-20mm, or a list 8mm,16mm (both blocks of Table 1).")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Dataset folder. Default: the built-in synthetic benchmark (rendered and cached on first use).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate on, or 'all' for every case.")
@click.option("--cases", type=int, default=None,
              help="Use only the first N cases of the split [all]; on the built-in benchmark only they are rendered.")
@click.option("--starts-per-case", "-k", type=click.IntRange(1), default=3, show_default=True,
              help="Starts per case and starting error (the paper used 40 to 100).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of the starts.")
@click.option("--starts", "starts_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Use the starts in this file (e.g. another run's starts.csv) instead of drawing them.")
@click.option("--out", "-o", type=click.Path(file_okay=False), default="regkit-compare", show_default=True,
              help="Output folder; run the same command again to resume.")
@click.option("--workers", "-j", type=click.IntRange(1), default=None, help="Processes for classical methods [cores].")
@click.option("--compare", "compare_", default=None,
              help="Comparisons to test (the Holm family): A:B pairs, METHOD@K for stage K of a cascade (e.g. "
                   "attreg@1:featreg), or reference, all, paper [reference,paper: every method against the "
                   "reference, and the paper's claims whose methods are present; cascades also stage for stage].")
@click.option("--reference", default=None, help="Reference method of the default comparisons [identity if listed, "
                                                 "else the first method].")
@click.option("--scheduler", default=None, help="Dask scheduler address (tcp://host:port) to run the tasks on.")
@click.option("--method-option", "-O", "method_option", multiple=True,
              help="METHOD.OPTION=VALUE for a registrar, e.g. -O mi.iterations=300 -O attreg.checkpoint=run/best.")
@click.option("--qa", is_flag=True,
              help="Also measure each result's consistency without the ground truth (a few restarts near it: that "
                   "much more time) and count the suspect ones (Table 1's Suspect column).")
def compare(methods, init, data, split, cases, starts_per_case, seed, starts_file, out, workers, compare_,
            reference, scheduler, method_option, qa):
    """Run METHODS on the same starts and write the per-sample table, statistics, tables and plots.

    Statistics are made at the case level (paired tests over per-case means with t intervals of the difference;
    intervals of each mean by a cluster bootstrap over cases), with the paper's sample-level tests beside them.
    Writes OUT/results.csv row by row, then summary.csv, table1/table2/tests/ranks as .csv, .tex and .md,
    tests_raw.csv, metrics.json, boxplot.png, scatter.png, differences.png, run.json (seeds, versions, threads,
    git hash, command line) and report.html (all of it in one file). Interrupted runs resume.
    """
    from regkit.evaluation.compare import compare as run
    from regkit.evaluation.method_specs import parse_method_options

    run(methods=methods, init=init, data=data, split=split, cases=cases, starts_per_case=starts_per_case, seed=seed,
        out=out, workers=workers, reference=reference, scheduler=scheduler,
        method_options=parse_method_options(method_option), starts_file=starts_file, echo=click.echo,
        compare=compare_, qa=qa)


@main.command()
@click.option("--fixed", required=True, type=click.Path(exists=True, dir_okay=False), help="MR image (fixed).")
@click.option("--moving", required=True, type=click.Path(exists=True, dir_okay=False), help="TRUS image (moving).")
@click.option("--fixed-label", type=click.Path(exists=True, dir_okay=False), default=None,
              help="MR prostate label (needed by deep methods; masks the classical ones).")
@click.option("--method", "-m", default="mi", show_default=True,
              help="Registrar name (see `regkit list`), or a chain A+B (B starts where A ended).")
@click.option("--initial-transform", "initial_transform", default="centres", show_default=True,
              help="Start: centres (the MR prostate centre, or the MR centre, to the TRUS centre), moments (the "
                   "centres of mass), identity (trust the headers), or a transform file (.tfm/.h5/4x4 .txt/elastix).")
@click.option("--init", "init", default=None, hidden=True, help="Deprecated: the old name of --initial-transform.")
@click.option("--out", "-o", type=click.Path(file_okay=False), default="regkit-register", show_default=True)
@click.option("--moving-modality", default=None,
              help="What the moving image is: US (ultrasound: the classical methods mask it to its fan), MR, CT... "
                   "[guessed: an 8-bit image with a zero-filled outside is taken for ultrasound].")
@click.option("--method-option", "-O", "method_option", multiple=True, help="OPTION=VALUE for the registrar.")
@click.option("--qa/--no-qa", default=True, show_default=True,
              help="Measure the result's consistency without a ground truth (a few restarts near it: that much more "
                   "time) and warn when it is suspect.")
def register(fixed, moving, fixed_label, method, initial_transform, init, out, moving_modality, method_option, qa):
    """Register one MR-TRUS pair; write transform.tfm, transform.txt, the resampled TRUS, overlay.png and result.json.

    With --qa (the default) the method is restarted a few times near its result: a result it does not come back
    to is suspect (a wrong optimum, or an imprecise one), and a one-line warning says so.

    \b
    Exit status:
      0  the registration is ok, or not converged (a warning says why; result.json's status says which);
      3  the registration failed (the error says why): only result.json and overlay.png (of the start) are
         written, no transform;
      2  a bad input or option (nothing is registered);
      1  a file-system error (a path through a file, a full disk).
    """
    from click.core import ParameterSource

    from regkit.app.register_pair import register as run
    from regkit.errors import InputError
    from regkit.evaluation.method_specs import parse_options
    from regkit.registrar import FAILED, NOT_CONVERGED

    if init is not None:
        if click.get_current_context().get_parameter_source("initial_transform") is not ParameterSource.DEFAULT:
            raise InputError("--initial-transform and --init (its deprecated name) given together",
                             fix="give --initial-transform alone")
        click.echo("regkit register: --init is deprecated, use --initial-transform (the same values)", err=True)
        initial_transform = init
    options = parse_options(method_option)
    res = run(fixed, moving, fixed_label, method=method, initial_transform=initial_transform, out=out,
              moving_modality=moving_modality, method_options=options, qa=qa)
    r = res.result
    took = f" in {r.runtime:.2f} s" if r.runtime == r.runtime else ""  # a failure may have no runtime (NaN)
    click.echo(f"{method}: {r.status}{', suspect' if res.suspect else ''}{took}"
               f"{(' - ' + r.message) if r.message else ''}")
    if res.suspect:
        click.echo(f"regkit register: warning: suspect result: {res.consistency.describe()} (the "
                   "method does not come back to it from nearby starts: a wrong optimum, or an imprecise result); "
                   "check the overlay, or start elsewhere", err=True)
    elif res.consistency_note:
        click.echo(f"regkit register: warning: {res.consistency_note}", err=True)
    elif res.consistency is not None:
        click.echo(f"  consistency      {res.consistency.describe()}")
    for k, p in res.files.items():
        click.echo(f"  {k:17s}{p}")
    if r.status == FAILED:
        click.echo(f"error: the registration failed: {r.message or 'no reason given'} (no transform written; "
                   f"{res.files['json']} records the start and the reason)", err=True)
        sys.exit(EXIT_FAILED)
    if r.status == NOT_CONVERGED:
        click.echo(f"regkit register: warning: {method} did not converge ({r.message or 'no reason given'}); "
                   "the transform is written, but check it (e.g. overlay.png), or try another start "
                   "(--initial-transform) or method",
                   err=True)


@main.command()
@click.option("--method", "-m", default="attreg", show_default=True,
              help="Attention-Reg or Feature-Reg registrar(s), comma-separated, e.g. attreg,featreg.")
@click.option("--case", "case_id", default=None, help="Case id [the first test case].")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Dataset folder [the built-in benchmark].")
@click.option("--init", "init", default="8mm", show_default=True, help="Starting SRE of the explained start.")
@click.option("--start-id", type=click.IntRange(0), default=0, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--checkpoint", multiple=True, help="METHOD=PATH to explain a trained checkpoint.")
@click.option("--out", "-o", type=click.Path(file_okay=False), default="regkit-explain", show_default=True)
def explain(method, case_id, data, init, start_id, seed, checkpoint, out):
    """Grad-CAM of the cross-modal attention blocks (the paper's Fig. 4), per branch, as PNG."""
    ckpts = parse_checkpoints(checkpoint)
    from regkit.deep.gradcam import explain as run

    files = run(methods=[m.strip() for m in method.split(",")], case=case_id, data=data, init=init,
                start_id=start_id, seed=seed, out=out, checkpoints=ckpts)
    for k, p in files.items():
        click.echo(f"{k}: {p}")


def parse_checkpoints(items) -> dict[str, str]:
    """``("attreg=runs/a/best", ...)`` → ``{"attreg": "runs/a/best"}``; an error naming a malformed item."""
    from regkit.errors import InputError

    out = {}
    for item in items:
        method, sep, path = item.partition("=")
        if not sep or not method.strip() or not path.strip():
            raise InputError(f"cannot read --checkpoint {item!r}",
                             fix="write METHOD=PATH, e.g. attreg=runs/attreg/best")
        out[method.strip()] = path.strip()
    return out


def _register_subcommands() -> None:
    from regkit.app.cli_import import import_group, inspect_cmd

    main.add_command(import_group)
    main.add_command(inspect_cmd)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
