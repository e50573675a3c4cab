"""Rigid transforms and the conventions every part of regkit follows.

Conventions (stated once, here, and tested in ``tests/test_transform.py``)
-------------------------------------------------------------------------
* Points are physical coordinates in millimetres, in the LPS world frame that ITK and SimpleITK use.
* A registration's transform ``T`` maps **fixed (MR) points to moving (TRUS) points**: the moving image
  is resampled into the fixed space by reading it at ``T(p)`` for every fixed point ``p``. This is the
  ITK/elastix convention; the ground truth of a case follows it too.
* A transform is a 4×4 homogeneous matrix ``M`` acting on column vectors, ``T(p) = R p + t``.
  ``(A @ B)(p) = A(B(p))``: the right-hand transform acts first.
* Six parameters ``[tx, ty, tz, ax, ay, az]`` are millimetres and degrees. The rotation is
  ``R = Rz(az) · Ry(ay) · Rx(ax)`` (rotate about x first, then y, then z, about fixed axes), applied about a
  centre ``c``: ``T(p) = R (p − c) + c + t``. This is the paper's order and ITK's ``Euler3DTransform`` with
  ``ComputeZYX = true``. (elastix's ``EulerTransform`` defaults to ``Rz · Rx · Ry``; see
  :mod:`regkit.baselines.elastix` for that conversion.)

A :class:`RigidTransform` may hold a batch: ``matrix`` has shape ``(*batch, 4, 4)`` and every operation
broadcasts over the batch, so one object can carry the thousands of starts of a test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from regkit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

ORTHONORMAL_TOLERANCE = 1e-5


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation matrices ``Rz(az) · Ry(ay) · Rx(ax)`` from angles in degrees.

    Parameters
    ----------
    angles_deg : array_like, shape (..., 3)
        ``[ax, ay, az]`` in degrees.

    Returns
    -------
    ndarray, shape (..., 3, 3)
    """
    a = np.deg2rad(np.asarray(angles_deg, dtype=float))
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    r = np.empty(a.shape[:-1] + (3, 3))
    r[..., 0, 0] = cz * cy
    r[..., 0, 1] = cz * sy * sx - sz * cx
    r[..., 0, 2] = cz * sy * cx + sz * sx
    r[..., 1, 0] = sz * cy
    r[..., 1, 1] = sz * sy * sx + cz * cx
    r[..., 1, 2] = sz * sy * cx - cz * sx
    r[..., 2, 0] = -sy
    r[..., 2, 1] = cy * sx
    r[..., 2, 2] = cy * cx
    return r


def rotation_angles(rotation: np.ndarray) -> np.ndarray:
    """Angles ``[ax, ay, az]`` in degrees of ``R = Rz · Ry · Rx``; inverse of :func:`rotation_matrix`.

    ``ay`` is returned in [−90°, 90°]. At gimbal lock (``|ay| = 90°``) ``az`` is set to 0.
    """
    r = np.asarray(rotation, dtype=float)
    cy = np.hypot(r[..., 0, 0], r[..., 1, 0])
    ay = np.arctan2(-r[..., 2, 0], cy)
    ax = np.arctan2(r[..., 2, 1], r[..., 2, 2])
    az = np.arctan2(r[..., 1, 0], r[..., 0, 0])
    locked = cy < 1e-9
    if np.any(locked):
        up = r[..., 2, 0] < 0  # ay = +90°: R01 = sin(ax - az), R02 = cos(ax - az)
        ax_up = np.arctan2(r[..., 0, 1], r[..., 0, 2])
        ax_down = np.arctan2(-r[..., 0, 1], -r[..., 0, 2])
        ax = np.where(locked, np.where(up, ax_up, ax_down), ax)
        az = np.where(locked, 0.0, az)
    return np.rad2deg(np.stack([ax, ay, az], axis=-1))


def _as_numbers(value, what: str, shape: str, source: str | None = None) -> np.ndarray:
    """``value`` as a float array, or an :class:`InputError` naming ``what`` when it is not numbers."""
    if isinstance(value, str | bytes | dict | set) or value is None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InputError(f"{what} must be an array of numbers of shape {shape}, got {type(value).__name__} {shown}",
                         source, f"give a numpy array of shape {shape} (e.g. numpy.eye(4) for a matrix)")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be an array of numbers of shape {shape}: {exc}", source,
                         f"give a numpy array of shape {shape}") from None


