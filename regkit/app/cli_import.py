"""``regkit import``: convert public MR-TRUS layouts into regkit's dataset layout.

Register with ``main.add_command(import_group)`` in :mod:`regkit.app.cli`. Heavy modules are imported inside the
commands, so ``regkit --help`` stays instant.
"""

from __future__ import annotations

import click


def _summary(ds, out) -> str:
    sizes = ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items() if v)
    return f"{out} now holds {len(ds)} cases ({sizes or 'none'})"


def _reporter():
    counts = {"imported": 0, "skipped": 0}

    def report(case_id: str, status: str) -> None:
        counts[status] = counts.get(status, 0) + 1
        click.echo(f"  {status:8s} {case_id}")

    return report, counts


@click.group("import")
def import_group():
    """Import public MR-TRUS datasets into regkit's layout (OUT can be resumed and merged into)."""


@import_group.command("paired")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True,
              help="Split of every case when SRC has no train/ val/ test/ subfolders.")
@click.option("--deepreg-mr-side", type=click.Choice(["fixed", "moving"]), default=None,
              help="With DeepReg's fixed_*/moving_* folders: which side is the MR (DeepReg's MR-US demo: moving).")
@click.option("--geometry", type=click.Choice(["check", "header", "voxel"]), default="check", show_default=True,
              help="check: MR and TRUS grids must be identical; header: trust the headers' physical space; voxel: "
                   "give the TRUS the MR grid (arrays aligned voxel to voxel).")
@click.option("--prefix", default="", help="Prepended to every case id.")
def paired_cmd(src, out, split, deepreg_mr_side, geometry, prefix):
    """Import a µ-RegPro / DeepReg paired layout: mr_images/, us_images/, mr_labels/ (us_labels/).

    Labels' channel 0 is the gland. The pairs are pre-aligned, so every ground truth is the identity.
    """
    from regkit.importers import import_paired_folders

    report, counts = _reporter()
    ds = import_paired_folders(src, out, split=split, deepreg_mr_side=deepreg_mr_side, geometry=geometry,
                               prefix=prefix, progress=report)
    click.echo(f"imported {counts['imported']}, kept {counts['skipped']}; {_summary(ds, out)}")


@import_group.command("uronav")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True, help="Split of every case.")
@click.option("--registration", type=click.Choice(["auto", "refined", "coreg"]), default="auto", show_default=True,
              help="Ground truth: coreg_refined.txt when present (auto), or force one file.")
@click.option("--ignore-direction", is_flag=True,
              help="Ignore the MetaImage TransformMatrix (direction = identity), as the authors' lab code did.")
@click.option("--mr-file", default="MRVol.mhd", show_default=True, help="MR volume name in each case folder.")
@click.option("--prefix", default="", help="Prepended to every case id.")
def uronav_cmd(src, out, split, registration, ignore_direction, mr_file, prefix):
    """Import a UroNav export: case folders of MRVol.mhd, USVol.mhd, segmentationrtss.uronav.stl, coreg*.txt.

    The MR label is voxelised from the STL, which is kept as the case's surface for SRE.
    """
    from regkit.importers import import_uronav

    report, counts = _reporter()
    ds = import_uronav(src, out, split=split, registration=registration, ignore_direction=ignore_direction,
                       mr_file=mr_file, prefix=prefix, progress=report)
    click.echo(f"imported {counts['imported']}, kept {counts['skipped']}; {_summary(ds, out)}")
