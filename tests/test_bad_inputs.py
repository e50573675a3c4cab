"""Every kind of bad input in ``tests/bad_inputs/kinds.md`` gets a named error: on the command line one ``error:``
line and a non-zero exit (no traceback), from the Python API a ``RegkitError`` with the same text."""

from __future__ import annotations

import gzip
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from regkit.app.cli import main
from regkit.errors import RegkitError

TABLE = Path(__file__).parent / "bad_inputs" / "kinds.md"
ROOT = Path(__file__).resolve().parents[1]


def read_table(section: str) -> list[tuple[str, str, str]]:
    """The rows (kind, input, expected) of one ``## section`` of the table."""
    rows, current = [], None
    for line in TABLE.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
        elif current == section and line.startswith("| ") and not line.startswith(("| kind", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            assert len(cells) == 3, line
            rows.append(tuple(cells))
    assert rows, f"no rows in section {section}"
    return rows


def ids(rows):
    return [r[0] for r in rows]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def places(phantom_dataset, tmp_path_factory):
    """The placeholders' files: a copy of the phantom dataset and the bad files the rows name."""
    root = tmp_path_factory.mktemp("bad-inputs")
    data = root / "data"
    shutil.copytree(phantom_dataset.root, data)
    (root / "file.txt").write_text("hello\n")
    (root / "empty").mkdir()
    sitk.WriteTransform(sitk.BSplineTransform(3), str(root / "bspline.tfm"))
    sitk.WriteTransform(sitk.ScaleTransform(3, (2.0, 2.0, 2.0)), str(root / "scale.tfm"))
    (root / "foo.tfm").write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: FooTransform_double_3_3\n"
                                  "Parameters: 1 2 3\nFixedParameters: 0 0 0\n")
    (root / "cut.tfm").write_text("#Insight Transform File V1.0\n#Transform 0\nTransform: Euler3DTransform_double_3_3\n"
                                  "Parameters: 1 2\n")
    (root / "elx.txt").write_text('(Transform "EulerTransform")\n(TransformParameters 0 0 a 1 2 3)\n')
    starts = (root / "starts.csv")
    from regkit.starts import MATRIX_COLUMNS, START_COLUMNS

    row = ["case000", 0, "8mm", 8.0, 0] + ["nan"] + ["0"] * (len(MATRIX_COLUMNS) - 1)
    starts.write_text(",".join(START_COLUMNS) + "\n" + ",".join(map(str, row)) + "\n")
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "results.csv").write_text("subject,score\n1,0.5\n")
    label = sitk.ReadImage(str(data / "case000" / "mr_label.nii.gz"))
    sitk.WriteImage(label[:, :, 1:], str(root / "label_grid.nii.gz"))
    paired = root / "paired"
    for folder, name in (("mr_images", "mr"), ("us_images", "trus"), ("mr_labels", "mr_label")):
        (paired / folder).mkdir(parents=True)
        shutil.copy(data / "case000" / f"{name}.nii.gz", paired / folder / "p1.nii.gz")
    case = data / "case000"
    return {"data": str(data), "file": str(root / "file.txt"), "empty": str(root / "empty"),
            "mr": str(case / "mr.nii.gz"), "trus": str(case / "trus.nii.gz"), "label": str(case / "mr_label.nii.gz"),
            "label_grid": str(root / "label_grid.nii.gz"), "foo_tfm": str(root / "foo.tfm"),
            "cut_tfm": str(root / "cut.tfm"), "bspline_tfm": str(root / "bspline.tfm"),
            "scale_tfm": str(root / "scale.tfm"), "elx_bad": str(root / "elx.txt"), "starts_nan": str(starts),
            "foreign_out": str(foreign), "paired": str(paired)}


def fill(text: str, places: dict, out: Path) -> str:
    """The text with ``{name}`` placeholders filled (other braces, such as a dict's, are left alone)."""
    values = {**places, "out": str(out)}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def assert_one_error_line(result, expected: str) -> None:
    """A non-zero exit with the expected text, and no traceback (click's own usage errors count as named)."""
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert expected in " ".join(result.output.split()), result.output


