"""The data side of the bad-input battery: generated cases, not a list. Each class below is a generator of
variants, and each variant goes through every entry point it can reach (the command line and the Python API):

* images: each bad geometry field (spacing, origin, direction, size), written in each format that can hold it, and
  each header field ITK would quietly replace, for each image of a case (MR, TRUS, their labels);
* labels that are not masks (several values, 0/255, fractions, negatives, every voxel, scattered voxels);
* every file regkit writes and reads back (dataset.json, case.json, a checkpoint's .json, run.json, starts.csv,
  results.csv) × each corruption (binary, empty, cut, the wrong JSON type, the wrong field type, text where
  numbers belong, an unknown version, duplicate starts, a stored SRE that disagrees with its matrix);
* transforms that are not finite or not rigid, in each format (ITK text and binary, 4×4 text, elastix);
* Python API arguments of the wrong type.

Each must end in a named error: on the command line a non-zero exit, the input named, no traceback; from the API a
``RegkitError`` naming it; and nothing that looks like a result (no ``ok`` row, no ``result.json``), with the
files already written unchanged. :data:`CHECKS` counts the (variant, entry point) checks made, by entry point.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from regkit.app.cli import main
from regkit.errors import RegkitError
from regkit.image import make_image
from regkit.transform import RigidTransform, rotation_matrix

NAMES = {"mr": ("MR image",), "trus": ("TRUS image",), "mr_label": ("MR prostate label",),
         "trus_label": ("TRUS", "label")}  # what names each image in its errors (regkit.register says "TRUS label")
GROUND_TRUTH = RigidTransform.from_params([2.0, 1.0, -1.0, 3.0, -2.0, 4.0])
CHECKS: Counter = Counter()  # entry point -> named-error checks made in this session


# ============================================================================================== the tiny case
def tiny_case_images() -> dict[str, sitk.Image]:
    """A small, valid MR–TRUS pair: a 32×32×16 MR with a spherical prostate, a 40³ TRUS rotated about z."""
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:16, :32, :32]
    p = np.stack([x - 15.5, y - 15.5, z * 2.5 - 18.75], -1)
    r = np.linalg.norm(p, axis=-1)
    mr = (100 + 80 * np.exp(-(r / 10) ** 2) + 20 * np.sin(p[..., 0] / 3) + rng.normal(0, 3, r.shape)).astype(np.int16)
    mr_img = make_image(mr, (1.0, 1.0, 2.5), (-15.5, -15.5, -18.75))
    direction = rotation_matrix([0, 0, 20])
    centre = GROUND_TRUTH.apply(np.zeros(3))
    origin = centre - direction @ np.full(3, 0.8 * 39 / 2)
    k, j, i = np.mgrid[:40, :40, :40]
    q = np.stack([i, j, k], -1) * 0.8 @ direction.T + origin
    back = GROUND_TRUTH.inverse().apply(q.reshape(-1, 3)).reshape(q.shape)
    rb = np.linalg.norm(back, axis=-1)
    trus = np.clip(60 + 120 * np.exp(-(rb / 9) ** 2) + rng.normal(0, 4, rb.shape), 1, 255).astype(np.uint8)
    return {"mr": mr_img, "mr_label": make_image((r < 8).astype(np.uint8), (1.0, 1.0, 2.5), (-15.5, -15.5, -18.75)),
            "trus": make_image(trus, (0.8,) * 3, origin, direction),
            "trus_label": make_image((rb < 8).astype(np.uint8), (0.8,) * 3, origin, direction)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A dataset of the tiny case (train: case000), a starts file for it, and the same images as a paired layout."""
    from regkit.case import Case
    from regkit.dataset import write_case, write_manifest
    from regkit.starts import make_starts, write_starts

    root = tmp_path_factory.mktemp("tiny")
    images = tiny_case_images()
    case = Case("case000", images["mr"], images["trus"], images["mr_label"], ground_truth=GROUND_TRUTH,
                moving_label=images["trus_label"], metadata={"moving_modality": "US"})
    write_case(case, root / "data" / "case000")
    write_manifest(root / "data", {"train": ["case000"]})
    write_starts(make_starts([case], "4mm", 2), root / "starts.csv")
    return root


@pytest.fixture
def data(tiny, tmp_path) -> Path:
    """A fresh copy of the tiny dataset, to spoil."""
    shutil.copytree(tiny / "data", tmp_path / "data")
    return tmp_path / "data"


def case_file(root: Path, role: str) -> Path:
    return next((root / "case000").glob(f"{role}.*"))


def replace_image(root: Path, role: str, image: sitk.Image, suffix: str = ".nii.gz") -> Path:
    case_file(root, role).unlink()
    path = root / "case000" / f"{role}{suffix}"
    sitk.WriteImage(image, str(path))
    return path


# ============================================================================================== entry points
def cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def names_all(text, needles: tuple[str, ...]) -> bool:
    """Every needle is in the text before its fix (case and white space aside); ``a|b`` is either."""
    text = " ".join(str(text).split()).lower().split(" fix: ")[0]
    return all(any(n.lower() in text for n in needle.split("|")) for needle in needles)


def assert_named_cli(result, needles: tuple[str, ...], where: str) -> None:
    """A non-zero exit naming every needle, and no traceback."""
    CHECKS[where.split(" (")[0]] += 1
    assert result.exit_code in (1, 2), f"{where}: exit {result.exit_code}: {result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), f"{where}: {result.exception!r}"
    assert "Traceback" not in result.output, where
    assert names_all(result.output, needles), f"{where}: {needles} not all in {result.output!r}"


def assert_named_api(call: Callable, needles: tuple[str, ...], where: str) -> None:
    CHECKS[where.split(" (")[0] if " given " not in where else "API argument"] += 1
    with pytest.raises(RegkitError) as info:
        call()
    assert names_all(info.value, needles), f"{where}: {needles} not all in {info.value}"


def no_ok_row(out: Path) -> bool:
    path = out / "results.csv"
    return not path.exists() or b",ok," not in path.read_bytes()


def load_case000(root: Path):
    from regkit.dataset import load_dataset

    return load_dataset(root).load("case000")


