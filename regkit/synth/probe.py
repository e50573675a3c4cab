"""The TRUS probe: where it sits, how it deforms the tissue, and what its fan sees.

Probe frame (mm): the probe axis is the z axis, +y points posterior (away from the prostate), +x completes a
right-handed frame. Beams leave the probe surface (radius ``radius``) at angle φ from the anterior (−y)
direction, within ``±half_angle``, out to ``depth`` mm; the sweep covers ``length`` mm along the axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Probe:
    """Pose of the probe in the anatomy (MR) frame, and the tissue deformation its pressure causes.

    The deformation ``D(x) = x + u(x)`` has two parts:

    * probe pressure: tissue is pushed radially away from the probe axis by ``push · exp(−s/decay)``, where
      ``s`` is the distance from the probe surface. The gland is compressed front to back and bulges sideways,
      so no rigid transform maps MR anatomy onto TRUS anatomy exactly;
    * posture and filling changes between the two scans: a few smooth random displacement bumps.
    """

    axis_point: np.ndarray  # a point on the probe axis, anatomy frame
    rotation: np.ndarray  # columns: probe-frame x, y, z axes in the anatomy frame
    radius: float
    push: float
    decay: float
    bumps: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)  # (centre, vector, width)

    def to_probe(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points) - self.axis_point) @ self.rotation

    def from_probe(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points) @ self.rotation.T + self.axis_point

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """Tissue displacement ``u(x)`` (mm) at undeformed anatomy points, shape (..., 3)."""
        p = np.asarray(points, dtype=np.float32)
        axis = self.rotation[:, 2].astype(np.float32)
        d = p - self.axis_point.astype(np.float32)
        along = d @ axis
        radial = d - along[..., None] * axis
        rho = np.sqrt((radial * radial).sum(-1)) + 1e-3
        s = np.maximum(rho - self.radius, 0.0)
        mag = self.push * np.exp(-s / self.decay)
        u = radial * (mag / rho)[..., None]
        for centre, vector, width in self.bumps:
            w = np.exp(-((p - centre) ** 2).sum(-1) / (2 * width * width)).astype(np.float32)
            u += w[..., None] * vector.astype(np.float32)
        return u

    def deform(self, points: np.ndarray) -> np.ndarray:
        """Where undeformed anatomy points are during the TRUS scan (anatomy frame)."""
        return np.asarray(points) + self.displacement(points)

    def undeform(self, points: np.ndarray, iterations: int = 8) -> np.ndarray:
        """Invert :meth:`deform` by fixed-point iteration ``x ← y − u(x)`` (u is smooth, |∇u| < 1)."""
        y = np.asarray(points, dtype=np.float32)
        x = y.copy()
        for _ in range(iterations):
            x = y - self.displacement(x)
        return x


@dataclass(frozen=True)
class Fan:
    """The imaged region in the probe frame: a cylindrical sector."""

    half_angle_deg: float
    depth: float
    length: float
    z_center: float
    radius: float

    def contains(self, probe_points: np.ndarray) -> np.ndarray:
        x, y, z = probe_points[..., 0], probe_points[..., 1], probe_points[..., 2]
        rho = np.hypot(x, y)
        phi = np.degrees(np.arctan2(x, -y))
        return ((rho >= self.radius) & (rho <= self.radius + self.depth) & (np.abs(phi) <= self.half_angle_deg)
                & (np.abs(z - self.z_center) <= self.length / 2))


def random_probe(rng: np.random.Generator, gland_center: np.ndarray, gland_rotation: np.ndarray,
                 posterior_extent: float, rectum_direction: np.ndarray) -> Probe:
    """A probe in the rectum behind the gland, pressing on it.

    Parameters
    ----------
    gland_center : (3,) mm
    gland_rotation : (3, 3) gland axes (columns) in the anatomy frame
    posterior_extent : float
        Distance (mm) from the gland centre to its posterior surface.
    rectum_direction : (3,) unit vector along the rectum
    """
    radius = rng.uniform(9.0, 11.0)
    push = rng.uniform(2.0, 6.0)
    wall = rng.uniform(2.5, 4.0)
    posterior = gland_rotation[:, 1]
    z_axis = rectum_direction / np.linalg.norm(rectum_direction)
    roll = np.deg2rad(rng.uniform(-8, 8))
    y0 = posterior - (posterior @ z_axis) * z_axis
    y0 /= np.linalg.norm(y0)
    x0 = np.cross(y0, z_axis)
    y_axis = np.cos(roll) * y0 + np.sin(roll) * x0
    x_axis = np.cross(y_axis, z_axis)
    rotation = np.stack([x_axis, y_axis, z_axis], axis=1)
    # the probe surface starts `wall` behind the gland, minus how far it indents the tissue
    axis_point = gland_center + posterior * (posterior_extent + wall + radius - 0.8 * push)
    axis_point = axis_point + z_axis * rng.uniform(-6, 6)
    bumps = []
    for _ in range(3):
        centre = gland_center + rng.normal(0, 20, 3)
        vec = rng.normal(0, 1, 3)
        vec *= rng.uniform(0.5, 1.5) / np.linalg.norm(vec)
        bumps.append((centre.astype(np.float32), vec, rng.uniform(15, 30)))
    return Probe(axis_point, rotation, radius, push, rng.uniform(14, 24), bumps)


@dataclass(frozen=True)
class FanRanges:
    """Ranges the imaged sector is drawn from (degrees, mm); the randomised mode widens them."""

    half_angle_deg: tuple[float, float] = (42.0, 55.0)
    depth: tuple[float, float] = (46.0, 60.0)
    length: tuple[float, float] = (46.0, 64.0)
    offset: tuple[float, float] = (-7.0, 7.0)  # sweep centre from the gland centre, along the probe axis


def random_fan(rng: np.random.Generator, probe: Probe, gland_center: np.ndarray,
               ranges: FanRanges = FanRanges()) -> Fan:
    """A fan whose sweep is centred near the gland along the probe axis; it may cut the apex or the base."""
    zc = float(probe.to_probe(gland_center)[2]) + rng.uniform(*ranges.offset)
    return Fan(half_angle_deg=rng.uniform(*ranges.half_angle_deg), depth=rng.uniform(*ranges.depth),
               length=rng.uniform(*ranges.length), z_center=zc, radius=probe.radius)