# ---------------------------------------------------------------------------------------------- cli
@pytest.mark.parametrize("kind,args,expected", read_table("cli"), ids=ids(read_table("cli")))
def test_cli_names_the_bad_input(kind, args, expected, places, tmp_path):
    argv = shlex.split(fill(args, places, tmp_path / "out"))
    result = CliRunner().invoke(main, argv)
    assert_one_error_line(result, expected)
    if argv[0] == "compare" and "--data" in argv and "-o" in argv:  # refused before any work
        out = Path(argv[argv.index("-o") + 1])
        assert not (out / "results.csv").exists() or out == Path(places["foreign_out"])
        assert not (out / "run.json").exists()


# ---------------------------------------------------------------------------------------------- api
@pytest.fixture(scope="module")
def api_names(places):
    from regkit.app.register_pair import register
    from regkit.dataset import load_dataset, write_manifest
    from regkit.deep.training import TrainOptions, train
    from regkit.evaluation.compare import compare
    from regkit.registry import get_registrar
    from regkit.starts import make_starts, parse_init
    from regkit.transform import RigidTransform

    return {"compare": compare, "get_registrar": get_registrar, "register": register, "train": train,
            "TrainOptions": TrainOptions, "parse_init": parse_init, "make_starts": make_starts,
            "load_dataset": load_dataset, "write_manifest": write_manifest, "RigidTransform": RigidTransform,
            "np": np, "case": load_dataset(places["data"]).load("case000"),
            "C": dict(data=places["data"], split="train", starts_per_case=1, workers=1, show_progress=False,
                      echo=None)}


@pytest.mark.parametrize("kind,call,expected", read_table("api"), ids=ids(read_table("api")))
def test_api_raises_regkits_own_error(kind, call, expected, places, api_names, tmp_path):
    with pytest.raises(RegkitError) as info:
        eval(fill(call, places, tmp_path / "out"), dict(api_names))
    assert expected in str(info.value)


# ---------------------------------------------------------------------------------------------- data
def _case(root: Path) -> Path:
    return root / "case000"


def _image(root: Path, name: str = "mr") -> sitk.Image:
    return sitk.ReadImage(str(_case(root) / f"{name}.nii.gz"))


def _replace(root: Path, image: sitk.Image, name: str = "mr", suffix: str = ".nii.gz") -> Path:
    (_case(root) / f"{name}.nii.gz").unlink()
    path = _case(root) / f"{name}{suffix}"
    sitk.WriteImage(image, str(path), False)
    return path


def _like(image: sitk.Image, array: np.ndarray) -> sitk.Image:
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _manifest(root: Path, change) -> None:
    doc = json.loads((root / "dataset.json").read_text())
    change(doc)
    (root / "dataset.json").write_text(json.dumps(doc))


def cut_mr_gz(root):
    _cut(_case(root) / "mr.nii.gz")


def cut_mr_nii(root):
    _cut(_replace(root, _image(root), suffix=".nii"))


def corrupt_mr_gz(root):
    path = _case(root) / "mr.nii.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def cut_mr_mha(root):
    _cut(_replace(root, _image(root), suffix=".mha"))


def mhd_without_raw(root):
    _replace(root, _image(root), suffix=".mhd")
    (_case(root) / "mr.raw").unlink()


def _float_mr(root) -> tuple[sitk.Image, np.ndarray]:
    img = _image(root)
    return img, sitk.GetArrayFromImage(img).astype(np.float32)


def nan_mr(root):
    img, a = _float_mr(root)
    _replace(root, _like(img, np.full_like(a, np.nan)))


def inf_slab_mr(root):
    img, a = _float_mr(root)
    a[2:4] = np.inf
    _replace(root, _like(img, a))


def nan_mr_mha(root):
    img, a = _float_mr(root)
    a.flat[:10] = np.nan
    _replace(root, _like(img, a), suffix=".mha")


def zero_mr(root):
    img, a = _float_mr(root)
    _replace(root, _like(img, np.zeros_like(a)))