def _check_rigid(matrix: np.ndarray, tolerance: float, source: str | None) -> None:
    if matrix.shape[-2:] != (4, 4):
        raise InputError(f"a rigid transform needs a 4×4 matrix, got shape {matrix.shape}", source)
    if not np.all(np.isfinite(matrix)):
        raise InputError("the transform matrix holds NaN or infinite values", source)
    bottom = matrix[..., 3, :]
    if not np.allclose(bottom, [0.0, 0.0, 0.0, 1.0], atol=tolerance):
        raise InputError(
            f"the last row of a homogeneous transform must be [0 0 0 1], got {bottom.reshape(-1, 4)[0]}",
            source,
        )
    r = matrix[..., :3, :3]
    det = np.linalg.det(r)
    if np.any(np.abs(det) < 1e-12):
        raise InputError("the transform is singular (its 3×3 part has determinant 0)", source)
    gram = np.swapaxes(r, -1, -2) @ r
    err = np.abs(gram - np.eye(3)).max()
    if err > tolerance:
        raise InputError(
            f"the transform is not rigid: its 3×3 part is not orthonormal (RᵀR differs from I by {err:.3g}); "
            "it holds scaling or shear",
            source,
            "give a rigid (rotation + translation) transform, or orthonormalise it with "
            "RigidTransform.from_matrix(m, orthonormalize=True)",
        )
    if np.any(det < 0):
        raise InputError(
            "the transform is a reflection (determinant −1), not a rotation",
            source,
            "check the handedness of the matrix (a flipped axis, or RAS and LPS mixed up)",
        )


