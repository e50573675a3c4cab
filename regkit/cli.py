"""The ``regkit`` command line. Each command imports what it needs inside its function, so ``--help`` is instant."""

from __future__ import annotations

import sys

import click


class _Group(click.Group):
    """Turns regkit's own errors into one readable line and exit code 2, instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from regkit.errors import RegkitError

            if isinstance(exc, RegkitError):
                click.echo(f"error: {exc}", err=True)
                sys.exit(2)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="regkit")
def main():
    """regkit: classical and deep rigid MR-to-TRUS prostate registration, compared side by side.

    Transforms map fixed (MR) points to moving (TRUS) points, in LPS millimetres. Without --data, commands use
    the built-in synthetic benchmark (rendered and cached on first use).
    """


@main.command("list")
def list_cmd():
    """List the registrars: name, kind, parameter count (networks) and summary."""
    from regkit.registry import available_registrars

    infos = available_registrars(describe=True)
    rows = []
    for name, info in infos.items():
        count = ""
        if info.kind == "deep":
            try:
                n = info.parameter_count()
                count = f"{n:,}" if n is not None else ""
            except Exception as exc:  # a broken network must not hide the list
                count = f"? ({exc})"
        rows.append((name, info.kind, count, info.summary, info.source))
    widths = [max(len(r[i]) for r in [("name", "kind", "#parameters", "summary", "from"), *rows]) for i in range(5)]
    header = ("name", "kind", "#parameters", "summary", "from")
    for r in [header, *rows]:
        click.echo("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]),
                              r[3].ljust(widths[3]), r[4]]).rstrip())


@main.command()
@click.option("--cases", "-n", type=click.IntRange(1), required=True, help="Number of cases to make.")
@click.option("--out", "-o", type=click.Path(file_okay=False), required=True, help="Dataset folder to write.")
@click.option("--seed", "-s", type=int, default=0, show_default=True, help="Random seed (deterministic output).")
@click.option("--from-mr", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of real labelled MRs (<case>_t2.nii.gz + <case>_gland.nii.gz): simulate the TRUS "
                   "from them instead of drawing a synthetic pelvis.")
@click.option("--workers", "-j", type=click.IntRange(1), default=1, show_default=True, help="Parallel processes.")
def synth(cases, out, seed, from_mr, workers):
    """Write a synthetic MR/TRUS dataset (train/val/test splits) in regkit's layout.

    Existing cases in OUT are kept, so an interrupted run resumes.
    """
    from regkit.synth.dataset import synth_dataset

    ds = synth_dataset(out, cases, seed=seed, from_mr=from_mr, workers=workers)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())
    click.echo(f"wrote {len(ds)} cases to {out} ({sizes})")


if __name__ == "__main__":  # pragma: no cover
    main()
