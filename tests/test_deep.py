"""Deep registrars: parameter counts, fused attention, input pipeline, correction, cascades, checkpoints."""

import json
from typing import ClassVar

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from regkit import RigidTransform, available_registrars, get_registrar
from regkit.deep.attention import attend
from regkit.deep.checkpoint import CheckpointConfig, load_checkpoint, save_checkpoint
from regkit.deep.correction import apply_correction, correction_target
from regkit.deep.crop import CaseInput, VolumeSampler, crop_box
from regkit.deep.networks import build_network, parameter_count
from regkit.deep.registrar import DeepRegistrar, bundled_checkpoints
from regkit.errors import CheckpointError, InputError
from regkit.sre import sre
from regkit.starts import make_starts

torch.set_num_threads(2)


def test_parameter_counts_match_the_paper():
    assert parameter_count("attention_reg") == 1_248_777
    assert parameter_count("feature_reg") == 1_244_393
    assert abs(parameter_count("msreg") - 16_106_076) / 16_106_076 < 1e-3
    assert abs(parameter_count("dvnet") - 5_275_832) / 5_275_832 < 1e-2


@pytest.mark.slow
def test_fused_attention_equals_the_explicit_formula():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 9216, 16) for _ in range(3))
    fused, explicit = attend(q, k, v, "fused"), attend(q, k, v, "explicit")
    assert torch.allclose(fused, explicit, atol=1e-5)
    # scale = 1, as in Eq. 1 (a 1/sqrt(16) scale would give another result)
    scaled = torch.softmax(q @ k.transpose(1, 2) / 4.0, -1) @ v
    assert not torch.allclose(fused, scaled, atol=1e-3)
    net = build_network("attention_reg").eval()
    for block in (net.mr_attention, net.us_attention):  # make the attention matter in the output
        torch.nn.init.ones_(block.w_z[1].weight)
    x = torch.rand(1, 2, 32, 96, 96)
    with torch.no_grad():
        a = net(x)
        net.set_attention("explicit")
        b = net(x)
    assert torch.allclose(a, b, atol=1e-4)


def test_attention_roles_queries_from_the_other_branch():
    from regkit.deep.attention import CrossModalAttention

    torch.manual_seed(1)
    block = CrossModalAttention(4, 2, "explicit").eval()
    torch.nn.init.ones_(block.w_z[1].weight)
    p, c = torch.randn(1, 4, 2, 3, 3), torch.randn(1, 4, 2, 3, 3)
    z = block(p, c)
    q = block.theta(c).flatten(2).transpose(1, 2)
    k = block.phi(p).flatten(2).transpose(1, 2)
    v = block.g(p).flatten(2).transpose(1, 2)
    y = (torch.softmax(q @ k.transpose(1, 2), -1) @ v).transpose(1, 2).reshape(1, 2, 2, 3, 3)
    assert torch.allclose(z, block.w_z(y) + p, atol=1e-6)


def test_crop_box_is_the_enlarged_label_bounding_box(phantom_case):
    box = crop_box(phantom_case.fixed_label)
    lab = sitk.GetArrayViewFromImage(phantom_case.fixed_label) > 0
    sp = np.array(phantom_case.fixed_label.GetSpacing())
    extent = np.array([np.ptp(np.nonzero(lab.any(axis=ax))[0]) + 1 for ax in ((0, 1), (0, 2), (1, 2))]) * sp
    np.testing.assert_allclose(box.size, 1.6 * extent)
    pts = box.points()
    assert pts.shape == (32, 96, 96, 3)
    np.testing.assert_allclose(pts.reshape(-1, 3).mean(0), box.center, atol=1e-6)


def test_inputs_shape_range_and_label_variant(phantom_case):
    starts = make_starts([phantom_case], "8mm", 3, seed=0)
    t = RigidTransform.from_matrix(np.stack([s.transform.matrix for s in starts]))
    x = CaseInput(phantom_case, "image").inputs(t)
    assert x.shape == (3, 2, 32, 96, 96) and x.min() >= 0 and x.max() <= 1 + 1e-6
    assert torch.equal(x[0, 0], x[1, 0]) and not torch.equal(x[0, 1], x[1, 1])
    lab = CaseInput(phantom_case, "label").inputs(t)
    assert set(np.unique(lab[0, 0].numpy().round(3))) > {0.0, 1.0}  # trilinear samples of a 0/1 label
    assert torch.equal(lab[:, 1], x[:, 1])