def _orthonormalize(matrix: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrix[..., :3, :3])
    out = matrix.copy()
    out[..., :3, :3] = u @ vt
    out[..., 3, :] = [0.0, 0.0, 0.0, 1.0]
    return out


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """A rigid transform (or a batch of them) as 4×4 homogeneous matrices in millimetres.

    See the module docstring for the conventions. Construct with :meth:`from_matrix`,
    :meth:`from_params`, :meth:`identity`, :meth:`from_sitk` or the readers in :mod:`regkit.transform_io`.

    Parameters
    ----------
    matrix : ndarray, shape (*batch, 4, 4)
        Homogeneous matrices. The constructor checks that they are rigid.
    """

    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = _as_numbers(self.matrix, "a transform matrix", "(4, 4)").copy()
        _check_rigid(m, ORTHONORMAL_TOLERANCE, None)
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    # ----------------------------------------------------------------- construction
    @classmethod
    def identity(cls, batch: tuple[int, ...] = ()) -> RigidTransform:
        """The identity (or a batch of identities of shape ``batch``)."""
        return cls(np.broadcast_to(np.eye(4), tuple(batch) + (4, 4)))

    @classmethod
    def from_matrix(
        cls,
        matrix: np.ndarray,
        *,
        orthonormalize: bool = False,
        tolerance: float = ORTHONORMAL_TOLERANCE,
        source: str | None = None,
    ) -> RigidTransform:
        """A transform from 4×4 (or 3×4) matrices.

        Parameters
        ----------
        matrix : array_like, shape (*batch, 4, 4) or (*batch, 3, 4)
        orthonormalize : bool
            Project the 3×3 part onto the nearest rotation (SVD) after the check, for matrices stored with
            few digits (the check still rejects deviations above ``tolerance``).
        tolerance : float
            Largest accepted ``|RᵀR − I|`` entry.
        source : str, optional
            Where the matrix came from, for error messages.
        """
        m = _as_numbers(matrix, "a transform matrix", "(4, 4) or (3, 4)", source)
        if not isinstance(tolerance, int | float) or isinstance(tolerance, bool) or not tolerance >= 0:
            raise InputError(f"tolerance must be a number ≥ 0, got {tolerance!r}", source, "e.g. tolerance=1e-5")
        if m.shape[-2:] == (3, 4):
            bottom = np.broadcast_to([0.0, 0.0, 0.0, 1.0], m.shape[:-2] + (1, 4))
            m = np.concatenate([m, bottom], axis=-2)
        if m.shape[-2:] != (4, 4):
            raise InputError(f"a transform matrix must be 4×4 (or 3×4, or a batch of these), got shape {m.shape}",
                             source, "give a numpy array of shape (4, 4)")
        _check_rigid(m, tolerance, source)
        if orthonormalize:
            m = _orthonormalize(m)
        obj = cls.__new__(cls)
        m = m.copy()
        m.setflags(write=False)
        object.__setattr__(obj, "matrix", m)
        return obj

    @classmethod
    def from_rotation_translation(cls, rotation: np.ndarray, translation: np.ndarray) -> RigidTransform:
        """``T(p) = R p + t``."""
        r = _as_numbers(rotation, "a rotation", "(3, 3)")
        t = _as_numbers(translation, "a translation", "(3,)")
        if r.shape[-2:] != (3, 3) or t.shape[-1:] != (3,):
            raise InputError(f"a rotation (3, 3) and a translation (3,) are needed, got shapes {r.shape} and {t.shape}")
        try:
            batch = np.broadcast_shapes(r.shape[:-2], t.shape[:-1])
        except ValueError:
            raise InputError(f"the batches of rotations {r.shape} and translations {t.shape} do not match") from None
        m = np.zeros(batch + (4, 4))
        m[..., :3, :3] = r
        m[..., :3, 3] = t
        m[..., 3, 3] = 1.0
        return cls.from_matrix(m)

    @classmethod
    def from_params(cls, params: np.ndarray, center: np.ndarray = (0.0, 0.0, 0.0)) -> RigidTransform:
        """A transform from the paper's six parameters about ``center``.

        Parameters
        ----------
        params : array_like, shape (*batch, 6)
            ``[tx, ty, tz, ax, ay, az]``, millimetres and degrees, ``R = Rz·Ry·Rx``.
        center : array_like, shape (3,) or (*batch, 3)
            Centre of rotation in millimetres: ``T(p) = R (p − c) + c + t``.
        """
        p = _as_numbers(params, "the parameters", "(6,)")
        if p.ndim == 0 or p.shape[-1] != 6:
            raise InputError(f"six parameters [tx, ty, tz, ax, ay, az] are needed, got shape {p.shape}")
        c = _as_numbers(center, "the centre", "(3,)")
        if c.ndim == 0 or c.shape[-1] != 3:
            raise InputError(f"the centre of rotation has 3 coordinates, got shape {c.shape}")
        r = rotation_matrix(p[..., 3:])
        t = p[..., :3] + c - np.einsum("...ij,...j->...i", r, c)
        return cls.from_rotation_translation(r, t)

    # ----------------------------------------------------------------- properties
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.matrix.shape[:-2]

    @property
    def rotation(self) -> np.ndarray:
        """The 3×3 rotation part, shape ``(*batch, 3, 3)``."""
        return self.matrix[..., :3, :3]

    @property
    def translation(self) -> np.ndarray:
        """The translation part ``t`` of ``T(p) = R p + t``, shape ``(*batch, 3)``."""
        return self.matrix[..., :3, 3]

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("a single RigidTransform has no length")
        return self.batch_shape[0]

    def __getitem__(self, index) -> RigidTransform:
        if not self.batch_shape:
            raise TypeError("a single RigidTransform cannot be indexed")
        return RigidTransform.from_matrix(self.matrix[index])

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        if self.batch_shape:
            return f"RigidTransform(batch={self.batch_shape})"
        p = self.to_params()
        return (
            "RigidTransform(t=[{:.3f}, {:.3f}, {:.3f}] mm, angles=[{:.3f}, {:.3f}, {:.3f}] deg)".format(*p)
        )

    # ----------------------------------------------------------------- algebra
    def __matmul__(self, other: RigidTransform) -> RigidTransform:
        """``(self @ other)(p) = self(other(p))``."""
        if not isinstance(other, RigidTransform):
            return NotImplemented
        return RigidTransform.from_matrix(self.matrix @ other.matrix)

    def compose(self, other: RigidTransform) -> RigidTransform:
        """``self ∘ other``: apply ``other`` first, then ``self``."""
        return self @ other

    def inverse(self) -> RigidTransform:
        """The inverse transform (exact for rigid matrices: ``Rᵀ``, ``−Rᵀ t``)."""
        rt = np.swapaxes(self.rotation, -1, -2)
        m = np.zeros(self.matrix.shape)
        m[..., :3, :3] = rt
        m[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, self.translation)
        m[..., 3, 3] = 1.0
        return RigidTransform.from_matrix(m)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map points.

        Parameters
        ----------
        points : array_like, shape (N, 3) or (3,)

        Returns
        -------
        ndarray, shape (*batch, N, 3) (or (*batch, 3) for a single point)
        """
        p = _as_numbers(points, "points", "(N, 3)")
        if p.ndim == 0 or p.shape[-1] != 3:
            raise InputError(f"points must have 3 coordinates in the last axis, got shape {p.shape}")
        r, t = self.rotation, self.translation
        return np.einsum("...ij,nj->...ni", r, p.reshape(-1, 3)).reshape(
            self.batch_shape + p.shape
        ) + t.reshape(self.batch_shape + (1,) * (p.ndim - 1) + (3,))

    __call__ = apply

    def allclose(self, other: RigidTransform, atol: float = 1e-9) -> bool:
        """True when the matrices agree within ``atol``."""
        return bool(np.allclose(self.matrix, other.matrix, atol=atol, rtol=0.0))

    # ----------------------------------------------------------------- parameters
    def to_params(self, center: np.ndarray = (0.0, 0.0, 0.0)) -> np.ndarray:
        """Six parameters ``[tx, ty, tz, ax, ay, az]`` about ``center``; inverse of :meth:`from_params`."""
        c = np.asarray(center, dtype=float)
        r = self.rotation
        t = self.translation - c + np.einsum("...ij,...j->...i", r, c)
        return np.concatenate([t, rotation_angles(r)], axis=-1)

    def rotation_angle(self) -> np.ndarray:
        """The rotation angle in degrees (axis-angle magnitude), shape ``batch``."""
        tr = np.trace(self.rotation, axis1=-2, axis2=-1)
        return np.rad2deg(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))

    # ----------------------------------------------------------------- ITK
    def to_sitk(self, center: np.ndarray = (0.0, 0.0, 0.0)) -> sitk.Euler3DTransform:
        """A SimpleITK ``Euler3DTransform`` (``ComputeZYX`` on, so ``R = Rz·Ry·Rx``) about ``center``."""
        import SimpleITK as sitk

        if self.batch_shape:
            raise InputError("to_sitk converts one transform; index the batch first")
        p = self.to_params(center)
        e = sitk.Euler3DTransform()
        e.SetComputeZYX(True)
        e.SetCenter([float(v) for v in center])
        e.SetRotation(*[float(v) for v in np.deg2rad(p[3:])])
        e.SetTranslation([float(v) for v in p[:3]])
        return e

    @classmethod
    def from_sitk(cls, transform: sitk.Transform, source: str | None = None) -> RigidTransform:
        """A transform from any rigid SimpleITK transform.

        Accepts ``Euler3DTransform``, ``VersorRigid3DTransform``, ``AffineTransform``,
        ``TranslationTransform``, other matrix-offset transforms, and ``CompositeTransform`` stacks of these
        (ITK applies the last-added transform first).
        """
        import SimpleITK as sitk

        if not isinstance(transform, sitk.Transform):
            raise InputError(f"from_sitk takes a SimpleITK transform, got {type(transform).__name__}", source,
                             "read it with SimpleITK.ReadTransform, or use regkit.read_transform for a file")
        if transform.GetDimension() != 3:
            raise InputError(f"a 3-D transform is needed, got a {transform.GetDimension()}-D one", source)
        if transform.GetName() == "CompositeTransform":
            comp = sitk.CompositeTransform(transform)
            total = cls.identity()
            for i in range(comp.GetNumberOfTransforms()):
                total = total @ cls.from_sitk(comp.GetNthTransform(i), source)
            return total
        if transform.GetName() == "TranslationTransform":
            m = np.eye(4)
            m[:3, 3] = sitk.TranslationTransform(transform).GetOffset()
            return cls.from_matrix(m, source=source)
        if not transform.IsLinear():
            raise InputError(
                f"a {transform.GetName()} is not linear, so it cannot be a rigid transform",
                source,
                "give a rigid transform (Euler3D, VersorRigid3D, or an affine with a rotation matrix)",
            )
        # Every linear ITK transform is T(p) = A (p − c) + c + t; recover A, c and t through its points.
        origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
        a = np.stack(
            [np.array(transform.TransformPoint(tuple(e))) - origin for e in np.eye(3)], axis=1
        )
        m = np.eye(4)
        m[:3, :3] = a
        m[:3, 3] = origin
        return cls.from_matrix(m, source=source)


def fit_rigid(source_points: np.ndarray, target_points: np.ndarray) -> RigidTransform:
    """The least-squares rigid transform mapping ``source_points`` onto ``target_points`` (Kabsch).

    Parameters
    ----------
    source_points, target_points : ndarray, shape (N, 3)
        Corresponding points, N ≥ 3 and not collinear.
    """
    a = _as_numbers(source_points, "source_points", "(N, 3)")
    b = _as_numbers(target_points, "target_points", "(N, 3)")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InputError("fit_rigid's points hold NaN or infinite coordinates")
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or len(a) < 3:
        raise InputError(f"fit_rigid's source_points and target_points must be two (N, 3) arrays with N ≥ 3, got "
                         f"shapes {a.shape} and {b.shape}")
    ca, cb = a.mean(0), b.mean(0)
    h = (a - ca).T @ (b - cb)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return RigidTransform.from_rotation_translation(r, cb - r @ ca)