def constant_trus(root):
    img = _image(root, "trus")
    _replace(root, _like(img, np.full_like(sitk.GetArrayFromImage(img), 7)), "trus")


def label_off_image(root):
    img, a = _float_mr(root)
    label = sitk.GetArrayFromImage(_image(root, "mr_label")) > 0
    a[label] = a.min()
    _replace(root, _like(img, a))


def empty_label(root):
    lab = _image(root, "mr_label")
    _replace(root, _like(lab, np.zeros_like(sitk.GetArrayFromImage(lab))), "mr_label")


def label_other_grid(root):
    lab = _image(root, "mr_label")
    _replace(root, lab[:, :, 1:], "mr_label")


def mr_4d(root):
    img = _image(root)
    _replace(root, sitk.JoinSeries([img, img]))


def mr_rgb(root):
    img = _image(root)
    _replace(root, sitk.Compose([img, img, img]))


def mr_2d(root):
    _replace(root, _image(root)[:, :, 0])


def gt_nan(root):
    (_case(root) / "ground_truth.txt").write_text("nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")


def gt_scaling(root):
    (_case(root) / "ground_truth.txt").write_text("2 0 0 0\n0 2 0 0\n0 0 2 0\n0 0 0 1\n")


def gt_outside(root):
    (_case(root) / "ground_truth.txt").write_text("1 0 0 10000\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")


def surface_outside(root):
    from regkit.surface import write_mesh

    pts = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], float) + 1e4
    write_mesh(pts, np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]), _case(root) / "mr_surface.stl")


def bad_case_json(root):
    (_case(root) / "case.json").write_text("{not json")


def bad_manifest(root):
    (root / "dataset.json").write_text("{")


def duplicate_id(root):
    _manifest(root, lambda d: d["splits"]["train"].append("case000"))


def train_test_overlap(root):
    _manifest(root, lambda d: d["splits"]["test"].append("case000"))


def escaping_id(root):
    _manifest(root, lambda d: d["splits"]["train"].insert(0, "../other/case002"))


def absolute_id(root):
    _manifest(root, lambda d: d["splits"]["train"].insert(0, str(_case(root).resolve())))


def escaping_override(root):
    _manifest(root, lambda d: d.setdefault("cases", {}).update({"case000": {"fixed": "../other/mr.nii.gz"}}))


def missing_case_folder(root):
    _manifest(root, lambda d: d["splits"]["train"].append("case009"))


@pytest.mark.parametrize("kind,spoiler,expected", read_table("data"), ids=ids(read_table("data")))
def test_spoilt_data_is_named_on_load_and_in_compare(kind, spoiler, expected, phantom_dataset, tmp_path):
    from regkit.dataset import load_dataset

    root = tmp_path / "data"
    shutil.copytree(phantom_dataset.root, root)
    globals()[spoiler](root)
    with pytest.raises(RegkitError) as info:
        load_dataset(root).load("case000")
    assert expected in str(info.value)
    result = CliRunner().invoke(main, ["compare", "--data", str(root), "--split", "train", "-m", "identity", "-k", "1",
                                       "-o", str(tmp_path / "out")])
    assert_one_error_line(result, expected)


def test_a_truncated_gzip_is_not_read_as_zeros(phantom_dataset, tmp_path):
    """The finding behind the data rows: ITK itself reads a NIfTI cut in half as half zeros, without a word."""
    path = tmp_path / "cut.nii.gz"
    data = (phantom_dataset.root / "case000" / "mr.nii.gz").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    half = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert (half == 0).mean() > 0.3  # what ITK does
    with pytest.raises(EOFError):
        gzip.decompress(path.read_bytes())


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind,node,expected", read_table("tests"), ids=ids(read_table("tests")))
def test_each_kind_that_needs_a_run_has_its_test(kind, node, expected):
    path, _, name = node.partition("::")
    source = (ROOT / path).read_text()
    assert re.search(rf"^def {re.escape(name)}\(", source, re.MULTILINE), f"{node} is not a test"
    if expected:
        assert expected in source, f"{node} does not check for {expected!r}"