def test_batched_box_resampling_agrees_with_simpleitk(phantom_case):
    ci = CaseInput(phantom_case, "image")
    box = ci.box
    ref = sitk.Image([96, 96, 32], sitk.sitkFloat32)
    ref.SetSpacing(box.spacing.tolist())
    ref.SetDirection(box.axes.ravel().tolist())
    ref.SetOrigin(ci.points[0, 0, 0].tolist())
    t = make_starts([phantom_case], "8mm", 2, seed=3)
    sampler = VolumeSampler(phantom_case.moving, "none")
    ours = sampler.sample_box(box, RigidTransform.from_matrix(np.stack([s.transform.matrix for s in t]))).numpy()
    moving = sitk.Cast(phantom_case.moving, sitk.sitkFloat32)
    idx = sampler.physical_to_grid
    size = np.array(phantom_case.moving.GetSize())
    for k, s in enumerate(t):
        theirs = sitk.GetArrayFromImage(sitk.Resample(moving, ref, s.transform.to_sitk(), sitk.sitkLinear, 0.0))
        # compare where every trilinear neighbour is inside the TRUS volume (ITK and torch differ at the border)
        g = s.transform.apply(ci.points.reshape(-1, 3)) @ idx[:3, :3].T + idx[:3, 3]
        inside = np.all(np.abs(g) <= 1 - 2.0 / size, axis=-1).reshape(box.shape)
        assert inside.mean() > 0.5
        np.testing.assert_allclose(ours[k][inside], theirs[inside], atol=1e-2)  # float32 on a 0-255 scale


def test_correction_recovers_the_ground_truth_and_rotates_about_the_box_centre(phantom_case):
    box = crop_box(phantom_case.fixed_label)
    starts = make_starts([phantom_case], "16mm", 5, seed=1)
    t = RigidTransform.from_matrix(np.stack([s.transform.matrix for s in starts]))
    target = correction_target(box, t, phantom_case.ground_truth)
    fixed = apply_correction(box, t, target)
    np.testing.assert_allclose(sre(fixed, phantom_case.ground_truth, phantom_case.surface_points), 0, atol=1e-9)
    # a pure-rotation correction leaves the box centre where the estimate maps it
    est = phantom_case.ground_truth
    rotated = apply_correction(box, est, np.array([0, 0, 0, 5.0, -7.0, 9.0]))
    np.testing.assert_allclose(rotated.apply(box.center), est.apply(box.center), atol=1e-9)


@pytest.fixture(scope="module")
def random_registrar():
    return DeepRegistrar("attention_reg", "image", checkpoint="random", batch_size=4)


def test_pipeline_runs_end_to_end_with_a_random_network(phantom_case, random_registrar):
    starts = make_starts([phantom_case], "8mm", 3, seed=2)
    results = random_registrar.register_many([(phantom_case, s.transform) for s in starts])
    assert all(r.ok for r in results)
    single = random_registrar.register(phantom_case, starts[1].transform)
    np.testing.assert_allclose(single.transform.matrix, results[1].transform.matrix, atol=1e-5)
    for r, s in zip(results, starts, strict=True):
        assert not r.transform.allclose(s.transform)  # the network moved it
        assert r.runtime > 0


def test_cascade_equals_stages_applied_by_hand(phantom_case, tmp_path):
    torch.manual_seed(3)
    nets = [build_network("feature_reg").eval(), build_network("feature_reg").eval()]
    for k, net in enumerate(nets):
        save_checkpoint(net, CheckpointConfig("feature_reg", "label", stage=k + 1), tmp_path / f"s{k + 1}")
    exact = {"precision": "float32"}  # the cascade's logic, in the arithmetic of the stages applied by hand
    cascade = DeepRegistrar("feature_reg", "label", checkpoint=tmp_path / "s1", stage2=tmp_path / "s2", **exact)
    start = make_starts([phantom_case], "8mm", 1, seed=4)[0].transform
    res = cascade.register(phantom_case, start)
    ci = CaseInput(phantom_case, "label")
    est = start
    stages = []
    with torch.no_grad():
        for net in nets:
            est = apply_correction(ci.box, est, net(ci.inputs(est)).numpy().astype(float)[0])
            stages.append(est)
    np.testing.assert_allclose(res.info["stage_transforms"][0].matrix, stages[0].matrix, atol=1e-5)
    np.testing.assert_allclose(res.transform.matrix, stages[1].matrix, atol=1e-5)
    one = DeepRegistrar("feature_reg", "label", checkpoint=tmp_path / "s1", stage2=tmp_path / "s2", stages=1,
                        **exact)
    np.testing.assert_allclose(one.register(phantom_case, start).transform.matrix, stages[0].matrix, atol=1e-5)


