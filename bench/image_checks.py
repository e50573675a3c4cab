"""What checking images on read costs: ``regkit.image.read_image`` (gzip stream and NIfTI length checked, NaN
looked for in float NIfTI files) against SimpleITK's ``ReadImage`` alone, on the real images in ../shared/data.

    python bench/image_checks.py [--files 12]

Prints the median time of each per file and their ratio (peers in the same run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent))
from _util import timed

from regkit.image import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=12)
    args = parser.parse_args()
    files = sorted(p for p in DATA.rglob("*.nii.gz") if "gland" not in p.name and "label" not in p.name)[: args.files]
    if not files:
        sys.exit(f"no images under {DATA}")
    total_itk = total_checked = 0.0
    print(f"{'file':50s} {'MB':>6s} {'ReadImage s':>12s} {'read_image s':>13s} {'ratio':>6s}")
    for f in files:
        itk = timed(lambda f=f: sitk.ReadImage(str(f)), 5)
        checked = timed(lambda f=f: read_image(f), 5)
        total_itk += itk
        total_checked += checked
        print(f"{f.parent.name + '/' + f.name:50s} {f.stat().st_size / 1e6:6.2f} {itk:12.3f} {checked:13.3f} "
              f"{checked / itk:6.2f}")
    print(f"{'all':50s} {'':6s} {total_itk:12.3f} {total_checked:13.3f} {total_checked / total_itk:6.2f}")


if __name__ == "__main__":
    main()
