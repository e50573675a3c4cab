"""The label-derived reference's quality on exact, probe-pushed, flipped and wrongly paired layout fixtures: the
figures behind ``ReferenceThresholds`` (``docs/your-own-data.md``).

Usage: ``nice python bench/reference_flags.py [PAIRS_PER_PHANTOM] > bench/results/reference-flags.jsonl``; one JSON
line per (phantom, pair, kind, landmark count).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

KINDS = ("exact", "push3", "push6", "flip", "wrong")


def pair_of(kind: str, seed: int, rng: np.random.Generator):
    from layouts.common import flipped, make_pair

    if kind.startswith("push"):
        return make_pair(seed, rng, landmarks=4, push_mm=float(kind[4:]))
    if kind == "wrong":
        return make_pair(seed, rng, landmarks=4, us_seed=(seed + 1) % 3)
    pair = make_pair(seed, rng, landmarks=4)
    if kind == "flip":
        pair.us_labels = [flipped(x, 0) for x in pair.us_labels]
    return pair


def main(pairs: int = 2) -> None:
    from layouts.common import phantom, sre_of

    from regkit.importers.labels import corresponding_landmarks
    from regkit.importers.reference import reference_from_labels

    for seed in (0, 1, 2):
        for i in range(pairs):
            rng = np.random.default_rng(100 * seed + i)
            for kind in KINDS:
                for landmarks in (4, 0):
                    pair = pair_of(kind, seed, rng)
                    lm = corresponding_landmarks(
                        {f"c{k}": im for k, im in enumerate(pair.mr_labels[1:landmarks + 1], 1)},
                        {f"c{k}": im for k, im in enumerate(pair.us_labels[1:landmarks + 1], 1)})
                    t = time.perf_counter()
                    ref = reference_from_labels(pair.mr_labels[0], pair.us_labels[0], lm)
                    j = ref.to_json()
                    print(json.dumps({
                        "phantom": seed, "pair": i, "kind": kind, "landmarks": landmarks, "method": ref.method,
                        "sre_vs_offset_mm": round(sre_of(ref.transform, pair.offset, phantom(seed)[1][0]), 3),
                        "seconds": round(time.perf_counter() - t, 1),
                        **{k: j[k] for k in ("landmark_residual_mean_mm", "landmark_residual_max_mm",
                                             "surface_distance_mean_mm", "surface_distance_p95_mm", "dice")},
                        **{k: j["details"].get(k) for k in ("score_mm", "mirror_score_mm", "runner_up")},
                        "flags": sorted(ref.flags)}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
