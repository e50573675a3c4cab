"""The randomised training distribution: anatomy, contrasts and acquisition physics drawn far beyond one look.

Registration networks trained on synthetic data transfer when the synthetic world is randomised far beyond any
one appearance (Hoffmann et al., SynthMorph, IEEE TMI 2022). This module does that for MR–TRUS:

==========================  ==============================================================================
randomised                  how
==========================  ==============================================================================
anatomy shape               a random smooth deformation (B-spline-like: Gaussian displacements on a coarse
                            control grid, cubic upsampling) of the whole anatomy, seen by both modalities
anatomy scale               from-MR: the MR is rescaled so its gland volume is drawn log-uniformly (the real
                            MRs' spacing is uncertain), with a random anisotropy per axis
per-tissue intensities      T2 signal and echogenicity drawn afresh, independently, for every tissue and case
                            (so no MR→TRUS intensity relation can be memorised); attenuation and acoustic
                            impedance drawn around their physical values (shadowing and boundaries stay)
MR acquisition              in-plane and slice spacing, bias field, coil falloff, Rician noise; from-MR: a
                            random intensity remapping of the real MR, extra blur (resolution), bias, noise
TRUS acquisition            speckle grain, time-gain compensation, reflection gain, reverberation, noise,
                            dynamic range and gain, fan angle, depth and length, sweep offset, acoustic
                            shadows, field-of-view cuts, calcifications (see :class:`TrusPhysics`)
==========================  ==============================================================================

Use :func:`regkit.synth.synth_case` / :func:`regkit.synth.synth_case_from_mr` with ``randomise=Randomisation()``
(or ``regkit synth --randomise``). Randomised cases draw from their own random stream, so the built-in
benchmark's cases do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from regkit.synth.mr import MrPhysics
from regkit.synth.probe import FanRanges
from regkit.synth.tissues import INDEX, TISSUES
from regkit.synth.trus import TrusPhysics


@dataclass(frozen=True)
class Randomisation:
    """Ranges of the randomised mode (mm, degrees; each drawn uniformly unless stated)."""

    # anatomy
    deformation_mm: tuple[float, float] = (0.0, 4.0)  # std of the control-point displacements
    deformation_spacing_mm: tuple[float, float] = (18.0, 40.0)  # control-point spacing (smoothness)
    gland_volume_ml: tuple[float, float] = (18.0, 90.0)  # from-MR target gland volume, log-uniform
    anisotropy: float = 0.12  # from-MR: extra per-axis scale in 1 ± anisotropy
    # tissue properties
    t2: tuple[float, float] = (0.03, 1.3)
    echo: tuple[float, float] = (0.02, 1.8)  # log-uniform
    attenuation_factor: tuple[float, float] = (0.5, 2.0)  # log-uniform, times the tissue's physical value
    impedance_jitter: float = 0.06
    # MR
    mr_spacing_xy: tuple[float, float] = (0.5, 1.4)
    mr_spacing_z: tuple[float, float] = (1.5, 4.5)
    mr: MrPhysics = field(default_factory=lambda: MrPhysics(bias=0.25, coil=(0.0, 0.9), noise=(0.005, 0.08)))
    mr_remap_probability: float = 0.5  # from-MR: chance of a random non-monotonic intensity remapping
    mr_blur_mm: tuple[float, float] = (0.0, 1.2)  # from-MR: extra Gaussian blur (resolution), in-plane
    # TRUS
    trus: TrusPhysics = field(default_factory=lambda: TrusPhysics(
        tgc=(0.0, 0.02), speckle_scale=(0.6, 2.0), reflection_gain=(4.0, 36.0), reverberation=(0.0, 4.0),
        noise=(0.002, 0.06), dynamic_range_db=(30.0, 70.0), floor=(0.05, 0.45), shadows=(0, 3),
        fov_cut_probability=0.3))
    fan: FanRanges = field(default_factory=lambda: FanRanges(half_angle_deg=(30.0, 70.0), depth=(35.0, 75.0),
                                                             length=(38.0, 75.0), offset=(-12.0, 12.0)))
    calcifications: tuple[int, int] = (0, 12)
    mr_classes: tuple[int, int] = (3, 7)  # from-MR: intensity classes the TRUS properties are painted by
    min_visible_fraction: float = 0.5  # a draw whose TRUS shows less of the gland than this is drawn again


def log_uniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def random_tables(rng: np.random.Generator, r: Randomisation) -> dict[str, np.ndarray]:
    """Per-tissue T2, echogenicity, impedance and attenuation, drawn afresh (see the module docstring)."""
    n = len(TISSUES)
    base_imp = np.array([t.impedance for t in TISSUES], dtype=np.float32)
    base_att = np.array([t.attenuation for t in TISSUES], dtype=np.float32)
    return {
        "t2": rng.uniform(*r.t2, n).astype(np.float32),
        "echo": log_uniform(rng, *r.echo, n).astype(np.float32),
        "impedance": (base_imp * (1.0 + r.impedance_jitter * rng.standard_normal(n))).astype(np.float32),
        "attenuation": (base_att * log_uniform(rng, *r.attenuation_factor, n)).astype(np.float32),
    }


def random_displacement(rng: np.random.Generator, shape: tuple[int, int, int], spacing: np.ndarray,
                        r: Randomisation) -> np.ndarray | None:
    """A smooth random displacement field in voxels, shape (3, nz, ny, nx) as (z, y, x) components.

    Returns None for a zero amplitude. Displacements are Gaussian on a control grid of the drawn spacing and
    upsampled with cubic splines; the amplitude is capped at a fifth of the spacing, which keeps the map
    one-to-one.
    """
    amp = rng.uniform(*r.deformation_mm)
    step = rng.uniform(*r.deformation_spacing_mm)
    amp = min(amp, step / 5.0)
    if amp <= 0:
        return None
    spacing_zyx = np.asarray(spacing, dtype=float)[::-1]
    extent = np.array(shape) * spacing_zyx
    coarse = np.maximum(np.ceil(extent / step).astype(int) + 1, 2)
    out = np.empty((3, *shape), dtype=np.float32)
    for k in range(3):
        c = rng.normal(0.0, amp, coarse).astype(np.float32)
        zoom = [(s - 1) / (cs - 1) if s > 1 else 1.0 for s, cs in zip(shape, coarse, strict=True)]
        up = ndimage.zoom(c, zoom, order=3, mode="nearest", grid_mode=False)
        out[k] = up[: shape[0], : shape[1], : shape[2]] / spacing_zyx[k]
    return out


def warp(volume: np.ndarray, displacement: np.ndarray | None, order: int) -> np.ndarray:
    """``volume(x + u(x))`` for a voxel displacement field (see :func:`random_displacement`)."""
    if displacement is None:
        return volume
    grid = np.indices(volume.shape, dtype=np.float32) + displacement
    out = ndimage.map_coordinates(volume, grid, order=order, mode="nearest", prefilter=False)
    return out.astype(volume.dtype, copy=False)


def remap_intensities(rng: np.random.Generator, image: np.ndarray, knots: int = 6) -> np.ndarray:
    """A random piecewise-linear (generally non-monotonic) intensity curve applied at the image's quantiles."""
    qs = np.percentile(image, np.linspace(0.5, 99.5, knots))
    qs = np.maximum.accumulate(qs + np.arange(knots) * 1e-6)
    values = rng.uniform(0.0, 1.0, knots)
    return np.interp(image, qs, values).astype(np.float32)


def random_classes(rng: np.random.Generator, m: np.ndarray, r: Randomisation) -> np.ndarray:
    """Tissue indices from MR intensity by random thresholds (from-MR mode, outside the gland).

    The classes use soft-tissue slots that are not gland tissues, so each gets its own random properties;
    signal voids stay rectal wall, as in the unrandomised mode, since the probe takes their place.
    """
    slots = [INDEX[t] for t in ("fat", "fibrous", "muscle", "venous_plexus", "bladder_wall", "seminal_wall",
                                "urine", "seminal_fluid")]
    k = int(rng.integers(r.mr_classes[0], r.mr_classes[1] + 1))
    cuts = np.sort(rng.uniform(0.06, 1.0, k - 1))
    chosen = rng.choice(slots, size=k, replace=False)
    labels = chosen[np.searchsorted(cuts, m)].astype(np.uint8)
    labels[m < 0.06] = INDEX["rectal_wall"]  # signal voids (rectal gas, a coil): where the probe goes
    return labels
