"""The synthetic MR/TRUS phantom: one random pelvis seen by T2 MR and by a TRUS probe pressing on it.

What each effect models (and why it makes registration hard):

========================  =================================================================================
effect                    what it models
========================  =================================================================================
probe pressure            the probe pushes tissue away from its axis (2–6 mm at the surface, decaying over
                          14–24 mm), compressing the gland front to back and widening it; plus smooth random
                          displacements (posture, bladder filling). No rigid transform aligns MR and TRUS
                          exactly: the ground truth is the least-squares rigid fit on the MR surface points,
                          and its residual (``sre_floor`` in case.json) is the SRE no rigid method can beat.
zonal anatomy             peripheral zone, transition zone with BPH nodules, anterior stroma, urethra,
                          surgical capsule, capsule; clear in T2, mostly not in TRUS.
no intensity function     each tissue has an independent T2 signal and echogenicity (see ``tissues.py``):
                          bright-in-T2 fat is echogenic but bright-in-T2 urine, blood and seminal fluid are
                          anechoic; dark-in-T2 septa, calcifications and bone are bright in TRUS.
weak TRUS boundaries      the gland's echogenicity is close to its surroundings; its boundary shows only where
                          it faces the beam (specular reflection along the beam).
speckle                   multiplicative Rayleigh speckle from a complex Gaussian field blurred by an
                          anisotropic, depth-dependent point-spread function.
fan-shaped field of view  a cylindrical sector from the probe (±42–55°, 46–60 mm deep, 46–64 mm long) that
                          often cuts the apex, the base or the anterior gland.
attenuation, shadowing    round-trip attenuation net of time-gain compensation; calcifications and bone cast
                          shadows; urine gives enhancement behind the bladder.
TRUS geometry             its own voxel size (0.6 × 0.6 × 0.8 mm), extent and an oblique pose in the tracker's
                          world frame (±25°, ±40 mm), unrelated to the MR's.
MR physics                2–3 mm slices with partial volume, a smooth multiplicative bias field, coil falloff
                          and Rician noise.
========================  =================================================================================

Two modes: :func:`synth_case` draws the whole pelvis; :func:`synth_case_from_mr` keeps a real labelled MR and
derives the tissue properties the TRUS sees from it, so the anatomy is real. Either can be randomised far beyond
this look, for training (``randomise=``; see :mod:`regkit.synth.randomise`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from regkit.case import Case
from regkit.image import ImageGeometry, make_image
from regkit.surface import surface_from_label
from regkit.synth.anatomy import Grid, build_anatomy, smooth_noise
from regkit.synth.mr import (
    DEFAULT_MR_PHYSICS,
    US_TEXTURE,
    bias_polynomial,
    form_mr,
    rician_noise,
    t2_map,
    texture_table,
)
from regkit.synth.probe import Fan, FanRanges, Probe, random_fan, random_probe
from regkit.synth.randomise import (
    Randomisation,
    log_uniform,
    random_classes,
    random_displacement,
    random_tables,
    remap_intensities,
    warp,
)
from regkit.synth.tissues import INDEX, property_tables
from regkit.synth.trus import DEFAULT_PHYSICS, TrusPhysics, render_trus
from regkit.transform import RigidTransform, fit_rigid, rotation_matrix

PHANTOM_VERSION = 3


@dataclass(frozen=True)
class PhantomSettings:
    """Ranges the phantom draws from (mm unless stated)."""

    mr_size_xy: int = 128
    mr_spacing_xy: tuple[float, float] = (0.8, 1.0)
    mr_spacing_z: tuple[float, float] = (2.0, 3.0)
    mr_extent_z: float = 80.0
    trus_spacing: tuple[float, float, float] = (0.6, 0.6, 0.8)
    world_rotation_deg: float = 25.0
    world_translation: float = 40.0
    probe_deformation: bool = True  # False: no probe pressure nor posture bumps; the ground truth is exact


def case_rng(seed: int, index: int, randomised: bool = False, attempt: int = 0) -> np.random.Generator:
    """The generator of case ``index`` of a dataset made with ``seed``; independent of the case count.

    Randomised cases have their own streams (one per attempt), so adding the randomised mode changed no
    existing case.
    """
    if randomised:
        return np.random.default_rng([PHANTOM_VERSION, int(seed), int(index), 1, int(attempt)])
    return np.random.default_rng([PHANTOM_VERSION, int(seed), int(index)])


def _draw_visible(draw: Callable[[int], Case], randomise: Randomisation | None) -> Case:
    """``draw(attempt)`` for attempts 0, 1, ... until the case's TRUS shows enough of the gland: randomised fans
    and cuts may miss it, and such a case teaches nothing. The tenth attempt (and a case not randomised) is kept
    whatever it shows."""
    attempt = 0
    while True:
        case = draw(attempt)
        if randomise is None or attempt >= 9:
            return case
        if (case.metadata.get("trus_label_visible_fraction") or 0.0) >= randomise.min_visible_fraction:
            return case
        attempt += 1


def _us_maps(rng: np.random.Generator, labels: np.ndarray, tables: dict, coarse: np.ndarray, tex_us: np.ndarray,
             gland: np.ndarray):
    """Echogenicity, impedance and attenuation maps; small bright scatterers (corpora amylacea) in the gland."""
    tex = texture_table(US_TEXTURE, 0.15)[labels]
    echo = tables["echo"][labels] * np.clip(1.0 + tex * tex_us + 0.12 * coarse, 0.05, None)
    spots = (rng.random(labels.shape, dtype=np.float32) < rng.uniform(0.002, 0.008)) & (gland > 0.5)
    echo = echo + rng.uniform(1.0, 2.5) * spots
    return (ndimage.gaussian_filter(echo, 0.5), ndimage.gaussian_filter(tables["impedance"][labels], 0.6),
            tables["attenuation"][labels])


def _without_deformation(probe: Probe, settings: PhantomSettings) -> Probe:
    """The probe itself when ``settings.probe_deformation``, else the same probe deforming nothing (drawn from the
    same random stream, so the rest of the case is unchanged)."""
    return probe if settings.probe_deformation else replace(probe, push=0.0, bumps=[])


def _random_world(rng: np.random.Generator, settings: PhantomSettings) -> RigidTransform:
    angles = rng.uniform(-settings.world_rotation_deg, settings.world_rotation_deg, 3)
    t = rng.uniform(-settings.world_translation, settings.world_translation, 3)
    return RigidTransform.from_rotation_translation(rotation_matrix(angles), t)


def _finish(case_id: str, rng: np.random.Generator, mr_img: sitk.Image, mr_label: sitk.Image,
            mr_to_anatomy: RigidTransform, grid: Grid, echo, impedance, attenuation, gland, probe: Probe,
            fan: Fan, settings: PhantomSettings, meta: dict, physics: TrusPhysics = DEFAULT_PHYSICS) -> Case:
    """Render the TRUS, fit the ground truth and assemble the case (shared by both modes)."""
    render = render_trus(rng, grid, echo, impedance, attenuation, gland, probe, fan, settings.trus_spacing,
                         physics=physics)
    world = _random_world(rng, settings)
    trus_origin = world.apply(render.origin_probe)
    trus = make_image(render.image, render.spacing, trus_origin, world.rotation)
    trus_label = make_image(render.label, render.spacing, trus_origin, world.rotation)

    surface = surface_from_label(mr_label)
    true_points = world.apply(probe.to_probe(probe.deform(mr_to_anatomy.apply(surface))))
    gt = fit_rigid(surface, true_points)
    residual = np.linalg.norm(gt.apply(surface) - true_points, axis=1)
    meta = {
        **meta,
        "sre_floor_mm": float(residual.mean()),
        "sre_floor_max_mm": float(residual.max()),
        "probe_push_mm": float(probe.push),
        "probe_decay_mm": float(probe.decay),
        "probe_radius_mm": float(probe.radius),
        "fan": asdict(fan),
        "trus_label_visible_fraction": None,
    }
    if render.label.any():
        # how much of the gland the fan sees: visible TRUS label volume over deformed gland volume
        mr_vol = float((sitk.GetArrayViewFromImage(mr_label) > 0).sum() * np.prod(mr_label.GetSpacing()))
        tr_vol = float(render.label.sum() * np.prod(render.spacing))
        meta["trus_label_visible_fraction"] = round(min(tr_vol / max(mr_vol, 1e-6), 1.5), 3)
    return Case(case_id=case_id, fixed=mr_img, moving=trus, fixed_label=mr_label, ground_truth=gt,
                surface_points=surface, moving_label=trus_label if render.label.any() else None,
                metadata=meta)


def synth_case(seed: int, index: int = 0, settings: PhantomSettings = PhantomSettings(),
               case_id: str | None = None, randomise: Randomisation | None = None) -> Case:
    """Draw one synthetic MR/TRUS case, deterministic in ``(seed, index)``.

    With ``randomise``, the anatomy is deformed at random and the tissue contrasts and both acquisitions are
    drawn from its wide ranges (:mod:`regkit.synth.randomise`); a draw whose TRUS shows too little of the gland
    is drawn again.
    """
    return _draw_visible(lambda attempt: _synth_case(seed, index, settings, case_id, randomise, attempt), randomise)


def _synth_case(seed: int, index: int, settings: PhantomSettings, case_id: str | None,
                randomise: Randomisation | None, attempt: int) -> Case:
    r = randomise
    rng = case_rng(seed, index, randomised=r is not None, attempt=attempt)
    s = settings
    sxy = rng.uniform(*(s.mr_spacing_xy if r is None else r.mr_spacing_xy))
    sz = rng.uniform(*(s.mr_spacing_z if r is None else r.mr_spacing_z))
    nz = round(s.mr_extent_z / sz)
    n = s.mr_size_xy if r is None else min(176, round(rng.uniform(100.0, 140.0) / sxy))
    # MR grid centred on the origin; anatomy grid = MR grid with two samples per slice (partial volume)
    mr_origin = -np.array([(n - 1) * sxy / 2, (n - 1) * sxy / 2, (nz - 1) * sz / 2])
    grid = Grid(shape=(2 * nz, n, n), spacing=np.array([sxy, sxy, sz / 2]),
                origin=mr_origin - np.array([0.0, 0.0, sz / 4]))
    gland_center = np.array([rng.uniform(-6, 6), rng.uniform(-10, 2), rng.uniform(-6, 6)])
    anatomy = build_anatomy(rng, grid, gland_center)
    if r is not None:
        disp = random_displacement(rng, grid.shape, grid.spacing, r)
        anatomy.labels = warp(anatomy.labels, disp, 0)
        anatomy.gland = warp(anatomy.gland, disp, 1)
    tables = property_tables(rng) if r is None else random_tables(rng, r)
    mr_array, label_array = form_mr(rng, t2_map(anatomy, tables["t2"]), anatomy.gland, 2,
                                    DEFAULT_MR_PHYSICS if r is None else r.mr)
    mr_img = make_image(mr_array, (sxy, sxy, sz), mr_origin)
    mr_label = make_image(label_array, (sxy, sxy, sz), mr_origin)

    echo, impedance, attenuation = _us_maps(rng, anatomy.labels, tables, anatomy.texture_coarse,
                                           anatomy.texture_us, anatomy.gland)
    g = anatomy.gland_shape
    probe = random_probe(rng, g.center, g.rotation, g.axes[1] * (1 - g.posterior_flattening),
                         anatomy.rectum_direction)
    fan = random_fan(rng, probe, g.center, FanRanges() if r is None else r.fan)
    probe = _without_deformation(probe, s)
    meta = {"generator": "regkit.synth", "mode": "phantom", "phantom_version": PHANTOM_VERSION, "seed": int(seed),
            "index": int(index), "gland_axes_mm": [round(float(v), 2) for v in g.axes],
            "rectal_lumen": "gel" if anatomy.lumen_gel else "air", "randomised": r is not None}
    if r is not None:
        meta["attempt"] = attempt
    return _finish(case_id or f"case{index:03d}", rng, mr_img, mr_label, RigidTransform.identity(), grid,
                   echo, impedance, attenuation, anatomy.gland, probe, fan, settings, meta,
                   DEFAULT_PHYSICS if r is None else r.trus)


def synth_case_from_mr(mr: sitk.Image, label: sitk.Image, seed: int, index: int = 0,
                       settings: PhantomSettings = PhantomSettings(), case_id: str | None = None,
                       randomise: Randomisation | None = None) -> Case:
    """A TRUS made from a real labelled MR: the MR and its anatomy are real, the TRUS is simulated.

    Tissue properties outside the gland come from the MR intensity by classes (void, muscle, intermediate,
    fat, fluid; see the code; voids become rectal wall, since the probe takes the place of rectal gas or an
    endorectal coil), inside the gland from its zonal contrast (bright → peripheral zone, dark →
    transition zone), plus random calcifications. The probe sits behind the gland along the MR's z axis.

    With ``randomise``, the MR is first rescaled (its gland volume drawn at random: the real MRs' spacing is
    uncertain) and deformed at random, its intensities remapped, blurred and corrupted at random; the classes
    outside the gland come from random intensity thresholds, and every class gets random properties
    (:mod:`regkit.synth.randomise`). The case's MR is then the modified one. A draw whose TRUS shows too little
    of the gland is drawn again.
    """
    return _draw_visible(lambda attempt: _synth_case_from_mr(mr, label, seed, index, settings, case_id, randomise,
                                                             attempt), randomise)


def _synth_case_from_mr(mr: sitk.Image, label: sitk.Image, seed: int, index: int, settings: PhantomSettings,
                        case_id: str | None, randomise: Randomisation | None, attempt: int) -> Case:
    r = randomise
    rng = case_rng(seed, index, randomised=r is not None, attempt=attempt)
    if r is not None:
        mr, label = _randomised_mr(rng, mr, label, r)
        anatomy_mr = mr
        mr = _randomised_mr_contrast(rng, mr, r)
    else:
        anatomy_mr = mr
    geo = ImageGeometry.of(mr)
    # anatomy frame: the MR's index axes scaled to mm (its physical frame rotated by the MR direction)
    to_anatomy = RigidTransform.from_rotation_translation(geo.direction.T, -geo.direction.T @ geo.origin)
    grid = Grid(shape=tuple(mr.GetSize()[::-1]), spacing=geo.spacing, origin=np.zeros(3))
    m = sitk.GetArrayFromImage(anatomy_mr).astype(np.float32)
    lab = sitk.GetArrayFromImage(label) > 0
    m = m / max(float(np.percentile(m, 99.0)), 1e-6)
    if r is None:
        labels = np.full(m.shape, INDEX["fibrous"], dtype=np.uint8)
        labels[m < 0.30] = INDEX["muscle"]
        labels[m < 0.06] = INDEX["rectal_wall"]  # signal voids: rectal gas or an endorectal coil, where the probe goes
        labels[m > 0.55] = INDEX["fat"]
        labels[ndimage.gaussian_filter(m, 1.0) > 0.9] = INDEX["urine"]
    else:
        labels = random_classes(rng, ndimage.gaussian_filter(m, rng.uniform(0.0, 1.5)), r)
    gland_median = float(np.median(m[lab])) if lab.any() else 0.5
    ms = ndimage.gaussian_filter(m, 0.8)
    labels[lab] = np.where(ms[lab] > 1.1 * gland_median, INDEX["peripheral_zone"], INDEX["transition_zone"])
    zz, yy, xx = np.nonzero(lab)
    centre_idx = np.array([xx.mean(), yy.mean(), zz.mean()])
    centre = grid.origin + grid.spacing * centre_idx
    n_calc = rng.integers(0, 6) if r is None else rng.integers(r.calcifications[0], r.calcifications[1] + 1)
    for _ in range(n_calc):
        k = rng.integers(len(zz))
        p = np.array([xx[k], yy[k], zz[k]]) * grid.spacing
        box = grid.box(p, np.full(3, 3.0))
        x, y, z = grid.coords(box)
        ball = ((x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2) < rng.uniform(0.8, 1.6) ** 2
        labels[box][ball & lab[box]] = INDEX["calcification"]
    tables = property_tables(rng) if r is None else random_tables(rng, r)
    coarse = smooth_noise(rng, m.shape, 4.0 / grid.spacing[::-1])
    tex_us = smooth_noise(rng, m.shape, 0.9 / grid.spacing[::-1])
    gland = ndimage.gaussian_filter(lab.astype(np.float32), 0.5)
    echo, impedance, attenuation = _us_maps(rng, labels, tables, coarse, tex_us, gland)
    # the patient's axes in the anatomy frame (LPS: +y posterior, +z superior), whatever the MR's direction
    patient_axes = geo.direction.T
    posterior_dir = patient_axes[:, 1]
    points = np.stack([xx, yy, zz], axis=1) * grid.spacing
    posterior = float(((points - centre) @ posterior_dir).max())
    tilt = rotation_matrix([rng.uniform(-10, 10), rng.uniform(-4, 4), 0.0])
    probe = random_probe(rng, centre, patient_axes, posterior, patient_axes @ tilt @ np.array([0.0, 0.0, 1.0]))
    fan = random_fan(rng, probe, centre, FanRanges() if r is None else r.fan)
    probe = _without_deformation(probe, settings)
    meta = {"generator": "regkit.synth", "mode": "real-mr", "phantom_version": PHANTOM_VERSION, "seed": int(seed),
            "index": int(index), "randomised": r is not None}
    if r is not None:
        meta["attempt"] = attempt
    if r is not None:
        meta["gland_volume_ml"] = round(float(lab.sum() * np.prod(geo.spacing)) / 1000.0, 1)
    return _finish(case_id or f"case{index:03d}", rng, mr, label, to_anatomy, grid, echo, impedance,
                   attenuation, gland, probe, fan, settings, meta, DEFAULT_PHYSICS if r is None else r.trus)


def _randomised_mr(rng: np.random.Generator, mr: sitk.Image, label: sitk.Image,
                   r: Randomisation) -> tuple[sitk.Image, sitk.Image]:
    """A real MR and its label rescaled to a random gland volume (and anisotropy), then deformed at random."""
    geo = ImageGeometry.of(mr)
    lab = sitk.GetArrayFromImage(label) > 0
    volume = float(lab.sum() * np.prod(geo.spacing))  # mm³
    target = log_uniform(rng, *r.gland_volume_ml) * 1000.0
    scale = (target / max(volume, 1.0)) ** (1.0 / 3.0) * rng.uniform(1 - r.anisotropy, 1 + r.anisotropy, 3)
    spacing = geo.spacing * scale
    disp = random_displacement(rng, lab.shape, spacing, r)
    m = warp(sitk.GetArrayFromImage(mr).astype(np.float32), disp, 1)
    lab = warp(lab.astype(np.float32), disp, 1) > 0.5
    return tuple(make_image(a, spacing, mr.GetOrigin(), mr.GetDirection()) for a in (m, lab.astype(np.uint8)))


def _randomised_mr_contrast(rng: np.random.Generator, mr: sitk.Image, r: Randomisation) -> sitk.Image:
    """The MR as another scanner and protocol might show it: remapped intensities, blur, bias field, noise."""
    geo = ImageGeometry.of(mr)
    a = sitk.GetArrayFromImage(mr).astype(np.float32)
    a = a / max(float(np.percentile(a, 99.0)), 1e-6)
    if rng.random() < r.mr_remap_probability:
        a = remap_intensities(rng, a)
    blur = rng.uniform(*r.mr_blur_mm)
    if blur > 0:
        a = ndimage.gaussian_filter(a, (0.3 * blur / geo.spacing[2], blur / geo.spacing[1], blur / geo.spacing[0]))
    log_bias, (_, y, _) = bias_polynomial(rng, a.shape, r.mr.bias, terms=6)
    a = rician_noise(rng, a * np.exp(log_bias + rng.uniform(*r.mr.coil) * y * y), r.mr.noise)
    a = np.clip(a * (1000.0 / max(float(np.percentile(a, 99.5)), 1e-6)), 0, 32000).astype(np.int16)
    img = sitk.GetImageFromArray(a)
    img.CopyInformation(mr)
    return img
