"""Pack exported weights into the few, small files that come back from a lent GPU machine, and unpack them.

    python scripts/gpu_files.py pack WEIGHTS_DIR OUT [--part-mib 15.9] [--budget-mib 62.5]
    python scripts/gpu_files.py unpack FILES_DIR DEST

What comes back is limited to 8 files of at most 16 MiB, 64 MiB in all; the six networks' fp16 weights are
about 74 MB (MSReg alone 2 × 21.6 MB). ``pack`` compresses each file with xz, a ``.safetensors`` after a
byte shuffle (the high bytes of the fp16 values, sign and exponent, then the low bytes: a sixth smaller than
xz alone), drops files from the end of ``PRIORITY`` while the total is over ``--budget-mib`` (saying which),
and writes one tar split into ``weights.partNN`` of at most ``--part-mib``, with a manifest of SHA-256 sums.
``unpack`` joins the parts, checks the sums and restores the files byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# what to keep first when the weights do not all fit: the cascades the paper compares, MSReg (the largest) last
PRIORITY = ["attreg", "attreg-label", "featreg", "featreg-label", "dvnet", "msreg"]


def _rank(name: str) -> tuple[int, str]:
    method = name.split("-stage")[0]
    return (PRIORITY.index(method) if method in PRIORITY else len(PRIORITY), name)


def shuffle(data: bytes) -> bytes:
    """A safetensors file with its tensor bytes split into even and odd planes (header unchanged)."""
    n = int.from_bytes(data[:8], "little")
    head, body = data[:8 + n], data[8 + n:]
    return head + body[0::2] + body[1::2]


def unshuffle(data: bytes) -> bytes:
    n = int.from_bytes(data[:8], "little")
    head, body = data[:8 + n], data[8 + n:]
    half = (len(body) + 1) // 2
    out = bytearray(len(body))
    out[0::2], out[1::2] = body[:half], body[half:]
    return head + bytes(out)


def _compress(path: str) -> tuple[str, bytes, str]:
    raw = Path(path).read_bytes()
    data = shuffle(raw) if path.endswith(".safetensors") else raw
    return Path(path).name, lzma.compress(data, preset=6), hashlib.sha256(raw).hexdigest()


def pack(src: Path, out: Path, part_mib: float, budget_mib: float, workers: int | None = None) -> list[Path]:
    files = sorted((p for p in src.iterdir() if p.is_file()), key=lambda p: _rank(p.name))
    with ProcessPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        packed = list(pool.map(_compress, [str(p) for p in files]))
    manifest, dropped = {}, []
    total = sum(len(blob) for _, blob, _ in packed)
    while packed and total > budget_mib * 2**20:
        method = packed[-1][0].split("-stage")[0]
        while packed and packed[-1][0].split("-stage")[0] == method:  # a cascade's stages go together
            name, blob, _ = packed.pop()
            total -= len(blob)
            dropped.append(name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob, sha in packed:
            manifest[name] = {"sha256": sha, "shuffled": name.endswith(".safetensors")}
            info = tarfile.TarInfo(name + ".xz")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        doc = json.dumps({"files": manifest, "dropped": dropped}, indent=2).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(doc)
        tar.addfile(info, io.BytesIO(doc))
    data = buf.getvalue()
    step = int(part_mib * 2**20)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for k in range(0, len(data), step):
        p = out / f"weights.part{k // step + 1:02d}"
        p.write_bytes(data[k:k + step])
        parts.append(p)
    print(f"packed {len(manifest)} files into {len(parts)} part(s), {len(data) / 2**20:.1f} MiB"
          + (f"; left out (over {budget_mib} MiB): {', '.join(dropped)}" if dropped else ""))
    return parts


def unpack(src: Path, dest: Path) -> dict:
    parts = sorted(src.glob("weights.part*"))
    if not parts:
        sys.exit(f"no weights.part* in {src}")
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)))
    manifest = json.loads(tar.extractfile("manifest.json").read())
    dest.mkdir(parents=True, exist_ok=True)
    for name, meta in manifest["files"].items():
        data = lzma.decompress(tar.extractfile(name + ".xz").read())
        if meta["shuffled"]:
            data = unshuffle(data)
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            sys.exit(f"{name}: SHA-256 differs from the manifest (a part is missing or damaged)")
        (dest / name).write_bytes(data)
    print(f"unpacked {len(manifest['files'])} files into {dest}"
          + (f"; left out on the device: {', '.join(manifest['dropped'])}" if manifest["dropped"] else ""))
    return manifest


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--part-mib", type=float, default=15.9)
    p.add_argument("--budget-mib", type=float, default=62.5)
    u = sub.add_parser("unpack")
    u.add_argument("src", type=Path)
    u.add_argument("dest", type=Path)
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.src, a.out, a.part_mib, a.budget_mib)
    else:
        unpack(a.src, a.dest)
