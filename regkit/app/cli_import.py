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


@import_group.command("tcia")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--stls", "stl_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of the STL files, when they are not under SRC.")
@click.option("--split", default="test", show_default=True, help="Split of every case.")
@click.option("--trus-frame", type=click.Choice(["centred", "dicom"]), default="centred", show_default=True,
              help="Frame of the TRUS surfaces: centred (the volume centred on the origin, as the public conversion "
                   "script has it) or dicom (the TRUS as GDCM reads it). Not confirmed on real data: see the docs.")
@click.option("--trus-spacing", default=None, metavar="X,Y,Z",
              help="TRUS voxel size in mm (column, row, frame), overriding its DICOM tags.")
@click.option("--skip-incomplete", is_flag=True,
              help="Leave out patients lacking a series or a prostate STL (warned) instead of stopping.")
@click.option("--prefix", default="", help="Prepended to every case id.")
def tcia_cmd(src, out, stl_dir, split, trus_frame, trus_spacing, skip_incomplete, prefix):
    """Import a TCIA Prostate-MRI-US-Biopsy download: DICOM series (NBIA or IDC folders) and the STL surfaces.

    Each TRUS series with a prostate STL makes a case with its patient's MR; the labels are voxelised from the STLs
    and the reference comes from the two prostate surfaces (targets on both series as landmarks).
    """
    from regkit.errors import InputError
    from regkit.importers import import_tcia

    spacing = None
    if trus_spacing is not None:
        try:
            spacing = tuple(float(v) for v in trus_spacing.split(","))
        except ValueError:
            raise InputError(f"--trus-spacing {trus_spacing!r} is not three numbers", fix="e.g. --trus-spacing "
                             "0.2,0.2,0.2") from None
    report, counts = _reporter()
    ds = import_tcia(src, out, stl_dir=stl_dir, split=split, trus_frame=trus_frame, trus_spacing=spacing,
                     skip_incomplete=skip_incomplete, prefix=prefix, progress=report)
    click.echo(f"imported {counts['imported']}, kept {counts['skipped']}; {_summary(ds, out)}; TRUS frame: "
               f"{trus_frame} (see case.json 'trus_frame_convention')")