def through_dataset(root: Path, needles: tuple[str, ...], out: Path) -> None:
    """The dataset's entry points: ``load_dataset(...).load`` and ``regkit compare`` (nothing recorded)."""
    assert_named_api(lambda: load_case000(root), needles, "load_dataset().load")
    result = cli("compare", "--data", root, "--split", "train", "-m", "identity", "-k", "1", "-o", out / "cmp")
    assert_named_cli(result, needles, "regkit compare")
    assert no_ok_row(out / "cmp") and not (out / "cmp" / "run.json").exists()


def through_register(root: Path, needles: tuple[str, ...], out: Path, roles=("mr", "trus", "mr_label"),
                     initial: Path | None = None) -> None:
    """``regkit register`` and ``regkit.register`` on the case's files (no result written)."""
    from regkit.app.register_pair import register

    files = {r: case_file(root, r) for r in roles}
    args = ["register", "--fixed", files["mr"], "--moving", files["trus"], "-m", "identity", "-o", out / "reg"]
    if "mr_label" in files:
        args += ["--fixed-label", files["mr_label"]]
    if initial is not None:
        args += ["--initial-transform", initial]
    if "trus_label" not in files:  # the command line takes no TRUS label
        assert_named_cli(cli(*args), needles, "regkit register")
        assert not (out / "reg" / "result.json").exists()
    assert_named_api(lambda: register(files["mr"], files["trus"], files.get("mr_label"), method="identity",
                                      moving_label=files.get("trus_label"), initial_transform=initial,
                                      out=out / "api"), needles, "regkit.register")
    assert not (out / "api" / "result.json").exists()


def through_import(root: Path, needles: tuple[str, ...], out: Path) -> None:
    """``regkit import paired`` of the case's files (nothing imported)."""
    src = out / "paired"
    for role, folder in (("mr", "mr_images"), ("trus", "us_images"), ("mr_label", "mr_labels")):
        path = case_file(root, role)
        (src / folder).mkdir(parents=True)
        shutil.copy(path, src / folder / path.name.replace(role, "p1", 1))
        if path.suffix == ".mhd":
            shutil.copy(path.with_suffix(".raw"), src / folder / "p1.raw")
    assert_named_cli(cli("import", "paired", src, out / "imported", "--geometry", "header"), needles, "regkit import")
    assert not (out / "imported" / "p1").exists()


# ============================================================================================== images
@dataclass(frozen=True)
class Spoil:
    """One bad input: its name, how it is made, and the words its error must hold (besides the input's name)."""

    name: str
    make: Callable
    needles: tuple[str, ...]
    formats: tuple[str, ...] = (".nii.gz", ".mha")  # the files that can hold it


def _with(image: sitk.Image, **geometry) -> sitk.Image:
    out = sitk.Image(image)
    for key, value in geometry.items():
        getattr(out, f"Set{key.capitalize()}")(value)
    return out


def _axis(values, axis: int, value: float) -> tuple:
    v = list(values)
    v[axis] = value
    return tuple(v)


