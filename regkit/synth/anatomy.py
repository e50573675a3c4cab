"""A random male pelvis around the prostate, painted as tissue classes on a grid in the MR frame.

The anatomy is drawn in the MR's physical frame (LPS: +x left, +y posterior, +z superior). Structures:
the gland (peripheral zone, transition zone with BPH nodules, anterior fibromuscular stroma, urethra,
surgical capsule, calcifications, an optional peripheral-zone lesion) inside a thin capsule; the periprostatic
venous plexus; bladder; seminal vesicles; rectum; levator ani and obturator muscles; pubic and ischial bone;
and fat with fibrous septa everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from regkit.synth.tissues import INDEX


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid: array shape ``(nz, ny, nx)``, spacing and origin in (x, y, z) mm."""

    shape: tuple[int, int, int]
    spacing: np.ndarray
    origin: np.ndarray

    def axis(self, k: int, sl: slice = slice(None)) -> np.ndarray:
        """Physical coordinates along axis k (0 = x, 1 = y, 2 = z) for index slice ``sl``."""
        n = self.shape[2 - k]
        idx = np.arange(n)[sl]
        return (self.origin[k] + self.spacing[k] * idx).astype(np.float32)

    def coords(self, box: tuple[slice, slice, slice] | None = None):
        """Broadcastable physical coordinate arrays X, Y, Z for a (z, y, x) slice box."""
        bz, by, bx = box if box is not None else (slice(None),) * 3
        x = self.axis(0, bx)[None, None, :]
        y = self.axis(1, by)[None, :, None]
        z = self.axis(2, bz)[:, None, None]
        return x, y, z

    def box(self, center: np.ndarray, half: np.ndarray) -> tuple[slice, slice, slice]:
        """Index slices (z, y, x) covering ``center ± half`` mm, clipped to the grid."""
        lo = np.floor((np.asarray(center) - half - self.origin) / self.spacing).astype(int)
        hi = np.ceil((np.asarray(center) + half - self.origin) / self.spacing).astype(int) + 1
        n = np.array(self.shape[::-1])
        lo, hi = np.clip(lo, 0, n), np.clip(hi, 0, n)
        return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Physical points (..., 3) to continuous (x, y, z) indices."""
        return (np.asarray(points) - self.origin) / self.spacing


def smooth_noise(rng: np.random.Generator, shape, sigma_vox) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation (float32)."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox, mode="wrap")
    return n / max(float(n.std()), 1e-6)


def _rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


@dataclass
class GlandShape:
    """The prostate as an implicit surface in a gland-local frame."""

    center: np.ndarray  # mm, MR frame
    rotation: np.ndarray  # columns: gland axes in the MR frame
    axes: np.ndarray  # semi-axes (LR, AP, SI) in mm
    taper: float  # relative widening towards the base (superior)
    posterior_flattening: float
    harmonics: list[tuple[np.ndarray, float, float]] = field(default_factory=list)  # (omega, amp, phase)

    def local(self, x, y, z):
        """Gland-local coordinates of broadcastable physical coordinate arrays."""
        dx, dy, dz = x - self.center[0], y - self.center[1], z - self.center[2]
        r = self.rotation
        return (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
                r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
                r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz)

    def signed_distance(self, x, y, z) -> np.ndarray:
        """Approximate signed distance in mm (negative inside)."""
        qx, qy, qz = self.local(x, y, z)
        ax, ay, az = self.axes
        ax_eff = ax * (1.0 + self.taper * np.clip(qz / az, -1.2, 1.2))
        ay_eff = np.where(qy > 0, ay * (1.0 - self.posterior_flattening), ay)
        ux, uy, uz = qx / ax_eff, qy / ay_eff, qz / az
        rn = np.sqrt(ux * ux + uy * uy + uz * uz) + 1e-6
        h = 0.0
        for omega, amp, phase in self.harmonics:
            h = h + amp * np.cos((omega[0] * ux + omega[1] * uy + omega[2] * uz) / rn + phase)
        return (rn - 1.0 - h) * float(np.mean(self.axes))


@dataclass
class Anatomy:
    """Tissue classes on a grid, with the facts the probe model needs."""

    grid: Grid
    labels: np.ndarray  # uint8 (nz, ny, nx) tissue indices
    gland: np.ndarray  # float32 (nz, ny, nx) gland occupancy in [0, 1]
    texture_coarse: np.ndarray  # float32, unit std, shared by both modalities
    texture_mr: np.ndarray
    texture_us: np.ndarray
    gland_shape: GlandShape
    rectum_axis_point: np.ndarray
    rectum_direction: np.ndarray
    lumen_gel: bool


def _paint(labels: np.ndarray, box, mask: np.ndarray, tissue: str) -> None:
    labels[box][mask] = INDEX[tissue]


def random_gland(rng: np.random.Generator, center: np.ndarray) -> GlandShape:
    axes = np.array([rng.uniform(19, 27), rng.uniform(13, 18), rng.uniform(15, 22)])
    rotation = _rot_x(rng.uniform(-12, 12)) @ _rot_y(rng.uniform(-5, 5)) @ _rot_z(rng.uniform(-6, 6))
    harmonics = []
    for _ in range(5):
        w = rng.standard_normal(3)
        w *= rng.uniform(1.5, 3.0) / np.linalg.norm(w)
        harmonics.append((w, rng.uniform(0.0, 0.045), rng.uniform(0, 2 * np.pi)))
    return GlandShape(center, rotation, axes, rng.uniform(0.04, 0.2), rng.uniform(0.08, 0.22), harmonics)


def build_anatomy(rng: np.random.Generator, grid: Grid, gland_center: np.ndarray) -> Anatomy:
    """Paint a random pelvis on ``grid`` with the gland at ``gland_center`` (mm)."""
    shape = grid.shape
    sp = grid.spacing
    coarse = smooth_noise(rng, shape, 4.0 / sp[::-1])
    tex_mr = smooth_noise(rng, shape, 0.9 / sp[::-1])
    tex_us = smooth_noise(rng, shape, 0.9 / sp[::-1])
    septa = smooth_noise(rng, shape, 3.0 / sp[::-1])

    # background: fat with fibrous septa (thin sheets where a smooth field crosses zero)
    labels = np.full(shape, INDEX["fat"], dtype=np.uint8)
    labels[np.abs(septa) < rng.uniform(0.06, 0.12)] = INDEX["fibrous"]

    g = random_gland(rng, np.asarray(gland_center, dtype=float))
    c = g.center
    ax, ay, az = g.axes
    X, Y, Z = grid.coords()

    # pelvic side wall: obturator internus lining an elliptical ring of bone (ischium and pubic rami); the ring
    # spans the lateral angles only (open posteriorly; the symphysis is drawn separately), with radial ends
    wall_c = np.array([c[0], c[1] + rng.uniform(-2, 6)])
    wall_r = np.array([ax + rng.uniform(26, 34), rng.uniform(44, 54)])
    ew = np.sqrt(((X - wall_c[0]) / wall_r[0]) ** 2 + ((Y - wall_c[1]) / wall_r[1]) ** 2)
    angle = np.degrees(np.arctan2(np.abs(X - wall_c[0]), -(Y - wall_c[1])))  # 0 = anterior, 180 = posterior
    lateral = (angle > rng.uniform(28, 40)) & (angle < rng.uniform(125, 145))
    t_m = rng.uniform(14, 22) / wall_r[0]
    t_c = 2.0 / wall_r[0]
    labels[np.broadcast_to(lateral & (ew >= 1.0) & (ew < 1.0 + t_m), shape)] = INDEX["muscle"]
    labels[np.broadcast_to(lateral & (ew >= 1.0 + t_m), shape)] = INDEX["bone_cortex"]
    labels[np.broadcast_to(lateral & (ew >= 1.0 + t_m + t_c), shape)] = INDEX["bone_marrow"]

    sling_c = np.array([c[0], c[1] + rng.uniform(8, 14)])
    sling_r = np.array([ax + rng.uniform(9, 14), ay + rng.uniform(18, 26)])
    sling = np.sqrt(((X - sling_c[0]) / sling_r[0]) ** 2 + ((Y - sling_c[1]) / sling_r[1]) ** 2)
    thick = rng.uniform(5.0, 9.0) / sling_r.mean()
    levator = (np.abs(sling - 1.0) < thick / 2) & (Y > c[1] - 0.2 * ay) & (Z < c[2] + 0.6 * az)
    labels[np.broadcast_to(levator, shape)] = INDEX["muscle"]

    # gluteal muscle mass behind, around the fat of the ischioanal fossa (an elliptical notch behind the rectum)
    top = c[1] + rng.uniform(34, 44)
    fossa = ((X - c[0]) / rng.uniform(22, 30)) ** 2 + ((Y - top) / rng.uniform(14, 20)) ** 2 < 1.0
    glut = (Y > top) & ~fossa
    labels[np.broadcast_to(glut, shape)] = INDEX["muscle"]

    # pubic symphysis, anterior
    d_pub = ay + rng.uniform(22, 34)
    for side in (-1, 1):
        pc = np.array([c[0] + side * rng.uniform(9, 13), c[1] - d_pub, c[2] + rng.uniform(0, 12)])
        pr = np.array([rng.uniform(8, 11), rng.uniform(6, 9), 30.0])
        box = grid.box(pc, pr + 2)
        x, y, z = grid.coords(box)
        e = np.sqrt(((x - pc[0]) / pr[0]) ** 2 + ((y - pc[1]) / pr[1]) ** 2 + ((z - pc[2]) / pr[2]) ** 2)
        _paint(labels, box, e < 1.0, "bone_cortex")
        _paint(labels, box, e < 1.0 - 2.0 / pr[:2].mean(), "bone_marrow")

    # bladder
    rb = rng.uniform(14, 34)
    bc = c + g.rotation @ np.array([0.0, -0.25 * ay, az * 0.75 + rb * 0.85])
    br = np.array([rb * 1.15, rb * 0.9, rb])
    box = grid.box(bc, br + 4)
    x, y, z = grid.coords(box)
    e = np.sqrt(((x - bc[0]) / br[0]) ** 2 + ((y - bc[1]) / br[1]) ** 2 + ((z - bc[2]) / br[2]) ** 2)
    wall = rng.uniform(2.0, 4.0) / rb
    _paint(labels, box, e < 1.0 + wall, "bladder_wall")
    _paint(labels, box, e < 1.0, "urine")

    # seminal vesicles: chains of small ellipsoids, posterior-superior to the base, convoluted inside
    for side in (-1, 1):
        start = c + g.rotation @ np.array([side * 5.0, 0.45 * ay, 0.8 * az])
        end = start + g.rotation @ np.array([side * rng.uniform(14, 22), rng.uniform(2, 6), rng.uniform(8, 14)])
        for t in np.linspace(0, 1, 5):
            sc = start + t * (end - start) + rng.normal(0, 1.0, 3)
            sr = np.array([rng.uniform(4, 6), rng.uniform(3, 4.5), rng.uniform(4, 6)])
            box = grid.box(sc, sr + 1)
            x, y, z = grid.coords(box)
            e = np.sqrt(((x - sc[0]) / sr[0]) ** 2 + ((y - sc[1]) / sr[1]) ** 2 + ((z - sc[2]) / sr[2]) ** 2)
            inside = e < 1.0
            _paint(labels, box, inside, "seminal_wall")
            _paint(labels, box, inside & (e < 0.85) & (tex_mr[box] > -0.4), "seminal_fluid")

    # rectum behind the gland, running roughly along the gland's long axis
    sd_probe_dir = g.rotation @ np.array([0.0, 1.0, 0.0])
    tilt = _rot_x(rng.uniform(-8, 8))
    rect_dir = tilt @ g.rotation @ np.array([0.0, 0.0, 1.0])
    lumen = np.array([rng.uniform(6, 11), rng.uniform(3, 7)])  # flattened lumen (LR, AP)
    wall_t = rng.uniform(2.5, 4.0)
    gap = rng.uniform(1.0, 3.0)
    rect_point = c + sd_probe_dir * (ay * (1 - g.posterior_flattening) + gap + wall_t + lumen[1])
    box = grid.box(rect_point, np.array([lumen[0] + wall_t + 2, lumen[1] + wall_t + 30, 60.0]))
    x, y, z = grid.coords(box)
    d = np.stack(np.broadcast_arrays(x - rect_point[0], y - rect_point[1], z - rect_point[2]))
    along = np.tensordot(rect_dir, d, axes=1)
    perp = d - rect_dir[:, None, None, None] * along
    e_lr = np.cross(rect_dir, sd_probe_dir)
    e_lr /= np.linalg.norm(e_lr)
    e_ap = np.cross(e_lr, rect_dir)
    u = np.tensordot(e_lr, perp, axes=1)
    v = np.tensordot(e_ap, perp, axes=1)
    r_in = np.sqrt((u / lumen[0]) ** 2 + (v / lumen[1]) ** 2)
    r_out = np.sqrt((u / (lumen[0] + wall_t)) ** 2 + (v / (lumen[1] + wall_t)) ** 2)
    _paint(labels, box, r_out < 1.0, "rectal_wall")
    _paint(labels, box, r_in < 1.0, "rectal_lumen")

    # the gland and its neighbourhood, in a box around it
    half = g.axes * 1.5 + 8
    box = grid.box(c, half)
    x, y, z = grid.coords(box)
    sd = g.signed_distance(x, y, z)
    qx, qy, qz = g.local(x, y, z)
    nb = labels[box]
    venous = (sd > 0.8) & (sd < rng.uniform(3.5, 6.0)) & (qy < 0.1 * ay) & (coarse[box] > -0.2)
    nb[venous] = INDEX["venous_plexus"]
    nb[(sd >= 0) & (sd < rng.uniform(0.7, 1.2))] = INDEX["capsule"]
    inside = sd < 0
    nb[inside] = INDEX["peripheral_zone"]
    s_tz = rng.uniform(0.75, 1.15)
    tz_c = np.array([0.0, -0.18 * ay, 0.1 * az])
    tz_r = np.array([0.62 * ax, 0.55 * ay, 0.62 * az]) * s_tz
    tz_e = np.sqrt(((qx - tz_c[0]) / tz_r[0]) ** 2 + ((qy - tz_c[1]) / tz_r[1]) ** 2
                   + ((qz - tz_c[2]) / tz_r[2]) ** 2)
    tz = inside & (tz_e < 1.0)
    nb[inside & (np.abs(tz_e - 1.0) < 0.9 / tz_r.mean())] = INDEX["surgical_capsule"]
    nb[tz] = INDEX["transition_zone"]
    afms = inside & (qy / ay < -0.58 + 0.3 * (qx / ax) ** 2)
    nb[afms] = INDEX["anterior_stroma"]
    for _ in range(rng.integers(2, 9)):
        nc = tz_c + rng.uniform(-0.6, 0.6, 3) * tz_r
        nr = rng.uniform(2.0, 6.0)
        nod = tz & (((qx - nc[0]) ** 2 + (qy - nc[1]) ** 2 + (qz - nc[2]) ** 2) < nr ** 2)
        nb[nod] = INDEX["nodule_bright" if rng.random() < 0.5 else "nodule_dark"]
    if rng.random() < 0.35:
        lc = np.array([rng.choice([-1, 1]) * rng.uniform(0.3, 0.6) * ax, rng.uniform(0.3, 0.6) * ay,
                       rng.uniform(-0.5, 0.4) * az])
        lr = rng.uniform(3.0, 7.0)
        les = inside & ~tz & ((((qx - lc[0]) ** 2 + (qy - lc[1]) ** 2 + (qz - lc[2]) ** 2) ** 0.5
                               + 1.5 * tex_mr[box]) < lr)
        nb[les] = INDEX["lesion"]
    u_y = ay * (-0.12 - 0.2 * np.clip(qz / az, 0, 1))
    ur = rng.uniform(1.8, 3.0)
    nb[inside & ((qx ** 2 + (qy - u_y) ** 2) < ur ** 2)] = INDEX["urethra"]
    for _ in range(rng.integers(0, 7)):
        # calcifications on the surgical capsule or beside the urethra
        if rng.random() < 0.6:
            dirn = rng.standard_normal(3)
            dirn /= np.linalg.norm(dirn)
            cc = tz_c + dirn * tz_r
        else:
            zc = rng.uniform(-0.5, 0.6) * az
            cc = np.array([rng.uniform(-3, 3), ay * (-0.12 - 0.2 * max(zc / az, 0)) + rng.uniform(-4, 4), zc])
        for _ in range(rng.integers(1, 4)):
            pc = cc + rng.normal(0, 1.5, 3)
            pr = rng.uniform(0.6, 1.4)
            calc = inside & (((qx - pc[0]) ** 2 + (qy - pc[1]) ** 2 + (qz - pc[2]) ** 2) < pr ** 2)
            nb[calc] = INDEX["calcification"]
    labels[box] = nb

    gland = np.zeros(shape, dtype=np.float32)
    gland[box] = np.clip(0.5 - sd / (0.5 * float(sp.min()) * 2), 0.0, 1.0)
    return Anatomy(
        grid=grid, labels=labels, gland=gland, texture_coarse=coarse, texture_mr=tex_mr, texture_us=tex_us,
        gland_shape=g, rectum_axis_point=rect_point, rectum_direction=rect_dir, lumen_gel=bool(rng.random() < 0.4),
    )