def test_checkpoint_round_trip_and_errors(tmp_path, phantom_case):
    torch.manual_seed(5)
    net = build_network("dvnet").eval()
    save_checkpoint(net, CheckpointConfig("dvnet", "image", parameter_count=parameter_count("dvnet")), tmp_path / "d")
    assert json.loads((tmp_path / "d.json").read_text())["architecture"] == "dvnet"
    loaded, _cfg = load_checkpoint(tmp_path / "d.safetensors")
    x = torch.rand(2, 2, 32, 96, 96)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    with pytest.raises(CheckpointError, match="is for 'dvnet', not 'msreg'"):
        get_registrar("msreg", checkpoint=str(tmp_path / "d"))
    # weights of one architecture under another's config
    (tmp_path / "e.safetensors").write_bytes((tmp_path / "d.safetensors").read_bytes())
    (tmp_path / "e.json").write_text((tmp_path / "d.json").read_text().replace('"dvnet"', '"feature_reg"'))
    with pytest.raises(CheckpointError, match="e.safetensors: the weights do not fit architecture 'feature_reg'"):
        load_checkpoint(tmp_path / "e")
    (tmp_path / "f.safetensors").write_bytes(b"\x00" * 100)
    (tmp_path / "f.json").write_text((tmp_path / "d.json").read_text())
    with pytest.raises(CheckpointError, match="f.safetensors: the weights file is damaged"):
        load_checkpoint(tmp_path / "f")
    (tmp_path / "g.safetensors").write_bytes((tmp_path / "d.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="no JSON config"):
        load_checkpoint(tmp_path / "g")
    with pytest.raises(InputError, match="trained with the image variant"):
        DeepRegistrar("dvnet", "label", checkpoint=tmp_path / "d")


def test_registry_names_need_weights_or_a_checkpoint(tmp_path):
    assert bundled_checkpoints(available_registrars()["msreg"].weights)  # every network of Table 2 is bundled
    with pytest.raises(InputError, match="needs checkpoint=PATH"):  # a network with no weights files
        get_registrar("msreg", weights=(str(tmp_path / "msreg-stage1"),))
    reg = get_registrar("dvnet", checkpoint="random")
    assert reg.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_left_handed_mr_still_gives_a_rotation_frame(phantom_case):
    import SimpleITK as sitk

    from regkit.case import Case

    # keep the physical content, store it with a left-handed direction (z axis reversed)
    flipped = sitk.GetImageFromArray(sitk.GetArrayFromImage(phantom_case.fixed)[::-1])
    last = phantom_case.fixed.TransformIndexToPhysicalPoint([0, 0, phantom_case.fixed.GetSize()[2] - 1])
    flipped.SetOrigin(last)
    flipped.SetSpacing(phantom_case.fixed.GetSpacing())
    d = np.array(phantom_case.fixed.GetDirection()).reshape(3, 3)
    d[:, 2] *= -1
    flipped.SetDirection(d.ravel().tolist())
    label = sitk.GetImageFromArray(sitk.GetArrayFromImage(phantom_case.fixed_label)[::-1])
    label.CopyInformation(flipped)
    case = Case("left", flipped, phantom_case.moving, label, phantom_case.ground_truth)
    assert np.linalg.det(np.array(flipped.GetDirection()).reshape(3, 3)) < 0
    box = crop_box(label)
    assert np.linalg.det(box.axes) > 0
    np.testing.assert_allclose(box.center, crop_box(phantom_case.fixed_label).center, atol=1e-6)
    res = DeepRegistrar("feature_reg", "image", checkpoint="random").register(case, phantom_case.ground_truth)
    assert res.ok, res.message


def test_bundled_weights_state_their_storage_and_load_as_the_float32_upcast():
    from safetensors import safe_open

    from regkit.deep.checkpoint import read_config, read_tensors
    from regkit.deep.methods import WEIGHTS_DIR

    files = sorted(WEIGHTS_DIR.glob("*.safetensors"))
    assert len(files) == 11
    for path in files:  # each JSON's dtype is what its file stores (bench/half_precision_weights.py chose it)
        with safe_open(str(path), "pt") as fh:
            stored = {fh.get_slice(k).get_dtype() for k in fh.keys()} - {"I64"}
        assert stored == {"F16"} and read_config(path).dtype == "float16", (path.name, stored)
    path = WEIGHTS_DIR / "attreg-stage1.safetensors"
    model, _ = load_checkpoint(path)
    tensors = read_tensors(path)
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.equal(v, tensors[k].float()), k


@pytest.mark.slow
@pytest.mark.parametrize("name,stages", [("attreg", 2), ("attreg-label", 2), ("featreg", 2)])
def test_bundled_weights_load_and_register(phantom_case, name, stages):
    from regkit.sre import sre
    from regkit.starts import make_starts

    reg = get_registrar(name)  # no checkpoint: the weights shipped in deep/weights
    assert len(reg.networks) == stages
    assert all(c.dtype == "float16" and c.training["method"] == name for c in reg.configs)
    starts = make_starts([phantom_case], "8mm", 4, seed=11)
    results = reg.register_many([(phantom_case, s.transform) for s in starts])
    final = [sre(r.transform, phantom_case.ground_truth, phantom_case.surface_points) for r in results]
    assert all(r.ok for r in results) and np.mean(final) < 6.0, final  # the starts are at 8 mm


class _ShapeProbe(torch.nn.Module):
    """Records its input's shape and saturated fraction, and predicts no correction (any input size)."""

    seen: ClassVar[list] = []

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        moving = x[:, 1]
        _ShapeProbe.seen.append((tuple(x.shape), float((moving > 0.999).sum() / (moving > 0).sum())))
        return self.scale * x.new_zeros(len(x), 6)


def test_inference_builds_the_input_each_checkpoint_stores(phantom_case, tmp_path):
    from regkit.deep.methods import Architecture

    probe = Architecture("tests.probe:PROBE", "probe", builder=_ShapeProbe)
    net = _ShapeProbe()
    save_checkpoint(net, CheckpointConfig(probe.name, "image", input_shape=(8, 24, 40), enlarge=0.1,
                                          normalization="percentile-0.5-99.5"), tmp_path / "s1")
    save_checkpoint(net, CheckpointConfig(probe.name, "image", input_shape=(16, 32, 32),
                                          normalization="percentile-0-50"), tmp_path / "s2")
    _ShapeProbe.seen.clear()
    reg = DeepRegistrar(probe, "image", checkpoint=tmp_path / "s1", stage2=tmp_path / "s2")
    res = reg.register(phantom_case, phantom_case.ground_truth)
    assert res.ok, res.message
    (shape1, saturated1), (shape2, saturated2) = _ShapeProbe.seen
    assert shape1 == (1, 2, 8, 24, 40) and shape2 == (1, 2, 16, 32, 32)
    assert saturated1 < 0.05 and saturated2 > 0.1  # stage 2 maps the median to 1: much of the TRUS saturates
    save_checkpoint(net, CheckpointConfig(probe.name, "image", normalization="zscore"), tmp_path / "s3")
    with pytest.raises(InputError, match="unknown input normalisation 'zscore'"):
        DeepRegistrar(probe, "image", checkpoint=tmp_path / "s3")


def test_folding_batch_norms_keeps_the_outputs():
    from torch import nn

    from regkit.deep.layers import fold_batch_norms

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1, bias=False), nn.BatchNorm3d(4), nn.ReLU(),
                        nn.Sequential(nn.Conv3d(4, 3, 1), nn.BatchNorm3d(3)))
    x = torch.rand(2, 2, 5, 6, 7)
    net.train()(x)  # running statistics that are not the identity
    net.eval()
    with torch.no_grad():
        before = net(x)
        after = fold_batch_norms(net)(x)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in net.modules())
    assert torch.allclose(before, after, atol=1e-6)
    with pytest.raises(ValueError, match="eval"):
        fold_batch_norms(net.train())


