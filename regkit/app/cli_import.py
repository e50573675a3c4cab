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


def _check(out, check: bool) -> None:
    """Print the reference table; with ``check``, also draw the overlays (``OUT/check/``)."""
    from regkit.app.inspect import inspect_dataset, reference_table

    rows, folder = inspect_dataset(out, overlays=check)
    if any(r["reference"] for r in rows):
        click.echo(reference_table(rows))
    click.echo(f"import report: {out}/import_report.csv" + (f"; overlays: {folder}/" if check else ""))


def _run(importer, src, out, check: bool, **options) -> None:
    """Run an importer with a progress line per case, then print the summary and the reference table."""
    report, counts = _reporter()
    ds = importer(src, out, progress=report, **options)
    click.echo(f"imported {counts['imported']}, kept {counts['skipped']}; {_summary(ds, out)}")
    _check(out, check)


CHECK_HELP = "Also write per case an overlay PNG (OUT/check/) of the TRUS gland under the identity and the reference."
REFERENCE_HELP = ("labels: the rigid reference derived from the labels (landmarks + gland surfaces); identity: MR "
                  "physical = TRUS physical, only for pairs known to be aligned (the label fit is recorded beside it).")


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
@click.option("--reference", type=click.Choice(["identity", "labels"]), default="identity", show_default=True,
              help="identity: the pairs are pre-aligned (the label-derived reference is recorded beside it); labels: "
                   "the rigid reference derived from the labels (needs us_labels/).")
@click.option("--check", is_flag=True, help=CHECK_HELP)
def paired_cmd(src, out, split, deepreg_mr_side, geometry, prefix, reference, check):
    """Import generic paired folders: mr_images/, us_images/, mr_labels/ (us_labels/).

    Labels' channel 0 is the gland. For µ-RegPro use `regkit import muregpro`, for DeepReg `regkit import deepreg`.
    """
    from regkit.importers import import_paired_folders

    _run(import_paired_folders, src, out, check, split=split, deepreg_mr_side=deepreg_mr_side, geometry=geometry,
         prefix=prefix, reference=reference)


@import_group.command("muregpro")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True,
              help="Split of the cases when SRC is neither nifti_data/ nor a split folder.")
@click.option("--reference", type=click.Choice(["labels", "identity"]), default="labels", show_default=True,
              help=REFERENCE_HELP)
@click.option("--prefix", default="", help="Prepended to every case id.")
@click.option("--check", is_flag=True, help=CHECK_HELP)
def muregpro_cmd(src, out, split, reference, prefix, check):
    """Import µ-RegPro (MR, TRUS, 4-D gland and landmark labels) with a reference derived from the labels.

    Layout: nifti_data/{train,val}/{mr_images,us_images,mr_labels,us_labels}/case000NNN.nii.gz.

    MR fixed, TRUS moving; label channel 0 is the gland, the others landmarks (kept in mm for landmark TRE). The
    reference comes from the labels; its residuals and flags are printed and written to OUT/import_report.csv.
    """
    from regkit.importers import import_muregpro

    _run(import_muregpro, src, out, check, split=split, reference=reference, prefix=prefix)


@import_group.command("deepreg")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--mr-side", type=click.Choice(["fixed", "moving"]), required=True,
              help="Which side of DeepReg's fixed_/moving_ naming is the MR (DeepReg's MR-US demo: moving).")
@click.option("--spacing", default=None, metavar="MM[,MM,MM]",
              help="Voxel spacing of the h5 arrays (they hold no geometry), or of NIfTI arrays with --geometry array. "
                   "Default 0.8 mm (the UCL MR-US data's resampling).")
@click.option("--frame", type=click.Choice(["centre", "corner"]), default="centre", show_default=True,
              help="Where arrays without geometry sit in physical space: centred on the origin, or corner at it.")
