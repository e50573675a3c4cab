"""``mi``: rigid registration maximising Mattes mutual information, through itk-elastix.

``EulerTransform`` + ``AdvancedMattesMutualInformation`` + adaptive stochastic gradient descent (elastix's
default rigid recipe; one resolution by default, more with ``resolutions``), started from the protocol's start
in memory. The fixed input is the MR image (or, with ``fixed="label"``, the MR prostate label).
"""

from __future__ import annotations

from regkit.baselines.elastix import check_settings
from regkit.case import Case
from regkit.registrar import RegistrarBase
from regkit.transform import RigidTransform


class MIRegistrar(RegistrarBase):
    """Mattes mutual information, rigid (elastix).

    Parameters
    ----------
    fixed : {"image", "label"}
        Fixed input: the MR image or the MR prostate label.
    mask_mm : float or None
        Sample the fixed image only within the MR prostate label dilated by this many mm (None: no mask).
    resolutions, iterations, histogram_bins, spatial_samples : int
        elastix settings (per resolution for iterations and samples).
    seed : int
        The random sampler's seed (elastix's ``RandomSeed``).
    threads : int, optional
        elastix threads (default: all cores).
    log_dir : path, optional
        Where to keep the logs of failed runs.

    The defaults (one resolution, 500 iterations, a 15 mm mask) were chosen on the built-in benchmark's
    validation split: elastix's smoothing pyramid blurs the speckle into blobs whose MI optimum lies
    millimetres away from the true alignment, and without a mask the fan border and the far field dominate.
    """

    name = "mi"

    def __init__(self, fixed: str = "image", mask_mm: float | None = 15.0, resolutions: int = 1,
                 iterations: int = 500, histogram_bins: int = 32, spatial_samples: int = 2048, seed: int = 121212,
                 threads: int | None = None, log_dir: str | None = None):
        check_settings(fixed, mask_mm, resolutions=resolutions, iterations=iterations, histogram_bins=histogram_bins,
                       spatial_samples=spatial_samples, seed=seed, threads=threads)
        self.fixed = fixed
        self.mask_mm = mask_mm
        self.settings = dict(resolutions=int(resolutions), iterations=int(iterations),
                             histogram_bins=int(histogram_bins), spatial_samples=int(spatial_samples), seed=int(seed))
        self.threads = threads
        self.log_dir = log_dir
        from regkit.baselines.elastix import itk_module

        itk_module()  # pay ITK's ~11 s start-up here, once per process, not inside a timed registration

    def _register(self, case: Case, initial: RigidTransform) -> tuple[RigidTransform, dict]:
        from regkit.baselines.elastix import dilated_mask, fan_mask, rigid_parameter_map, run_elastix

        pm = rigid_parameter_map("AdvancedMattesMutualInformation", **self.settings)
        use_mask = self.mask_mm is not None and case.fixed_label is not None
        mask = dilated_mask(case.fixed_label, self.mask_mm) if use_mask else None
        total = run_elastix([case.fixed_input(self.fixed)], [case.moving], pm, initial, fixed_mask=mask,
                            moving_mask=fan_mask(case.moving), threads=self.threads, keep_log_dir=self.log_dir)
        return total, {"fixed": self.fixed, "mask_mm": self.mask_mm, **self.settings}