def test_the_fixed_branch_runs_once_per_case_with_the_same_outputs(phantom_case):
    reg = DeepRegistrar("attention_reg", "image", checkpoint="random", precision="float32")
    net = reg.networks[0]
    ci = CaseInput(phantom_case, "image")
    starts = RigidTransform.from_matrix(np.stack([s.transform.matrix
                                                  for s in make_starts([phantom_case], "8mm", 3, seed=6)]))
    inputs = ci.inputs(starts)
    calls = []
    hook = net.mr_branch.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    per_input = reg.predict(net, inputs)
    shared = reg.predict(net, inputs, ci.fixed)
    hook.remove()
    assert calls == [3, 1]  # the MR branch: once per input, then once for the case
    np.testing.assert_allclose(shared, per_input, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="inference"):
        net.train()(inputs, fixed_features=net.encode_fixed(inputs[:1, :1]))


@pytest.mark.slow
def test_precision_auto_is_bf16_only_where_it_is_native(phantom_case):
    from regkit.deep.registrar import native_bf16

    auto = get_registrar("attreg")
    assert auto.precision == ("bf16" if native_bf16(torch.device("cpu")) else "float32")
    exact = get_registrar("attreg", precision="float32")
    fast = get_registrar("attreg", precision="bf16")
    start = make_starts([phantom_case], "8mm", 2, seed=5)
    pairs = [(phantom_case, s.transform) for s in start]
    for a, b in zip(exact.register_many(pairs), fast.register_many(pairs), strict=True):
        assert (a.info["precision"], b.info["precision"]) == ("float32", "bf16")
        moved = abs(sre(a.transform, phantom_case.ground_truth, phantom_case.surface_points)
                    - sre(b.transform, phantom_case.ground_truth, phantom_case.surface_points))
        assert moved < 0.2, moved  # bf16 moves SREs by hundredths of a millimetre (BENCHMARKS.md)
    with pytest.raises(InputError, match="precision"):
        get_registrar("attreg", precision="fp8")