@click.option("--geometry", type=click.Choice(["header", "array"]), default="header", show_default=True,
              help="NIfTI folders: trust the headers, or use the arrays with --spacing and --frame (as DeepReg does).")
@click.option("--split", default="test", show_default=True, help="Split of the cases when SRC has no split folders.")
@click.option("--reference", type=click.Choice(["labels", "identity"]), default="labels", show_default=True,
              help=REFERENCE_HELP)
@click.option("--prefix", default="", help="Prepended to every case id.")
@click.option("--check", is_flag=True, help=CHECK_HELP)
def deepreg_cmd(src, out, mr_side, spacing, frame, geometry, split, reference, prefix, check):
    """Import DeepReg paired data: {moving,fixed}_{images,labels}.h5 with matching keys, or the same as NIfTI folders.

    Labels (W, H, D) or (W, H, D, n): channel 0 the gland, the others landmarks.
    """
    from regkit.importers import import_deepreg

    values = None
    if spacing is not None:
        try:
            values = tuple(float(v) for v in spacing.split(","))
        except ValueError:
            raise click.BadParameter("give one or three numbers in mm, e.g. 0.8 or 0.8,0.8,1.5",
                                     param_hint="--spacing") from None
    _run(import_deepreg, src, out, check, mr_side=mr_side, spacing=values, frame=frame, geometry=geometry,
         split=split, reference=reference, prefix=prefix)


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
@click.option("--check", is_flag=True, help=CHECK_HELP)
def uronav_cmd(src, out, split, registration, ignore_direction, mr_file, prefix, check):
    """Import a UroNav export: case folders of MRVol.mhd, USVol.mhd, segmentationrtss.uronav.stl, coreg*.txt.

    The MR label is voxelised from the STL, which is kept as the case's surface for SRE.
    """
    from regkit.importers import import_uronav

    _run(import_uronav, src, out, check, split=split, registration=registration, ignore_direction=ignore_direction,
         mr_file=mr_file, prefix=prefix)


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
@click.option("--check", is_flag=True, help=CHECK_HELP)
def tcia_cmd(src, out, stl_dir, split, trus_frame, trus_spacing, skip_incomplete, prefix, check):
    """Import a TCIA Prostate-MRI-US-Biopsy download: DICOM series (NBIA or IDC folders) and the STL surfaces.

    Each TRUS series with a prostate STL makes a case with its patient's MR; the labels are voxelised from the STLs
    and the reference comes from the two prostate surfaces (targets on both series as landmarks).
    """
    from regkit.importers import import_tcia

    spacing = None
    if trus_spacing is not None:
        try:
            spacing = tuple(float(v) for v in trus_spacing.split(","))
        except ValueError:
            spacing = ()
        if len(spacing) != 3:
            raise click.BadParameter("give three numbers in mm, e.g. 0.2,0.2,0.2", param_hint="--trus-spacing")
    _run(import_tcia, src, out, check, stl_dir=stl_dir, split=split, trus_frame=trus_frame, trus_spacing=spacing,
         skip_incomplete=skip_incomplete, prefix=prefix)
    click.echo(f"TRUS frame: {trus_frame} (an assumption, recorded in each case.json; see docs/your-own-data.md)")


@click.command("inspect")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder of the overlay PNGs (default DATASET/check/).")
@click.option("--case", "cases", multiple=True, help="Only these cases (repeatable).")
@click.option("--no-overlays", is_flag=True, help="Print the table only.")
def inspect_cmd(dataset, out, cases, no_overlays):
    """See a dataset before trusting it: per case an overlay of the MR with the TRUS gland contour under the identity
    and under the reference, and a table of the reference's residuals with the flagged cases."""
    from regkit.app.inspect import inspect_dataset, reference_table

    rows, folder = inspect_dataset(dataset, out, list(cases) or None, overlays=not no_overlays)
    click.echo(reference_table(rows))
    if not no_overlays:
        click.echo(f"overlays: {folder}/")
