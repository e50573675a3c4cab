"""TRUS image formation: beams through deformed tissue, then scan conversion to a voxel grid.

The image is formed where ultrasound forms it, in beam space (range ρ, beam angle φ, sweep position z):

* echogenicity of the tissue at each sample (diffuse scattering), modulated by fully developed speckle: a
  complex Gaussian field blurred by the point-spread function (fine in range, coarser across beams, coarsest in
  elevation), whose magnitude is Rayleigh distributed and multiplies the signal;
* specular reflection at interfaces, proportional to the squared impedance step *along the beam*: boundaries
  facing the beam light up (boundary enhancement), boundaries parallel to it vanish (partly missing boundaries);
* transmission: the signal at depth is multiplied by the round-trip attenuation accumulated along the beam,
  net of time-gain compensation, and by the energy lost at each reflection. Calcifications and bone therefore
  cast shadows, and fluid (urine) gives enhancement behind it;
* near-field reverberation at the probe surface, electronic noise and log compression to 8 bits;
* scan conversion: beams are interpolated onto a Cartesian grid; outside the fan the image is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from regkit.synth.anatomy import Grid
from regkit.synth.probe import Fan, Probe


@dataclass(frozen=True)
class TrusPhysics:
    """Ranges the TRUS acquisition physics is drawn from (uniform in each range).

    The defaults are the phantom's; :class:`regkit.synth.randomise.Randomisation` widens them. ``shadows`` and
    ``fov_cut_probability`` add effects only the randomised mode draws (the defaults draw nothing for them, so
    the phantom's random stream, and the built-in benchmark, stay as they were).
    """

    tgc: tuple[float, float] = (0.008, 0.014)  # time-gain compensation per mm (net attenuation = tissue − tgc)
    speckle_scale: tuple[float, float] = (1.0, 1.0)  # multiplies the point-spread function (speckle grain size)
    reflection_gain: tuple[float, float] = (14.0, 24.0)  # specular reflection against diffuse scattering
    reverberation: tuple[float, float] = (1.0, 2.5)  # near-field reverberation amplitude
    noise: tuple[float, float] = (0.005, 0.02)  # electronic noise amplitude
    dynamic_range_db: tuple[float, float] = (42.0, 55.0)  # log compression
    floor: tuple[float, float] = (0.15, 0.25)  # soft-tissue grey level, as a fraction of the dynamic range
    shadows: tuple[int, int] = (0, 0)  # acoustic shadows from the probe surface (gas, poor contact), count range
    fov_cut_probability: float = 0.0  # chance that a plane cuts the imaged volume (an incomplete sweep)


DEFAULT_PHYSICS = TrusPhysics()


@dataclass
class TrusRender:
    image: np.ndarray  # uint8 (nz, ny, nx), probe-aligned grid
    label: np.ndarray  # uint8 gland label on the same grid (visible part, inside the fan)
    origin_probe: np.ndarray  # (x, y, z) of voxel 0 in the probe frame, mm
    spacing: np.ndarray  # (x, y, z) mm


def _sample(volume: np.ndarray, index_zyx: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(volume, index_zyx, order=1, mode="nearest", prefilter=False)


def render_trus(
    rng: np.random.Generator,
    grid: Grid,
    echo: np.ndarray,
    impedance: np.ndarray,
    attenuation: np.ndarray,
    gland: np.ndarray,
    probe: Probe,
    fan: Fan,
    spacing: np.ndarray = (0.6, 0.6, 0.8),
    beam_step: tuple[float, int, float] = (0.4, 113, 0.6),
    physics: TrusPhysics = DEFAULT_PHYSICS,
) -> TrusRender:
    """Render a TRUS volume of tissue property maps defined on ``grid`` (anatomy/MR frame).

    Parameters
    ----------
    echo, impedance, attenuation, gland : ndarray (nz, ny, nx)
        Echogenicity, acoustic impedance, attenuation per mm, gland occupancy on ``grid``.
    probe, fan
        Probe pose and deformation, and the imaged sector.
    spacing : (3,) mm
        Voxel size of the output grid (x lateral, y depth, z along the probe).
    beam_step : (dρ mm, number of beams, dz mm)
        Beam-space sampling.
    physics : TrusPhysics
        Ranges of the acquisition physics.
    """
    spacing = np.asarray(spacing, dtype=float)
    d_rho, n_phi, d_z = beam_step
    n_rho = round(fan.depth / d_rho) // 2 * 2 + 1
    n_z = round(fan.length / d_z) // 2 * 2 + 1
    rho = fan.radius + np.linspace(0, fan.depth, n_rho, dtype=np.float32)
    phi = np.deg2rad(np.linspace(-fan.half_angle_deg, fan.half_angle_deg, n_phi, dtype=np.float32))
    zs = fan.z_center + np.linspace(-fan.length / 2, fan.length / 2, n_z, dtype=np.float32)

    def probe_points(r, f, z):
        rr, ff, zz = np.meshgrid(r, f, z, indexing="ij")
        return np.stack([rr * np.sin(ff), -rr * np.cos(ff), zz], axis=-1)

    # undeform on a half-resolution beam grid, then interpolate the (smooth) correction
    coarse = probe.from_probe(probe_points(rho[::2], phi[::2], zs[::2])).astype(np.float32)
    delta = probe.undeform(coarse) - coarse
    full_shape = (n_rho, n_phi, n_z)
    zoom = [(f - 1) / (c - 1) for f, c in zip(full_shape, delta.shape[:3], strict=True)]
    fine = probe.from_probe(probe_points(rho, phi, zs)).astype(np.float32)
    for k in range(3):
        fine[..., k] += ndimage.zoom(delta[..., k], zoom, order=1, grid_mode=False)[
            : full_shape[0], : full_shape[1], : full_shape[2]]
    idx = grid.to_index(fine)[..., ::-1].transpose(3, 0, 1, 2).astype(np.float32)  # (z, y, x) first
    del fine
    e = _sample(echo, idx)
    z_ac = _sample(impedance, idx)
    att = _sample(attenuation, idx)
    g = _sample(gland, idx)
    del idx

    # amplitude reflection coefficient of the impedance step across a 1 mm window along the beam (axis 0)
    w = max(1, round(0.5 / d_rho))
    refl = np.zeros_like(z_ac)
    refl[w:-w] = (z_ac[2 * w:] - z_ac[: -2 * w]) / (z_ac[2 * w:] + z_ac[: -2 * w])
    refl = np.abs(refl)
    tgc = rng.uniform(*physics.tgc)
    loss = (2.0 * np.maximum(att - tgc, -0.01) * d_rho
            - 2.0 * np.log1p(-np.minimum(refl * refl, 0.95)) * d_rho / (2 * w * d_rho))
    if physics.shadows[1] > 0:
        loss += _shadows(rng, physics.shadows, loss.shape, d_rho)
    transmission = np.exp(-np.cumsum(loss, axis=0))

    psf = (rng.uniform(0.6, 0.9), rng.uniform(1.0, 1.6), rng.uniform(1.0, 1.6))  # samples: range, beam, sweep
    if physics.speckle_scale != (1.0, 1.0):
        psf = tuple(p * rng.uniform(*physics.speckle_scale) for p in psf)
    speckle = np.abs(
        ndimage.gaussian_filter(rng.standard_normal(full_shape, dtype=np.float32), psf)
        + 1j * ndimage.gaussian_filter(rng.standard_normal(full_shape, dtype=np.float32), psf)
    )
    speckle /= speckle.mean()
    signal = e * speckle + rng.uniform(*physics.reflection_gain) * refl * (0.5 + 0.5 * speckle)
    depth = (rho - fan.radius)[:, None, None]
    signal += rng.uniform(*physics.reverberation) * np.exp(-depth / 0.8) * speckle  # near-field reverberation
    envelope = transmission * signal
    envelope += rng.uniform(*physics.noise) * np.abs(
        rng.standard_normal(full_shape, dtype=np.float32) + 1j * rng.standard_normal(full_shape, dtype=np.float32))
    # log compression: dynamic range in dB, with soft tissue (echogenicity 0.4) placed at a low grey level
    dyn = rng.uniform(*physics.dynamic_range_db)
    floor = 20.0 * np.log10(0.4) - rng.uniform(*physics.floor) * dyn
    beam_image = 255.0 * (20.0 * np.log10(np.maximum(envelope, 1e-6)) - floor) / dyn
    beam_image = np.clip(beam_image, 0, 255).astype(np.float32)

    # scan conversion onto a probe-aligned Cartesian grid
    r_max = fan.radius + fan.depth
    half_w = r_max * np.sin(np.deg2rad(fan.half_angle_deg)) + 1.0
    y_lo, y_hi = -r_max - 1.0, -fan.radius * np.cos(np.deg2rad(fan.half_angle_deg)) + 3.0
    origin = np.array([-half_w, y_lo, fan.z_center - fan.length / 2])
    size = np.ceil(np.array([2 * half_w, y_hi - y_lo, fan.length]) / spacing).astype(int) + 1
    xs = (origin[0] + spacing[0] * np.arange(size[0])).astype(np.float32)
    ys = (origin[1] + spacing[1] * np.arange(size[1])).astype(np.float32)
    zz = (origin[2] + spacing[2] * np.arange(size[2])).astype(np.float32)
    Z, Y, X = np.meshgrid(zz, ys, xs, indexing="ij")
    r = np.hypot(X, Y)
    f = np.degrees(np.arctan2(X, -Y))
    inside = ((r >= fan.radius) & (r <= r_max) & (np.abs(f) <= fan.half_angle_deg)
              & (np.abs(Z - fan.z_center) <= fan.length / 2))
    coords = np.stack([
        (r - fan.radius) / d_rho,
        (f + fan.half_angle_deg) / (2 * fan.half_angle_deg) * (n_phi - 1),
        (Z - zs[0]) / (zs[1] - zs[0]),
    ])
    coords = coords[:, inside]
    image = np.zeros(inside.shape, dtype=np.uint8)
    image[inside] = np.clip(ndimage.map_coordinates(beam_image, coords, order=1, mode="nearest",
                                                    prefilter=False), 0, 255).astype(np.uint8)
    label = np.zeros(inside.shape, dtype=np.uint8)
    label[inside] = ndimage.map_coordinates(g, coords, order=1, mode="nearest", prefilter=False) > 0.5
    if physics.fov_cut_probability > 0 and rng.random() < physics.fov_cut_probability:
        keep = _fov_cut(rng, X, Y, Z, fan)
        image[~keep] = 0
        label[~keep] = 0
    return TrusRender(image=image, label=label, origin_probe=origin, spacing=spacing)


def _shadows(rng: np.random.Generator, count: tuple[int, int], shape: tuple[int, int, int],
             d_rho: float) -> np.ndarray:
    """Extra attenuation of acoustic shadows: sectors of beams blocked from some depth on (beam space)."""
    n_rho, n_phi, n_z = shape
    extra = np.zeros(shape, dtype=np.float32)
    for _ in range(rng.integers(count[0], count[1] + 1)):
        phi0 = rng.integers(0, n_phi)
        z0 = rng.integers(0, n_z)
        half_phi = rng.integers(2, max(3, n_phi // 6))
        half_z = rng.integers(3, max(4, n_z // 4))
        r0 = rng.integers(0, max(1, n_rho // 2))
        strength = rng.uniform(0.02, 0.3)  # amplitude loss per mm, one way, over a few mm
        thick = max(1, round(rng.uniform(1.0, 4.0) / d_rho))
        extra[r0:r0 + thick, max(0, phi0 - half_phi):phi0 + half_phi, max(0, z0 - half_z):z0 + half_z] += (
            2.0 * strength * d_rho)
    return extra


def _fov_cut(rng: np.random.Generator, X, Y, Z, fan: Fan) -> np.ndarray:
    """Voxels kept by a random plane through the fan (an incomplete sweep or a lost probe contact)."""
    normal = rng.standard_normal(3)
    normal[2] *= 2.0  # cuts across the sweep (apex, base) are the common ones
    normal /= np.linalg.norm(normal)
    mid = np.array([0.0, -(fan.radius + fan.depth / 2), fan.z_center])
    point = mid + rng.uniform(-0.5, 0.5, 3) * np.array([fan.depth, fan.depth / 2, fan.length]) * 0.6
    return ((X - point[0]) * normal[0] + (Y - point[1]) * normal[1] + (Z - point[2]) * normal[2]) < 0
