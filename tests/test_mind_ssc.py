"""Tests for ``regkit.baselines.mind_ssc``: a loop-based NumPy transcription of MIND-SSC plus property tests."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from regkit.baselines.mind_ssc import MIND_PAIRS, SIX_NEIGHBOURHOOD, mind_ssc

torch.set_num_threads(1)

# convexAdam's re-ordering of its 12 pairs "to have same ordering as C++ code".
CPP_ORDER = [6, 8, 1, 11, 2, 10, 0, 7, 9, 4, 5, 3]
PARAMS = [(1, 1), (1, 2), (2, 2)]


def reference_pairs() -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """The 12 pairs built as convexAdam does, independently of ``MIND_PAIRS``.

    Six points at ±1 along each axis (in convexAdam's order), pairs (i, j) with i > j at squared distance 2
    taken in row-major order, then re-ordered by ``CPP_ORDER``.
    """
    six = [(-1, 0, 0), (0, 0, -1), (0, -1, 0), (0, 0, 1), (1, 0, 0), (0, 1, 0)]
    pairs = []
    for i in range(6):
        for j in range(6):
            squared_distance = sum((p - q) ** 2 for p, q in zip(six[i], six[j], strict=True))
            if i > j and squared_distance == 2:
                pairs.append((six[i], six[j]))
    return [pairs[k] for k in CPP_ORDER]


def mind_ssc_numpy(volume: np.ndarray, radius: int, dilation: int, clamp: bool = True) -> np.ndarray:
    """Plain NumPy MIND-SSC of a (D, H, W) volume, written for readability; returns (12, D, H, W).

    ``clamp=False`` skips the clamp of V (only to show that a test exercises it).
    """
    volume = np.asarray(volume, dtype=np.float64)
    depth, height, width = volume.shape
    padded = np.pad(volume, dilation, mode="edge")

    def shifted(offset):
        """I(x + dilation * offset) for every voxel x, with edge replication outside the volume."""
        dz, dy, dx = (dilation + dilation * o for o in offset)
        return padded[dz:dz + depth, dy:dy + height, dx:dx + width]

    distances = np.zeros((12, depth, height, width))
    for channel, (a, b) in enumerate(reference_pairs()):
        squared_difference = (shifted(a) - shifted(b)) ** 2
        padded_difference = np.pad(squared_difference, radius, mode="edge")
        box_sum = np.zeros((depth, height, width))
        box_offsets = range(2 * radius + 1)
        for oz, oy, ox in itertools.product(box_offsets, box_offsets, box_offsets):
            box_sum += padded_difference[oz:oz + depth, oy:oy + height, ox:ox + width]
        distances[channel] = box_sum / (2 * radius + 1) ** 3

    mind = distances - distances.min(axis=0)
    variance = mind.mean(axis=0)
    variance_mean = variance.mean()
    if clamp:
        variance = np.clip(variance, 0.001 * variance_mean, 1000 * variance_mean)
    return np.exp(-mind / variance)


def random_volume(seed: int, shape=(10, 11, 12)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def test_pairs_constant():
    assert [tuple(p) for p in MIND_PAIRS] == reference_pairs()
    assert len(set(MIND_PAIRS)) == 12
    for a, b in MIND_PAIRS:
        assert a in SIX_NEIGHBOURHOOD and b in SIX_NEIGHBOURHOOD
        assert sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) == 2
        assert (0, 0, 0) not in (a, b)


@pytest.mark.parametrize(("radius", "dilation"), PARAMS)
def test_matches_numpy_transcription(radius, dilation):
    volume = random_volume(radius * 10 + dilation)
    expected = mind_ssc_numpy(volume.numpy(), radius, dilation)
    result = mind_ssc(volume, radius=radius, dilation=dilation)
    assert result.shape == (1, 12, 10, 11, 12)
    assert result.dtype == torch.float32
    assert np.abs(result[0].numpy() - expected).max() < 1e-5
    result64 = mind_ssc(volume.double(), radius=radius, dilation=dilation)
    assert np.abs(result64[0].numpy() - expected).max() < 1e-12


@pytest.mark.parametrize(("radius", "dilation"), PARAMS)
def test_matches_numpy_transcription_lower_clamp(radius, dilation):
    """A slab of very faint noise has 0 < V < 0.001 * mean(V), so the lower clamp is active there."""
    volume = random_volume(7)
    volume[:5] = 0.25 + 1e-3 * volume[:5]
    expected = mind_ssc_numpy(volume.numpy(), radius, dilation)
    unclamped = mind_ssc_numpy(volume.numpy(), radius, dilation, clamp=False)
    assert np.abs(expected - unclamped).max() > 0.1  # the clamp matters for this volume
    result = mind_ssc(volume, radius=radius, dilation=dilation)
    assert np.abs(result[0].numpy() - expected).max() < 1e-5


@pytest.mark.parametrize("dilation", [1, 2])
def test_matches_numpy_transcription_upper_clamp(dilation):
    """One bright voxel in a constant 20^3 volume: V > 1000 * mean(V) next to it (radius 0), so the upper
    clamp is active there (and the lower one, on V = 0, everywhere else)."""
    volume = torch.zeros(20, 20, 20)
    volume[9, 10, 11] = 5.0
    expected = mind_ssc_numpy(volume.numpy(), 0, dilation)
    with np.errstate(invalid="ignore"):
        unclamped = mind_ssc_numpy(volume.numpy(), 0, dilation, clamp=False)
    finite = np.isfinite(unclamped)  # 0 / 0 away from the spike without the clamp
    assert np.abs(expected - unclamped)[finite].max() > 0.01
    result = mind_ssc(volume, radius=0, dilation=dilation)
    assert np.abs(result[0].numpy() - expected).max() < 1e-5


def test_input_forms_and_range():
    volume = random_volume(1)
    out3 = mind_ssc(volume, radius=1, dilation=2)
    out4 = mind_ssc(volume[None], radius=1, dilation=2)
    out5 = mind_ssc(volume[None, None], radius=1, dilation=2)
    assert out3.shape == out4.shape == out5.shape == (1, 12, 10, 11, 12)
    torch.testing.assert_close(out3, out4, rtol=0, atol=0)
    torch.testing.assert_close(out3, out5, rtol=0, atol=0)
    assert torch.isfinite(out3).all()
    assert (out3 > 0).all() and (out3 <= 1).all()
    # the minimum-distance channel is exactly exp(0) = 1 at every voxel
    assert (out3.amax(dim=1) == 1).all()
    # at radius 0 with dilation 1 the result is still in range
    out0 = mind_ssc(volume, radius=0, dilation=1)
    assert out0.shape == (1, 12, 10, 11, 12) and (out0 > 0).all() and (out0 <= 1).all()


def test_bad_inputs():
    with pytest.raises(ValueError):
        mind_ssc(torch.rand(2, 5, 5, 5))
    with pytest.raises(ValueError):
        mind_ssc(torch.rand(5, 5))
    with pytest.raises(ValueError):
        mind_ssc(torch.rand(1, 2, 5, 5, 5))
    with pytest.raises(ValueError):
        mind_ssc(torch.rand(5, 5, 5), radius=-1)
    with pytest.raises(ValueError):
        mind_ssc(torch.rand(5, 5, 5), dilation=0)
    with pytest.raises(TypeError):
        mind_ssc(np.zeros((5, 5, 5)))


def test_constant_volume_gives_ones():
    out = mind_ssc(torch.full((6, 7, 8), 3.0), radius=1, dilation=1)
    assert torch.equal(out, torch.ones_like(out))


@pytest.mark.parametrize(("scale", "offset", "dtype", "atol"), [
    (3.7, -12.0, torch.float32, 1e-5),
    (3.7, -12.0, torch.float64, 1e-12),
    (0.01, 5.0, torch.float64, 1e-9),  # in float32, 5 + 0.01 * I loses ~5e-5 of relative precision
    (250.0, 1e3, torch.float64, 1e-12),
    (-2.0, 1.0, torch.float64, 1e-12),  # squared differences: a < 0 works too
])
def test_affine_intensity_invariance(scale, offset, dtype, atol):
    volume = random_volume(2).to(dtype)
    reference = mind_ssc(volume, radius=1, dilation=2)
    transformed = mind_ssc(scale * volume + offset, radius=1, dilation=2)
    torch.testing.assert_close(transformed, reference, rtol=0, atol=atol)


def test_not_invariant_to_nonlinear_intensity_change():
    """Guards the invariance test against a trivially constant output."""
    volume = random_volume(3)
    assert (mind_ssc(volume ** 3, radius=1, dilation=2) - mind_ssc(volume, radius=1, dilation=2)).abs().max() > 0.1


@pytest.mark.parametrize(("radius", "dilation"), [(1, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("shift", [(1, 0, 0), (0, 2, -1), (-1, 1, 3)])
def test_translation_equivariance(radius, dilation, shift):
    """Two crops of one larger volume, offset by ``shift``, have equal descriptors where neither sees a border."""
    big = random_volume(4, shape=(20, 20, 20))
    size = 14
    start_a = np.array([3, 3, 3])
    start_b = start_a + np.array(shift)
    crop_a = big[tuple(slice(s, s + size) for s in start_a)]
    crop_b = big[tuple(slice(s, s + size) for s in start_b)]
    out_a = mind_ssc(crop_a, radius, dilation)[0]
    out_b = mind_ssc(crop_b, radius, dilation)[0]
    # voxel x of crop_b is voxel x + shift of crop_a; keep voxels whose footprint is inside both crops
    margin = radius + dilation
    lo = [margin + max(s, 0) for s in shift]  # in crop_a coordinates
    hi = [size - margin + min(s, 0) for s in shift]
    region_a = tuple(slice(lo_k, hi_k) for lo_k, hi_k in zip(lo, hi, strict=True))
    region_b = tuple(slice(lo_k - s, hi_k - s) for lo_k, hi_k, s in zip(lo, hi, shift, strict=True))
    assert all(h - low >= 2 for low, h in zip(lo, hi, strict=True))
    torch.testing.assert_close(out_b[(slice(None), *region_b)], out_a[(slice(None), *region_a)], rtol=0, atol=1e-5)


def test_axis_convention():
    """A volume varying only along axis 0 gives distance 0 for pairs whose offsets agree along axis 0."""
    z = torch.arange(9, dtype=torch.float64)
    volume = (z ** 2)[:, None, None].expand(9, 8, 7).contiguous()
    out = mind_ssc(volume, radius=1, dilation=1)[0]
    for channel, (a, b) in enumerate(MIND_PAIRS):
        if a[0] == b[0]:  # both offsets have the same z: identical values, the minimum distance, descriptor 1
            assert torch.equal(out[channel], torch.ones_like(out[channel]))
        else:
            assert (out[channel, 2:-2] < 1).all()


def test_batch_items_are_independent():
    """Per-item normalisation: a batch equals its items run alone, even with very different intensity scales."""
    first = random_volume(5)
    second = random_volume(6) * 1000.0  # would push the first item into the clamp with a whole-batch mean
    second[:4] = 0.0  # and give the second item clamped voxels of its own
    batch = torch.stack([first, second])[:, None]
    out = mind_ssc(batch, radius=1, dilation=2)
    assert out.shape == (2, 12, 10, 11, 12)
    torch.testing.assert_close(out[0:1], mind_ssc(first, radius=1, dilation=2), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1:2], mind_ssc(second, radius=1, dilation=2), rtol=0, atol=1e-6)


def test_keeps_dtype_and_device_and_gradients():
    volume = random_volume(8).double().requires_grad_(True)
    out = mind_ssc(volume, radius=1, dilation=1)
    assert out.dtype == torch.float64 and out.device == volume.device
    out.sum().backward()
    assert volume.grad is not None and torch.isfinite(volume.grad).all()
    assert mind_ssc(torch.randint(0, 10, (5, 6, 7)), radius=1, dilation=1).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    volume = random_volume(9)
    out = mind_ssc(volume.cuda(), radius=2, dilation=2)
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), mind_ssc(volume, radius=2, dilation=2), rtol=0, atol=1e-5)