def geometry_spoils() -> list[Spoil]:
    """Each bad value of each geometry field of an image in memory (SimpleITK lets each be set), on an axis that
    turns with the variant (x, y, z, x, ...)."""
    nan, inf = float("nan"), float("inf")
    values = [("spacing", v, needle) for v, needle in ((1e9, "enormous"), (1e-6, "below 0.001 mm"), (nan, "spacing"),
                                                        (inf, "spacing"))]
    values += [("origin", v, needle)
               for v, needle in ((nan, "NaN"), (-inf, "NaN or infinite"), (1e9, "from the scanner"))]
    values += [("direction", v, "direction") for v in ("scaled", "sheared")]
    values += [("direction", "nan", "direction|NaN")]  # SimpleITK writes such a MetaImage's Offset as NaN too
    values += [("size", v, "single slice|is 2-D") for v in ("single slice",)]
    out = []
    for k, (field, value, needle) in enumerate(values):
        axis = k % 3
        if field in ("spacing", "origin"):
            def make(im, f=field, a=axis, v=value):
                return _with(im, **{f: _axis(getattr(im, f"Get{f.capitalize()}")(), a, v)})
            formats = (".nii.gz", ".mha", ".nrrd") if field == "spacing" else (".nii.gz", ".mha")
            out.append(Spoil(f"{field}[{'xyz'[axis]}]={value:g}", make, (needle,), formats))
        elif field == "direction":
            m = np.eye(3)
            if value == "scaled":
                m[axis, axis] = 2.0
            elif value == "sheared":
                m[(axis + 1) % 3, axis] = 0.4
            else:
                m[axis, axis] = nan

            def make(im, m=m):
                return _with(im, direction=tuple((np.array(im.GetDirection()).reshape(3, 3) @ m).ravel()))
            out.append(Spoil(f"direction {value} along {'xyz'[axis]}", make, (needle,),
                             (".mha",)))  # ITK's NIfTI writer makes a direction orthogonal: see header_spoils
        else:
            for a in range(3):
                out.append(Spoil(f"single slice along {'xyz'[a]}", lambda im, a=a: im[tuple(
                    slice(0, 1) if i == a else slice(None) for i in range(3))], (needle,)))
    out += [Spoil("2-D", lambda im: im[:, :, im.GetSize()[2] // 2], ("is 2-D",)),
            Spoil("4-D", lambda im: sitk.JoinSeries([im, im]), ("is 4-D",)),
            Spoil("3 components", lambda im: sitk.Compose([im, im, im]), ("3 components per voxel",))]
    return out


GEOMETRY = geometry_spoils()


def _patch_nifti(path: Path, offset: int, value: float) -> None:
    import gzip
    import struct

    data = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<f", data, offset, value)
    path.write_bytes(gzip.compress(bytes(data)))


def _patch_header(path: Path, key: str, text: str) -> None:
    data = path.read_bytes()
    path.write_bytes(re.sub(rf"{key} = [^\n]*".encode(), f"{key} = {text}".encode(), data, count=1))


def header_spoils() -> list[Spoil]:
    """Header fields ITK would replace without a word (each written into the file after SimpleITK wrote it), on an
    axis that turns with the variant."""
    values = [("NIfTI pixdim", v, 80, "pixdim") for v in (0.0, -1.0, float("nan"))]
    values += [("NIfTI srow_x", float("nan"), 280, "sform")]
    values += [("MetaImage ElementSpacing", v, "ElementSpacing", "ElementSpacing") for v in ("0", "-1", "nan")]
    values += [("MetaImage Offset", v, "Offset", "offset") for v in ("nan", "inf")]
    out = []
    for k, (name, value, where, needle) in enumerate(values):
        axis = k % 3
        if name.startswith("NIfTI"):
            def make(p, at=where + 4 * axis, v=value):
                _patch_nifti(p, at, v)
        else:
            fill = "1" if where == "ElementSpacing" else "0"

            def make(p, key=where, text=" ".join(value if i == axis else fill for i in range(3))):
                _patch_header(p, key, text)
        out.append(Spoil(f"{name}[{axis + (name == 'NIfTI pixdim')}]={value}", make, (needle,),
                         (".nii.gz",) if name.startswith("NIfTI") else (".mha",)))
    out.append(Spoil("MetaImage TransformMatrix singular", lambda p: _patch_header(
        p, "TransformMatrix", "0 0 0 0 1 0 0 0 1"), ("cannot read",), (".mha",)))
    return out


HEADERS = header_spoils()


@pytest.mark.parametrize("role", ["mr", "trus", "mr_label"])
@pytest.mark.parametrize("spoil", GEOMETRY, ids=[s.name for s in GEOMETRY])
def test_bad_geometry_is_named_at_every_entry(spoil, role, data, tmp_path):
    image = sitk.ReadImage(str(case_file(data, role)))
    bad = spoil.make(image)
    needles = (*NAMES[role], *spoil.needles)
    for suffix in spoil.formats:
        try:
            replace_image(data, role, bad, suffix)
        except RuntimeError:  # a format that cannot hold it (e.g. a NaN spacing in a MetaImage): the other one can
            continue
        through_dataset(data, needles, tmp_path / suffix)
        through_register(data, needles, tmp_path / suffix)
        if role != "mr_label":
            through_import(data, needles, tmp_path / suffix)
    from regkit.app.register_pair import register
    from regkit.case import Case

    tiny = tiny_case_images()
    tiny[role] = bad
    assert_named_api(lambda: Case("c", tiny["mr"], tiny["trus"], tiny["mr_label"], ground_truth=GROUND_TRUTH),
                     needles, "Case(...) in memory")
    assert_named_api(lambda: register(tiny["mr"], tiny["trus"], tiny["mr_label"], method="identity",
                                      out=tmp_path / "mem"), needles, "regkit.register in memory")


@pytest.mark.parametrize("role", ["mr", "trus", "mr_label", "trus_label"])
@pytest.mark.parametrize("spoil", HEADERS, ids=[s.name for s in HEADERS])
def test_header_geometry_itk_would_replace_is_named(spoil, role, data, tmp_path):
    path = replace_image(data, role, sitk.ReadImage(str(case_file(data, role))), spoil.formats[0])
    spoil.make(path)
    needles = (*NAMES[role], *spoil.needles)
    through_dataset(data, needles, tmp_path)
    if role != "trus_label":
        through_register(data, needles, tmp_path)


def test_a_trus_far_from_the_mapped_prostate_names_the_image_as_well_as_the_ground_truth(data, tmp_path):
    """A TRUS whose origin is 5 m off (finite, so no geometry check can tell): the ground truth then maps the MR
    prostate outside it, and the error says where the prostate lands, where the TRUS lies, and which file to check."""
    for role in ("trus", "trus_label"):
        image = sitk.ReadImage(str(case_file(data, role)))
        image.SetOrigin(tuple(np.array(image.GetOrigin()) + [5000.0, 0.0, 0.0]))
        replace_image(data, role, image)
    needles = ("maps the MR prostate entirely outside the TRUS volume", "trus.nii.gz", "spans x [49")
    through_dataset(data, needles, tmp_path)


# ============================================================================================== labels
def _halves(lab: np.ndarray, parts: int) -> np.ndarray:
    """The label's voxels numbered 1..parts by slab along x (a multi-label segmentation)."""
    out = lab.astype(np.int16)
    xs = np.nonzero(lab)[2]
    edges = np.linspace(xs.min(), xs.max() + 1, parts + 1)
    for k in range(parts):
        out[:, :, int(edges[k]):int(edges[k + 1])] *= k + 1
    return out * lab


def _scattered(lab: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros_like(lab)
    out.flat[np.random.default_rng(n).choice(out.size, n, replace=False)] = 1
    return out


def label_spoils() -> list[Spoil]:
    """Labels that are not 0/1 masks of one region, as functions of the valid label's array."""
    multi = [Spoil(f"values 0..{k}", lambda a, k=k: _halves(a, k), ("multi-label segmentation",)) for k in (2, 3, 5)]
    single = [Spoil(f"values 0 and {v}", lambda a, v=v: (a * v).astype(np.uint8), (f"the values 0 and {v}",))
              for v in (2, 255)]
    fractions = [Spoil("values 0 and 0.5", lambda a: a * np.float32(0.5), ("between the whole numbers",)),
                 Spoil("a probability map", lambda a: ndimage_smooth(a), ("between the whole numbers",)),
                 Spoil("one voxel 0.7", lambda a: _one_voxel(a.astype(np.float32), 0.7),
                       ("between the whole numbers",))]
    signs = [Spoil("background -1", lambda a: a.astype(np.int8) * 2 - 1, ("negative",)),
             Spoil("values -1, 0, 1", lambda a: _one_voxel(a.astype(np.int8), -1), ("negative",))]
    shapes = [Spoil("every voxel", lambda a: np.ones_like(a), ("every voxel",)),
              Spoil("empty", lambda a: np.zeros_like(a), ("is empty",))]
    shapes += [Spoil(f"{n} scattered voxels", lambda a, n=n: _scattered(a, n), ("scattered",)) for n in (12, 60, 300)]
    finite = [Spoil("a NaN voxel", lambda a: _one_voxel(a.astype(np.float32), np.nan), ("NaN",)),
              Spoil("an infinite voxel", lambda a: _one_voxel(a.astype(np.float32), np.inf), ("infinite",))]
    return multi + single + fractions + signs + shapes + finite


def ndimage_smooth(a: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(a.astype(np.float32), 1.0)


def _one_voxel(a: np.ndarray, value) -> np.ndarray:
    out = a.copy()
    out.flat[int(np.flatnonzero(a)[0])] = value
    return out


LABELS = label_spoils()


@pytest.mark.parametrize("role", ["mr_label", "trus_label"])
@pytest.mark.parametrize("spoil", LABELS, ids=[s.name for s in LABELS])
def test_a_label_that_is_not_a_mask_is_refused_at_every_entry(spoil, role, data, tmp_path):
    from regkit.app.register_pair import register
    from regkit.case import Case

    valid = sitk.ReadImage(str(case_file(data, role)))
    bad = sitk.GetImageFromArray(spoil.make(sitk.GetArrayFromImage(valid)))
    bad.CopyInformation(valid)
    needles = (*NAMES[role], *spoil.needles)
    replace_image(data, role, bad)
    through_dataset(data, needles, tmp_path)
    through_register(data, needles, tmp_path, roles=("mr", "trus", role))
    tiny = tiny_case_images()
    tiny[role] = bad
    assert_named_api(lambda: Case("c", tiny["mr"], tiny["trus"], tiny["mr_label"], ground_truth=GROUND_TRUTH,
                                  moving_label=tiny["trus_label"]), needles, "Case(...) in memory")
    assert_named_api(lambda: register(tiny["mr"], tiny["trus"], tiny["mr_label"], moving_label=tiny["trus_label"],
                                      method="identity", out=tmp_path / "mem"), needles, "regkit.register in memory")


def test_the_tiny_case_passes_every_entry_the_battery_uses(tiny, tmp_path):
    """The control: unspoilt, the tiny case loads, registers and imports, so each refusal above is its spoil's."""
    from regkit.app.register_pair import register
    from regkit.dataset import load_dataset
    from regkit.starts import read_starts

    data = tiny / "data"
    case = load_dataset(data).load("case000")
    assert read_starts(tiny / "starts.csv", [case])
    files = {r: case_file(data, r) for r in NAMES}
    result = cli("register", "--fixed", files["mr"], "--moving", files["trus"], "--fixed-label", files["mr_label"],
                 "-m", "identity", "-o", tmp_path / "reg")
    assert result.exit_code == 0, result.output
    assert register(files["mr"], files["trus"], files["mr_label"], moving_label=files["trus_label"],
                    method="identity", out=tmp_path / "api").result.ok
    src = tmp_path / "paired"
    for role, folder in (("mr", "mr_images"), ("trus", "us_images"), ("mr_label", "mr_labels")):
        (src / folder).mkdir(parents=True)
        shutil.copy(files[role], src / folder / "p1.nii.gz")
    result = cli("import", "paired", src, tmp_path / "imported", "--geometry", "header")
    assert result.exit_code == 0, result.output


# ============================================================================================== regkit's files
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00"


def text_corruptions(valid: str) -> list[tuple[str, bytes, str]]:
    """(name, content, needle) for any text file: binary, empty, blank, cut in the middle, UTF-16."""
    return [("binary", BINARY, "not text"), ("empty", b"", "is empty"), ("blank", b"\n  \n", "is empty"),
            ("UTF-16", valid.encode("utf-16"), "not text"), ("NUL bytes", valid.encode()[:20] + b"\0\0" +
                                                            valid.encode()[20:], "not text")]


def json_corruptions(valid: dict, fields: dict, version: tuple[str, bool] | None) -> list[tuple[str, bytes, str]]:
    """(name, content, needle) for a JSON record: each text corruption; cut; each JSON type that is not an object;
    each field of ``fields`` given a value of another type; and each wrong ``version`` (key, required)."""
    text = json.dumps(valid, indent=2)
    out = text_corruptions(text) + [("cut", text[: len(text) // 2].encode(), "not valid JSON"),
                                    ("deep", b"[" * 100_000, "nests too deep|not valid JSON")]
    for name, value, words in (("array", [valid], "an array"), ("text", "x", "text"), ("number", 5, "a whole number"),
                               ("null", None, "null"), ("true", True, "true/false")):
        out.append((f"a JSON {name}", json.dumps(value).encode(), f"holds {words}"))
    others = {str: 5, int: "1", float: "x", list: {"a": 1}, dict: [1], bool: "yes"}
    for key, types in fields.items():
        first = (types if isinstance(types, tuple) else (types,))[0]
        for wrong in ([others[first], 1.5] if first is int else [others[first]]):
            doc = {**valid, key: wrong}
            out.append((f"{key}={wrong!r}", json.dumps(doc).encode(), f"'{key}' must be"))
    if version is not None:
        key, required = version
        for value, needle in ((2, "newer than this regkit"), (0, "no regkit wrote"), (-1, "no regkit wrote"),
                              ("1", "must be a whole number"), (True, "must be a whole number")):
            out.append((f"{key}={value!r}", json.dumps({**valid, key: value}).encode(), needle))
        if required:
            out.append((f"no {key}", json.dumps({k: v for k, v in valid.items() if k != key}).encode(), key))
    return out


def _manifest_variants():
    from regkit.dataset import MANIFEST_FIELDS

    valid = {"regkit_dataset": 1, "name": "tiny", "splits": {"train": ["case000"]}}
    extra = [("splits as a list", json.dumps({**valid, "splits": ["case000"]}).encode(), "'splits' must be"),
             ("a split as text", json.dumps({**valid, "splits": {"train": "case000"}}).encode(), "list of case ids"),
             ("a case id as a number", json.dumps({**valid, "splits": {"train": [0]}}).encode(), "list of case ids"),
             ("no splits", json.dumps({"regkit_dataset": 1}).encode(), "'splits'")]
    return json_corruptions(valid, MANIFEST_FIELDS, ("regkit_dataset", False)) + extra


def _case_json_variants():
    from regkit.dataset import CASE_FIELDS

    return json_corruptions({"case_id": "case000", "moving_modality": "US"}, CASE_FIELDS, None)


MANIFESTS = _manifest_variants()
CASE_JSONS = _case_json_variants()


def import_into(dst: Path, needles: tuple[str, ...], tiny: Path) -> None:
    """``regkit import paired`` of the tiny case into ``dst``, an existing dataset folder: refused."""
    src = tiny / "paired"
    if not src.exists():
        for role, folder in (("mr", "mr_images"), ("trus", "us_images"), ("mr_label", "mr_labels")):
            (src / folder).mkdir(parents=True)
            shutil.copy(case_file(tiny / "data", role), src / folder / "case000.nii.gz")
    assert_named_cli(cli("import", "paired", src, dst, "--geometry", "header"), needles, "regkit import (into)")


@pytest.mark.parametrize("name,content,needle", MANIFESTS, ids=[v[0] for v in MANIFESTS])
def test_a_damaged_manifest_is_named(name, content, needle, data, tiny, tmp_path):
    (data / "dataset.json").write_bytes(content)
    needles = ("dataset.json", "manifest", needle)
    through_dataset(data, needles, tmp_path)
    import_into(data, needles, tiny)
    assert (data / "dataset.json").read_bytes() == content


@pytest.mark.parametrize("name,content,needle", CASE_JSONS, ids=[v[0] for v in CASE_JSONS])
def test_a_damaged_case_json_is_named(name, content, needle, data, tiny, tmp_path):
    (data / "case000" / "case.json").write_bytes(content)
    needles = ("case.json", "metadata", needle)
    through_dataset(data, needles, tmp_path)
    import_into(data, needles, tiny)
    assert (data / "case000" / "case.json").read_bytes() == content


def _checkpoint_variants():
    from regkit.deep.checkpoint import CONFIG_FIELDS

    valid = json.loads(WEIGHTS.with_suffix(".json").read_text())
    extra = [(f"input_shape={v!r}", json.dumps({**valid, "input_shape": v}).encode(), "input_shape")
             for v in ([64, 64], ["a", 1, 1], [0, 64, 64])]
    return json_corruptions(valid, CONFIG_FIELDS, ("regkit_checkpoint", True)) + extra


WEIGHTS = Path(__file__).resolve().parents[1] / "deep" / "weights" / "attreg-stage1.safetensors"
CHECKPOINTS = _checkpoint_variants()


def test_the_checkpoint_schema_names_every_config_field():
    from regkit.deep.checkpoint import CONFIG_FIELDS, CheckpointConfig

    assert set(CONFIG_FIELDS) == set(CheckpointConfig.__dataclass_fields__)


@pytest.mark.parametrize("name,content,needle", CHECKPOINTS, ids=[v[0] for v in CHECKPOINTS])
def test_a_damaged_checkpoint_config_is_named(name, content, needle, data, tmp_path):
    from regkit.deep.checkpoint import load_checkpoint, read_config
    from regkit.registry import get_registrar

    config = tmp_path / "ck.json"
    config.write_bytes(content)
    (tmp_path / "ck.safetensors").symlink_to(WEIGHTS)
    needles = ("ck.json", "checkpoint config", needle)
    assert_named_api(lambda: read_config(config), needles, "read_config")
    assert_named_api(lambda: load_checkpoint(tmp_path / "ck"), needles, "load_checkpoint")
    assert_named_api(lambda: get_registrar("attreg", checkpoint=str(config)), needles, "get_registrar")
    result = cli("register", "--fixed", case_file(data, "mr"), "--moving", case_file(data, "trus"), "--fixed-label",
                 case_file(data, "mr_label"), "-m", "attreg", "-O", f"checkpoint={config}", "-o", tmp_path / "reg")
    assert_named_cli(result, needles, "regkit register -m attreg")
    assert not (tmp_path / "reg" / "result.json").exists()


def _run_record() -> dict:
    from regkit.evaluation.provenance import RUN_FORMAT

    return {"regkit_run": RUN_FORMAT, "dataset": "data", "split": "train", "cases": ["case000"], "starts_per_case": 1,
            "seeds": {"starts": 0}, "methods": [{"label": "identity", "registrar": "identity", "options": {},
                                                 "settings": {}}]}


def _run_record_variants():
    from regkit.evaluation.provenance import METHOD_FIELDS, RUN_FIELDS

    valid = _run_record()
    out = json_corruptions(valid, RUN_FIELDS, ("regkit_run", False))
    method = valid["methods"][0]
    for name, content, needle in json_corruptions(method, METHOD_FIELDS, None):
        if name.startswith(tuple(METHOD_FIELDS)):
            out.append((f"methods[0].{name}", json.dumps({**valid, "methods": [json.loads(content)]}).encode(), needle))
    out += [("a method that is text", json.dumps({**valid, "methods": ["identity"]}).encode(), "methods[0]"),
            ("a method without a label", json.dumps({**valid, "methods": [{"registrar": "identity", "options": {}}]})
             .encode(), "'label'")]
    return out


RUN_RECORDS = _run_record_variants()


def compare_into(data: Path, out: Path, *extra) -> object:
    return cli("compare", "--data", data, "--split", "train", "-m", "identity", "-k", "1", "--init", "4mm",
               "-o", out, *extra)


def compare_api(data: Path, out: Path, **extra):
    from regkit.evaluation.compare import compare

    return compare(methods="identity", data=data, split="train", cases=1, starts_per_case=1, init="4mm", out=out,
                   workers=1, show_progress=False, echo=None, **extra)


def through_compare(data: Path, out: Path, name: str, needles: tuple[str, ...], python: bool = True, **api) -> None:
    """``regkit compare`` (and, with ``python``, ``regkit.compare``) into ``out`` (which holds a damaged file):
    refused, ``out``'s files unchanged, no ``ok`` row."""
    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".regkit.lock"}

    before = files()
    extra = [x for k, v in api.items() for x in (f"--{k.replace('_file', '').replace('_', '-')}", v)]
    assert_named_cli(compare_into(data, out, *extra), needles, f"regkit compare ({name})")
    if python:
        assert_named_api(lambda: compare_api(data, out, **api), needles, f"regkit.compare ({name})")
    assert files() == before, "a refused run changed its folder"
    assert "results.csv" in before or no_ok_row(out)


@pytest.mark.parametrize("name,content,needle", RUN_RECORDS, ids=[v[0] for v in RUN_RECORDS])
def test_a_damaged_run_record_is_named_and_kept(name, content, needle, data, tmp_path):
    from regkit.evaluation.provenance import read_record

    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_bytes(content)
    needles = ("run.json", "run record", needle)
    assert_named_api(lambda: read_record(out / "run.json"), needles, "read_record")
    through_compare(data, out, name, needles)


# ---------------------------------------------------------------------------------------------- tables
def table_corruptions(valid: str, kinds: dict[str, str]) -> list[tuple[str, bytes, str]]:
    """(name, content, needle) for a CSV table: each text corruption; a ragged row; each numeric column holding
    text; each whole-number column holding a fraction or nothing."""
    header, *rows = valid.splitlines()
    columns = header.split(",")
    out = text_corruptions(valid) + [("ragged row", f"{valid}{rows[0]},extra,cells\n".encode(), "not a CSV table")]

    def with_cell(column: str, value: str) -> bytes:
        cells = rows[0].split(",")
        cells[columns.index(column)] = value
        return "\n".join([header, ",".join(cells), *rows[1:]]).encode() + b"\n"

    for column, kind in kinds.items():
        if kind == "number":
            out.append((f"{column}='abc'", with_cell(column, "abc"), f"column '{column}' holds 'abc' on line 2"))
        elif kind == "whole":
            for value in ("abc", "1.5", ""):
                out.append((f"{column}={value!r}", with_cell(column, value), f"column '{column}' holds"))
    return out


def every_entry(name: str) -> bool:
    """Whether a table's variant goes through every entry point, or (a matrix entry off the diagonal: the same
    code as the diagonal's) through the table's reader alone."""
    m = re.match(r"(t_)?m(\d)(\d)=", name)
    return m is None or m[2] == m[3]


def _starts_variants(valid: str):
    from regkit.starts import MATRIX_COLUMNS

    kinds = {"start_id": "whole", "seed": "whole", "target_sre": "number", **{c: "number" for c in MATRIX_COLUMNS}}
    header, first, *rest = valid.splitlines()
    columns = header.split(",")

    def edit(**cells) -> bytes:
        values = first.split(",")
        for column, value in cells.items():
            values[columns.index(column)] = value
        return "\n".join([header, ",".join(values), *rest]).encode() + b"\n"

    target = float(first.split(",")[columns.index("target_sre")])
    m00 = float(first.split(",")[columns.index("m00")])
    out = table_corruptions(valid, kinds)
    out += [("a start twice", f"{valid}{first}\n".encode(), "more than once"),
            ("a stored SRE that disagrees", edit(target_sre=repr(target + 0.5)), "states a target SRE"),
            ("a stored SRE of another case's", edit(target_sre="0"), "states a target SRE"),
            ("a negative target", edit(target_sre="-1"), "target SRE is a finite number"),
            ("an infinite target", edit(target_sre="inf"), "target SRE is a finite number"),
            ("a NaN matrix entry", edit(m12="nan"), "NaN or infinite"),
            ("a scaled matrix", edit(m00=repr(2 * m00)), "not rigid")]
    out += [(f"no column {c}", "\n".join(",".join(x for i, x in enumerate(line.split(",")) if columns[i] != c)
                                         for line in valid.splitlines()).encode(), "lacks columns")
            for c in ("case", "start_id", "init", "target_sre", "m23")]
    return out


@pytest.fixture(scope="module")
def starts_variants(tiny):
    return _starts_variants((tiny / "starts.csv").read_text())


STARTS_NAMES = [v[0] for v in _starts_variants(
    "case,start_id,init,target_sre,seed," + ",".join(f"m{i}{j}" for i in range(4) for j in range(4)) + "\n"
    + "c,0,4mm,4,0," + ",".join("1" if i == j else "0" for i in range(4) for j in range(4)) + "\n")]


@pytest.mark.parametrize("name", STARTS_NAMES)
def test_a_damaged_starts_file_is_named_at_every_entry(name, starts_variants, data, tmp_path):
    from regkit.starts import read_starts

    content, needle = next((c, n) for v, c, n in starts_variants if v == name)
    path = tmp_path / "starts.csv"
    path.write_bytes(content)
    needles = ("starts.csv", needle)
    assert_named_api(lambda: read_starts(path, [load_case000(data)]), needles, "read_starts")
    if not every_entry(name):
        return
    out = tmp_path / "out"
    out.mkdir()
    through_compare(data, out, name, needles, starts_file=path)
    if "SRE" not in name:  # OUT/starts.csv of an earlier run (its starts are compared by matrix, not by SRE)
        shutil.copy(path, out / "starts.csv")
        through_compare(data, out, name, needles, python=False)


def _results_valid() -> str:
    from regkit.evaluation.store import COLUMNS, ResultRow

    row = ResultRow("identity", "case000", 0, "4mm", target_sre=4.0, initial_sre=4.0, final_sre=4.0, runtime_s=0.01,
                    status="ok", transform=RigidTransform.identity()).record()
    cells = ["" if isinstance(v, float) and np.isnan(v) else str(v) for v in row.values()]
    return ",".join(COLUMNS) + "\n" + ",".join(cells) + "\n"


def _results_variants():
    from regkit.evaluation.store import KINDS

    valid = _results_valid()
    out = [(name, content, "another tool" if name == "blank" else needle)  # an empty table is one not yet started
           for name, content, needle in table_corruptions(valid, {c: k for c, k in KINDS.items() if k != "text"})
           if name != "empty"]
    out.append(("no method column", "\n".join(line.split(",", 1)[1] for line in valid.splitlines()).encode() + b"\n",
                "written by another tool"))
    return out


RESULTS = _results_variants()


@pytest.mark.parametrize("name,content,needle", RESULTS, ids=[v[0] for v in RESULTS])
def test_a_damaged_results_table_is_named_and_kept(name, content, needle, data, tmp_path):
    from regkit.evaluation.store import ResultStore

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_bytes(content)
    needles = ("results.csv", needle)
    assert_named_api(lambda: ResultStore(out / "results.csv"), needles, "ResultStore")
    if every_entry(name):
        through_compare(data, out, name, needles)


# ============================================================================================== transforms
def _itk_text(name: str, parameters, fixed) -> str:
    return (f"#Insight Transform File V1.0\n#Transform 0\nTransform: {name}_double_3_3\n"
            f"Parameters: {' '.join(map(str, parameters))}\nFixedParameters: {' '.join(map(str, fixed))}\n")


def _write_sitk(transform) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        sitk.WriteTransform(transform, str(path))
    return write


def _euler(**change) -> sitk.Transform:
    e = sitk.Euler3DTransform()
    e.SetTranslation(change.get("translation", (1.0, 2.0, 3.0)))
    return e


def _affine(matrix) -> sitk.Transform:
    return sitk.AffineTransform(tuple(np.asarray(matrix, float).ravel()), (1.0, 2.0, 3.0))


@dataclass(frozen=True)
class BadTransform:
    name: str
    suffix: str  # the file's suffix (.tfm, .h5, .mat, .txt)
    write: Callable[[Path], None]
    needles: tuple[str, ...]


def transform_spoils() -> list[BadTransform]:
    """Transforms that are not finite or not rigid, in each format regkit reads: every parameter of an ITK text
    Euler3D (and its centre) and every entry of a 4×4 matrix set to a non-finite token (the token turns with the
    position), each elastix parameter NaN, and the non-rigid kinds (scaling, shear, reflection, singular, B-spline)."""
    tokens = ("nan", "inf", "-inf", "1e999", "NaN")
    out = []
    params = [0.1, 0.2, 0.3, 1.0, 2.0, 3.0]
    for k in range(6):
        p = [*params[:k], tokens[k % len(tokens)], *params[k + 1:]]
        out.append(BadTransform(f"ITK Euler3D parameter {k} = {p[k]}", ".tfm",
                                lambda path, p=p: path.write_text(_itk_text("Euler3DTransform", p, [0, 0, 0, 0])),
                                ("transform", "finite")))
    for k in range(3):
        fixed = [0, 0, 0, 0]
        fixed[k] = tokens[k]
        out.append(BadTransform(f"ITK Euler3D centre {k} = {fixed[k]}", ".tfm", lambda path, f=fixed: path.write_text(
            _itk_text("Euler3DTransform", params, f)), ("transform", "finite")))
    out.append(BadTransform("ITK composite with a NaN in its second", ".tfm", lambda path: path.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: CompositeTransform_double_3_3\n#Transform 1\n"
        + _itk_text("Euler3DTransform", params, [0, 0, 0, 0]).split("\n", 2)[2] + "#Transform 2\n"
        + _itk_text("TranslationTransform", ["nan", 0, 0], []).split("\n", 2)[2]), ("transform", "finite")))
    out.append(BadTransform("ITK text with a word for a number", ".tfm", lambda path: path.write_text(
        _itk_text("Euler3DTransform", [0, 0, "abc", 1, 2, 3], [0, 0, 0, 0])), ("not a number",)))
    out.append(BadTransform("ITK text named .txt with inf", ".txt", lambda path: path.write_text(
        _itk_text("Euler3DTransform", [0, 0, 0, "inf", 2, 3], [0, 0, 0, 0])), ("finite",)))
    for suffix in (".h5", ".mat"):
        out.append(BadTransform(f"ITK {suffix} with a NaN translation", suffix, _write_sitk(_euler(
            translation=(float("nan"), 0.0, 0.0))), ("NaN or infinite",)))
        out.append(BadTransform(f"ITK {suffix} affine with scaling", suffix,
                                _write_sitk(_affine(np.diag([2, 1, 1]))), ("not rigid",)))
    kinds = {"scaling": (np.diag([1.0, 1.5, 1.0]), "not rigid"),
             "shear": (np.array([[1, 0.3, 0], [0, 1, 0], [0, 0, 1]]), "not rigid"),
             "reflection": (np.diag([1.0, 1.0, -1.0]), "reflection"),
             "singular": (np.diag([1.0, 1.0, 0.0]), "singular")}
    for kind, (matrix, needle) in kinds.items():
        out.append(BadTransform(f"ITK affine with {kind}", ".tfm", _write_sitk(_affine(matrix)), (needle,)))
        m = np.eye(4)
        m[:3, :3] = matrix
        out.append(BadTransform(f"4x4 text with {kind}", ".txt", lambda path, m=m: np.savetxt(path, m), (needle,)))
    out += [BadTransform("ITK scaling", ".tfm", _write_sitk(sitk.ScaleTransform(3, (2.0, 2.0, 2.0))), ("not rigid",)),
            BadTransform("ITK similarity with scale 1.5", ".tfm", _write_sitk(sitk.Similarity3DTransform(
                1.5, (0, 0, 1), 0.1, (1, 2, 3))), ("not rigid",)),
            BadTransform("ITK B-spline", ".tfm", _write_sitk(sitk.BSplineTransform(3)), ("not linear",))]
    for k in range(16):
        m = np.eye(4).astype(object)
        m[divmod(k, 4)] = tokens[k % 4]
        out.append(BadTransform(f"4x4 text entry {divmod(k, 4)} = {m[divmod(k, 4)]}", ".txt", lambda path, m=m:
                                path.write_text("\n".join(" ".join(map(str, row)) for row in m) + "\n"),
                                ("NaN or infinite",)))
    out.append(BadTransform("3x4 text with NaN", ".txt", lambda path: path.write_text(
        "1 0 0 nan\n0 1 0 0\n0 0 1 0\n"), ("NaN or infinite",)))
    out.append(BadTransform("4x4 text whose last row is not 0 0 0 1", ".txt", lambda path: path.write_text(
        "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 2\n"), ("last row",)))
    for k in range(6):
        values = [0.01, 0.02, 0.03, 1.0, 2.0, 3.0]
        values[k] = tokens[k % 3]
        out.append(BadTransform(f"elastix Euler parameter {k} = {values[k]}", ".txt", lambda path, v=values:
                                path.write_text(f'(Transform "EulerTransform")\n(TransformParameters '
                                                f'{" ".join(map(str, v))})\n'), ("NaN or infinite",)))
    out += [BadTransform("elastix centre NaN", ".txt", lambda path: path.write_text(
                '(Transform "EulerTransform")\n(TransformParameters 0 0 0 1 2 3)\n(CenterOfRotationPoint nan 0 0)\n'),
                ("NaN or infinite",)),
            BadTransform("elastix affine with scaling", ".txt", lambda path: path.write_text(
                '(Transform "AffineTransform")\n(TransformParameters 2 0 0 0 1 0 0 0 1 1 2 3)\n'), ("not rigid",)),
            BadTransform("elastix similarity", ".txt", lambda path: path.write_text(
                '(Transform "SimilarityTransform")\n(TransformParameters 0 0 0 1 2 3 1.5)\n'), ("not rigid",)),
            BadTransform("elastix initial transform that is binary", ".txt", _elastix_binary_initial, ("not text",))]
    return out


def _elastix_binary_initial(path: Path) -> None:
    (path.parent / "initial.bin").write_bytes(BINARY)
    path.write_text('(Transform "EulerTransform")\n(TransformParameters 0 0 0 1 2 3)\n'
                    f'(InitialTransformParameterFileName "{path.parent / "initial.bin"}")\n')


TRANSFORMS = transform_spoils()


@pytest.mark.parametrize("spoil", TRANSFORMS, ids=[t.name for t in TRANSFORMS])
def test_a_transform_that_is_not_finite_or_rigid_is_refused_before_itk(spoil, data, tmp_path):
    """As a start (``register --initial-transform``, ``regkit.register``) and as a case's ground truth (load,
    ``regkit compare``); ``read_transform`` itself. A NaN in an ITK text file used to crash the process."""
    from regkit.transform_io import read_transform

    folder = tmp_path / "tx"
    folder.mkdir()
    path = folder / f"start{spoil.suffix}"
    spoil.write(path)
    needles = (path.name, *spoil.needles)
    assert_named_api(lambda: read_transform(path), needles, "read_transform")
    through_register(data, needles, tmp_path, initial=path)
    case_file(data, "ground_truth").unlink()
    truth = data / "case000" / f"ground_truth{spoil.suffix}"
    shutil.copy(path, truth)
    through_dataset(data, (truth.name, *spoil.needles), tmp_path)


# ============================================================================================== API arguments
WRONG = {"int": 5, "float": 1.5, "bytes": b"x", "list": ["x"], "dict": {"a": 1}, "object": object(), "None": None}
OPTIONAL = ("Case(fixed_label=)", "Case(ground_truth=)")  # where None means "none", a valid value


def api_calls(case, files: dict[str, Path], tmp: Path) -> list[tuple[str, Callable, tuple[str, ...]]]:
    """(name, call, needles): each public function × each argument × each wrong type it can be given. Nothing is
    run here (``case`` may be None while the names are collected)."""
    from regkit.app.register_pair import register
    from regkit.case import Case, load_case
    from regkit.dataset import load_dataset, write_manifest
    from regkit.image import read_image
    from regkit.starts import make_starts, read_starts, write_starts
    from regkit.transform import fit_rigid
    from regkit.transform_io import read_transform

    functions = {
        "load_dataset": (lambda v: load_dataset(v), "must be a path"),
        "read_image": (lambda v: read_image(v), "must be a path"),
        "read_transform": (lambda v: read_transform(v), "must be a path"),
        "read_starts": (lambda v: read_starts(v), "must be a path"),
        "load_case(fixed=)": (lambda v: load_case("c", v, files["trus"]), "fixed must be"),
        "load_case(moving=)": (lambda v: load_case("c", files["mr"], v), "moving must be"),
        "load_case(case_id=)": (lambda v: load_case(v, files["mr"], files["trus"]), "case id must be text"),
        "RigidTransform.from_matrix": (lambda v: RigidTransform.from_matrix(v), "matrix"),
        "RigidTransform()": (lambda v: RigidTransform(v), "matrix"),
        "RigidTransform.from_params": (lambda v: RigidTransform.from_params(v), "parameters"),
        "RigidTransform.apply": (lambda v: RigidTransform.identity().apply(v), "points"),
        "RigidTransform.from_sitk": (lambda v: RigidTransform.from_sitk(v), "SimpleITK transform"),
        "fit_rigid": (lambda v: fit_rigid(v, np.zeros((4, 3))), "source_points"),
        "make_starts(cases=)": (lambda v: make_starts(v, "8mm", 1), "cases must be"),
        "make_starts(init=)": (lambda v: make_starts([case], v, 1), "init must be|starting error"),
        "write_manifest(splits=)": (lambda v: write_manifest(tmp / "m", v), "splits must map"),
        "write_starts": (lambda v: write_starts(v, tmp / "s.csv"), "list of Start"),
        "Case(case_id=)": (lambda v: Case(v, case.fixed, case.moving, case.fixed_label), "case id must be text"),
        "Case(fixed=)": (lambda v: Case("c", v, case.moving, case.fixed_label), "MR image must be"),
        "Case(moving=)": (lambda v: Case("c", case.fixed, v, case.fixed_label), "TRUS image must be"),
        "Case(fixed_label=)": (lambda v: Case("c", case.fixed, case.moving, v), "MR prostate label must be"),
        "Case(ground_truth=)": (lambda v: Case("c", case.fixed, case.moving, case.fixed_label, ground_truth=v),
                                "must be a RigidTransform"),
        "register(fixed=)": (lambda v: register(v, files["trus"], method="identity", out=tmp / "r"), "MR image"),
        "register(moving=)": (lambda v: register(files["mr"], v, method="identity", out=tmp / "r"), "TRUS image"),
    }
    out = []
    for name, (call, needle) in functions.items():
        for kind, value in WRONG.items():
            if not (value is None and name in OPTIONAL):
                words = "both images are needed" if value is None and name.startswith("register") else needle
                out.append((f"{name} given {kind}", lambda c=call, v=value: c(v), (words,)))
    images = {"2-D": (lambda: case.fixed[:, :, 3], "is 2-D"),
              "4-D": (lambda: sitk.JoinSeries([case.fixed, case.fixed]), "is 4-D"),
              "vector": (lambda: sitk.Compose([case.fixed] * 3), "components per voxel"),
              "array": (lambda: sitk.GetArrayFromImage(case.fixed), "must be a SimpleITK image|must be a file path")}
    for kind, (image, needle) in images.items():
        for name in ("Case(fixed=)", "Case(moving=)", "Case(fixed_label=)", "register(fixed=)", "register(moving=)"):
            out.append((f"{name} given a {kind} image", lambda c=functions[name][0], im=image: c(im()), (needle,)))
    return out


API_NAMES = [name for name, _, _ in api_calls(None, {"mr": None, "trus": None}, Path("."))]


@pytest.fixture(scope="module")
def api_cases(tiny, tmp_path_factory):
    data = tiny / "data"
    calls = api_calls(load_case000(data), {r: case_file(data, r) for r in NAMES}, tmp_path_factory.mktemp("api"))
    return {name: (call, needles) for name, call, needles in calls}


@pytest.mark.parametrize("name", API_NAMES)
def test_an_api_argument_of_the_wrong_type_is_named(name, api_cases):
    call, needles = api_cases[name]
    assert_named_api(call, needles, name)
