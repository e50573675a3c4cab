"""Reference recovery on the layout fixtures: the label-derived reference's SRE against the known offsets of the
µ-RegPro (10 cases) and DeepReg h5 (3 cases) fixtures. Usage: ``nice python bench/reference_recovery.py``."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    from layouts.common import phantom, sre_of
    from layouts.deepreg import make_deepreg
    from layouts.muregpro import make_muregpro

    from regkit.importers import import_deepreg, import_muregpro

    root = Path(tempfile.mkdtemp())
    pairs = make_muregpro(root / "mu", cases=10, seeds=(0, 1), val=3)
    ds = import_muregpro(root / "mu", root / "mu_out")
    print("# µ-RegPro fixture (tests/layouts/muregpro.py, 10 cases, seeds 0,1): reference SRE against the known offset")
    print("case method landmarks sre_mm identity_sre_mm offset_rotation_deg flags")
    for i, cid in enumerate(ds.case_ids()):
        case, off = ds.load(cid), pairs[cid].offset
        ref = json.loads((root / "mu_out" / cid / "case.json").read_text())["reference"]
        surface = phantom((0, 1)[i % 2])[1][0]
        print(cid, ref["method"], ref["landmarks"], round(sre_of(case.ground_truth, off, surface), 3),
              round(sre_of(off, type(off).identity(), surface), 1), round(float(off.rotation_angle()), 1),
              ",".join(ref["flags"]))
    deepreg = make_deepreg(root / "dr", cases=3, seeds=(0, 1))
    ds = import_deepreg(root / "dr", root / "dr_out", mr_side="moving")
    print("# DeepReg h5 fixture (tests/layouts/deepreg.py, 3 cases): reference SRE (mm)")
    for cid in ds.case_ids():
        case = ds.load(cid)
        print(cid, round(sre_of(case.ground_truth, deepreg[cid].offset, case.surface_points), 3))
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
