"""T2-weighted MR image formation: tissue contrast, texture, partial volume, bias field and Rician noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from regkit.synth.anatomy import Anatomy
from regkit.synth.tissues import INDEX, TISSUES

# relative amplitude of fine texture per tissue in T2 (heterogeneous transition zone, homogeneous fluid)
MR_TEXTURE = {"transition_zone": 0.16, "nodule_bright": 0.12, "nodule_dark": 0.12, "peripheral_zone": 0.06,
              "fat": 0.05, "muscle": 0.07, "lesion": 0.08}
US_TEXTURE = {"transition_zone": 0.35, "nodule_bright": 0.3, "nodule_dark": 0.3, "peripheral_zone": 0.15,
              "fat": 0.35, "muscle": 0.3, "fibrous": 0.3, "seminal_fluid": 0.4, "bone_marrow": 0.3}


@dataclass(frozen=True)
class MrPhysics:
    """Ranges the MR acquisition is drawn from; :class:`regkit.synth.randomise.Randomisation` widens them."""

    bias: float = 0.12  # standard deviation of the log-bias polynomial's coefficients
    coil: tuple[float, float] = (0.2, 0.6)  # receive-coil falloff (log gain at the body surface)
    noise: tuple[float, float] = (0.015, 0.04)  # Rician noise σ, as a fraction of the 99th percentile signal


DEFAULT_MR_PHYSICS = MrPhysics()


def texture_table(amplitudes: dict[str, float], default: float) -> np.ndarray:
    table = np.full(len(TISSUES), default, dtype=np.float32)
    for name, a in amplitudes.items():
        table[INDEX[name]] = a
    return table


def t2_map(anatomy: Anatomy, t2_table: np.ndarray) -> np.ndarray:
    """Noise-free T2 signal on the anatomy grid."""
    table = t2_table.copy()
    table[INDEX["rectal_lumen"]] = 1.1 if anatomy.lumen_gel else 0.03
    tex = texture_table(MR_TEXTURE, 0.03)[anatomy.labels]
    m = table[anatomy.labels] * (1.0 + tex * anatomy.texture_mr + 0.05 * anatomy.texture_coarse)
    return ndimage.gaussian_filter(m, 0.5)


# the log-bias polynomial's terms, as products of the coordinates (0, 1, 2 = x, y, z), in the order drawn
_BIAS_TERMS = ((0,), (1,), (2,), (0, 0), (1, 1), (0, 1), (1, 2), (2, 2), (0, 2))


def bias_polynomial(rng: np.random.Generator, shape: tuple[int, int, int], sd: float,
                    terms: int = 9) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A smooth random log-bias field: a polynomial in coordinates normalised to [-1, 1] over a ``(z, y, x)``
    grid, with the first ``terms`` of x, y, z, x², y², xy, yz, z², xz and coefficients drawn from N(0, sd²).

    Returns the field and the coordinate grids ``(x, y, z)``, each of ``shape``.
    """
    zz, yy, xx = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    z, y, x = np.meshgrid(zz, yy, xx, indexing="ij")
    coords = (x, y, z)
    log_bias = None
    for c, factors in zip(rng.normal(0, sd, terms), _BIAS_TERMS[:terms], strict=True):
        term = c
        for k in factors:
            term = term * coords[k]
        log_bias = term if log_bias is None else log_bias + term
    return log_bias, coords


def rician_noise(rng: np.random.Generator, signal: np.ndarray, noise: tuple[float, float]) -> np.ndarray:
    """The magnitude of ``signal`` plus complex Gaussian noise, σ drawn from ``noise`` as a fraction of the
    signal's 99th percentile."""
    sigma = rng.uniform(*noise) * float(np.percentile(signal, 99))
    return np.hypot(signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32),
                    sigma * rng.standard_normal(signal.shape, dtype=np.float32))


def form_mr(rng: np.random.Generator, t2: np.ndarray, gland: np.ndarray,
            supersample_z: int, physics: MrPhysics = DEFAULT_MR_PHYSICS) -> tuple[np.ndarray, np.ndarray]:
    """MR voxels from a z-supersampled signal map: slice averaging, bias field, Rician noise.

    Returns the int16 image and the uint8 prostate label, both ``(nz, ny, nx)``.
    """
    nz = t2.shape[0] // supersample_z
    sig = t2[: nz * supersample_z].reshape(nz, supersample_z, *t2.shape[1:]).mean(axis=1)
    occ = gland[: nz * supersample_z].reshape(nz, supersample_z, *gland.shape[1:]).mean(axis=1)
    log_bias, (_, y, _) = bias_polynomial(rng, sig.shape, physics.bias)
    # receive-coil sensitivity: brighter towards the posterior and anterior body surface
    log_bias += rng.uniform(*physics.coil) * (y * y)
    noisy = rician_noise(rng, sig * np.exp(log_bias), physics.noise)
    scale = rng.uniform(600, 1400) / float(np.percentile(noisy, 99.5))
    image = np.clip(noisy * scale, 0, 32000).astype(np.int16)
    return image, (occ > 0.5).astype(np.uint8)
