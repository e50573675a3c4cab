"""MR prostate surface points in physical millimetres: from a label by marching cubes, or from a mesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regkit.errors import InputError
from regkit.image import ImageGeometry

MESH_SUFFIXES = (".stl", ".vtk", ".vtp", ".obj", ".ply", ".off")


def surface_from_label(label: sitk.Image, source: str | Path | None = None) -> np.ndarray:
    """Vertices of the label's boundary surface, by marching cubes at level 0.5, in physical mm.

    Parameters
    ----------
    label : SimpleITK.Image
        Binary (or integer, non-zero = inside) label.
    source : path-like, optional
        The label's file, for error messages.

    Returns
    -------
    ndarray, shape (N, 3)
        Physical (x, y, z) points in LPS mm.
    """
    count = int((sitk.GetArrayViewFromImage(label) > 0).sum())
    if count == 0:
        raise InputError("the label is empty (no non-zero voxel)", source, "give the prostate label of this MR")
    if count < 8:
        raise InputError(f"the label has only {count} voxels; it cannot define a surface", source)
    return label_mesh(label)[0]


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) and triangles (M, 3) of a surface mesh file (.stl binary or ASCII, .vtk, .vtp, .obj,
    .ply, .off), in the file's coordinates. Duplicated vertices (STL stores each triangle's three corners) are
    merged, and triangles that collapse are dropped."""
    import meshio

    path = Path(path)
    if not path.exists():
        raise InputError("the surface mesh file does not exist", path)
    try:
        mesh = meshio.read(str(path))
    except Exception as exc:  # meshio raises many types for damaged files
        raise InputError(
            f"cannot read the surface mesh: {exc}", path, "give an .stl, .vtk, .vtp, .obj or .ply surface"
        ) from None
    pts = np.asarray(mesh.points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
        raise InputError(f"the mesh has no usable 3-D vertices (shape {pts.shape})", path)
    if not np.all(np.isfinite(pts)):
        raise InputError("the mesh holds NaN or infinite coordinates", path)
    tri = [np.asarray(c.data) for c in mesh.cells if c.type == "triangle"]
    faces = np.concatenate(tri) if tri else np.zeros((0, 3), dtype=np.int64)
    points, inverse = np.unique(pts, axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    return points, faces


def read_mesh_points(path: str | Path) -> np.ndarray:
    """The (merged) vertices of a surface mesh file (see :func:`read_mesh`)."""
    return read_mesh(path)[0]


def write_mesh(points: np.ndarray, faces: np.ndarray, path: str | Path) -> Path:
    """Write a triangle mesh (for fixtures and exports)."""
    import meshio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meshio.write(str(path), meshio.Mesh(np.asarray(points, float), [("triangle", np.asarray(faces))]))
    return path


def label_mesh(label: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes mesh of a label: physical vertices (N, 3) and triangle faces (M, 3)."""
    from skimage.measure import marching_cubes

    a = np.pad(sitk.GetArrayViewFromImage(label) > 0, 1).astype(np.float32)  # closes the surface at borders
    verts_zyx, faces, _, _ = marching_cubes(a, level=0.5)
    return ImageGeometry.of(label).to_physical(verts_zyx[:, ::-1] - 1.0), faces


def mesh_centroid(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The centroid (mm) of the volume a closed triangle mesh encloses (signed tetrahedra from the origin; either
    winding), not the mean of its vertices, which leans towards finely meshed parts."""
    p = np.asarray(points, float)[np.asarray(faces)]
    volumes = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6.0
    if abs(volumes.sum()) < 1e-9:
        raise InputError("the mesh encloses no volume (is it closed?)")
    return (volumes[:, None] * p.sum(1) / 4.0).sum(0) / volumes.sum()


_RAY_OFFSET = (1.2345e-4, 2.7183e-4)  # rays pass just off voxel centres, so they miss mesh edges and vertices
_CANDIDATE_CHUNK = 2_000_000


def _crossing_parity(tri: np.ndarray, box: np.ndarray, axis: int) -> np.ndarray:
    """Inside mask (box-shaped, x/y/z order) by the parity of crossings of rays cast along ``axis``.

    ``tri`` holds triangle corners in continuous voxel indices relative to the box corner, shape (M, 3, 3).
    """
    u, v = [a for a in range(3) if a != axis]
    du, dv = _RAY_OFFSET
    a2, b2, c2 = tri[:, 0][:, [u, v]], tri[:, 1][:, [u, v]], tri[:, 2][:, [u, v]]
    area = (b2[:, 0] - a2[:, 0]) * (c2[:, 1] - a2[:, 1]) - (b2[:, 1] - a2[:, 1]) * (c2[:, 0] - a2[:, 0])
    keep = np.abs(area) > 1e-12  # triangles seen edge-on along the ray cannot be crossed
    tri, area = tri[keep], area[keep]
    proj = tri[:, :, [u, v]]
    lo_u = np.clip(np.ceil(proj[:, :, 0].min(1) - du), 0, box[u])
    hi_u = np.clip(np.floor(proj[:, :, 0].max(1) - du), -1, box[u] - 1)
    lo_v = np.clip(np.ceil(proj[:, :, 1].min(1) - dv), 0, box[v])
    hi_v = np.clip(np.floor(proj[:, :, 1].max(1) - dv), -1, box[v] - 1)
    nu = np.maximum(hi_u - lo_u + 1, 0).astype(np.int64)
    nv = np.maximum(hi_v - lo_v + 1, 0).astype(np.int64)
    counts = nu * nv
    toggles = np.zeros(int(box[u]) * int(box[v]) * (int(box[axis]) + 1), dtype=np.int64)
    start = 0
    cum = np.cumsum(counts)
    while start < len(tri):  # chunks of triangles bound the number of (triangle, ray) candidates in memory
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + _CANDIDATE_CHUNK, side="right")), start + 1)
        sel = slice(start, stop)
        n = counts[sel]
        if n.sum():
            t_idx = np.repeat(np.arange(start, stop), n)
            k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
            iu = lo_u[t_idx] + k // nv[t_idx]
            iv = lo_v[t_idx] + k % nv[t_idx]
            pu, pv = iu + du, iv + dv
            p = proj[t_idx]
            # edge functions of the three edges, each the signed double area opposite one corner
            w = np.empty((len(t_idx), 3))
            for i, (j, l) in enumerate(((1, 2), (2, 0), (0, 1))):
                w[:, i] = (p[:, j, 0] - pu) * (p[:, l, 1] - pv) - (p[:, j, 1] - pv) * (p[:, l, 0] - pu)
            w /= area[t_idx, None]
            hit = np.all(w > 0, axis=1)
            depth = np.einsum("ni,ni->n", w[hit], tri[t_idx[hit], :, axis])
            slot = np.clip(np.ceil(depth), 0, box[axis]).astype(np.int64)
            flat = (iu[hit].astype(np.int64) * int(box[v]) + iv[hit].astype(np.int64)) * (int(box[axis]) + 1) + slot
            toggles += np.bincount(flat, minlength=toggles.size)
        start = stop
    parity = np.cumsum(toggles.reshape(int(box[u]), int(box[v]), int(box[axis]) + 1), axis=2)[..., :-1] % 2 == 1
    # axes of parity are (u, v, axis); put them back in x, y, z order
    return np.moveaxis(parity, (0, 1, 2), (u, v, axis))


def label_from_mesh(points: np.ndarray, faces: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Voxelise a closed triangle surface onto ``reference``'s grid: 1 inside, 0 outside (uint8).

    A voxel centre is inside when rays cast from it along the grid's three index axes each cross the surface
    an odd number of times, by a majority of the three (which tolerates small holes in the mesh). The rays pass
    a ten-thousandth of a voxel off the centres so that they miss mesh edges and vertices lying exactly on grid
    lines (as marching-cubes meshes do). Only the voxels of the mesh's bounding box are tested.

    Parameters
    ----------
    points : ndarray, shape (N, 3)
        Vertices, physical mm in the reference image's frame.
    faces : ndarray, shape (M, 3)
        Triangles as vertex indices.
    reference : SimpleITK.Image
        The grid (size, spacing, origin, direction) of the label.
    """
    pts = np.asarray(points, dtype=float)
    tris = np.asarray(faces, dtype=np.int64)
    if pts.ndim != 2 or pts.shape[1] != 3 or tris.ndim != 2 or tris.shape[1] != 3:
        raise InputError(f"a mesh needs (N, 3) points and (M, 3) faces, got {pts.shape} and {tris.shape}")
    if len(tris) and (tris.min() < 0 or tris.max() >= len(pts)):
        raise InputError("the mesh's faces index points that do not exist")
    geo = ImageGeometry.of(reference)
    size = np.array(geo.size)
    out = np.zeros(tuple(size[::-1]), dtype=np.uint8)
    if len(tris):
        tri = geo.to_index(pts)[tris]  # (M, 3 corners, 3 = x, y, z)
        lo = np.clip(np.floor(tri.min(axis=(0, 1))).astype(int), 0, size - 1)
        hi = np.clip(np.ceil(tri.max(axis=(0, 1))).astype(int), 0, size - 1)
        if np.all(hi >= lo) and np.all(tri.max(axis=(0, 1)) >= 0) and np.all(tri.min(axis=(0, 1)) <= size - 1):
            box = hi - lo + 1
            local = tri - lo
            votes = sum(_crossing_parity(local, box, axis).astype(np.uint8) for axis in range(3))
            inside = votes >= 2  # x, y, z order
            out[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = np.transpose(inside, (2, 1, 0))
    label = sitk.GetImageFromArray(out)
    label.CopyInformation(reference)
    return label


def triangle_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (M, 3) of a mesh's triangles (right-hand rule on the vertex order)."""
    p = np.asarray(points, float)[np.asarray(faces)]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def vertex_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) at a mesh's vertices: the area-weighted mean of the normals of their triangles."""
    p = np.asarray(points, float)
    f = np.asarray(faces)
    corners = p[f]
    n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length = twice the area
    out = np.zeros_like(p)
    for k in range(3):
        np.add.at(out, f[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def mesh_volume(points: np.ndarray, faces: np.ndarray) -> float:
    """The volume (mm³) a closed triangle mesh encloses (divergence theorem; orientation-independent)."""
    p = np.asarray(points, float)[np.asarray(faces)]
    return float(abs(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum()) / 6.0)


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The closest point to ``p`` on triangles ``(a, b, c)`` (Ericson, *Real-Time Collision Detection* 5.1.5),
    vectorised over the leading axes."""
    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def ratio(n, d):
        return (n / np.where(np.abs(d) > 1e-30, d, 1.0))[..., None]

    denom = va + vb + vc
    conditions = [(d1 <= 0) & (d2 <= 0), (d3 >= 0) & (d4 <= d3), (vc <= 0) & (d1 >= 0) & (d3 <= 0),
                  (d6 >= 0) & (d5 <= d6), (vb <= 0) & (d2 >= 0) & (d6 <= 0),
                  (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)]
    choices = [a, b, a + ratio(d1, d1 - d3) * ab, c, a + ratio(d2, d2 - d6) * ac,
               b + ratio(d4 - d3, (d4 - d3) + (d5 - d6)) * (c - b)]
    face = a + ratio(vb, denom) * ab + ratio(vc, denom) * ac
    out = face
    for cond, choice in zip(conditions[::-1], choices[::-1], strict=True):  # the first true condition wins
        out = np.where(cond[..., None], choice, out)
    return out


class MeshDistance:
    """Closest points on a surface given as a triangle mesh (exact point-to-triangle distance) or as points
    only (nearest point: biased upwards by the points' spacing).

    Parameters
    ----------
    points : ndarray (N, 3)
        Vertices, mm.
    faces : ndarray (M, 3), optional
        Triangles; without them the surface is its points.
    candidates : int
        Triangles tested per query: those whose centres are nearest (enough on a mesh of even triangles).
    """

    def __init__(self, points: np.ndarray, faces: np.ndarray | None = None, candidates: int = 8):
        from scipy.spatial import cKDTree

        self.points = np.asarray(points, float)
        self.faces = None if faces is None or len(faces) == 0 else np.asarray(faces, np.int64)
        self._vertices = cKDTree(self.points)
        self.vertex_normals = None if self.faces is None else vertex_normals(self.points, self.faces)
        self._tree = None
        self.candidates = candidates

    def nearest_vertex(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The nearest vertices (N, 3), their distances (N,) and their normals (N, 3; None without faces): fast,
        and exact to well under the vertex spacing for point-to-plane fits on a fine mesh."""
        d, i = self._vertices.query(np.asarray(query, float).reshape(-1, 3))
        return self.points[i], d, None if self.vertex_normals is None else self.vertex_normals[i]

    def closest(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Closest surface points (N, 3), their distances (N,), and the normals there (N, 3; None without
        faces)."""
        from scipy.spatial import cKDTree

        q = np.asarray(query, float).reshape(-1, 3)
        if self.faces is None:
            return self.nearest_vertex(q)
        if self._tree is None:
            self._corners = self.points[self.faces]
            self._tree = cKDTree(self._corners.mean(axis=1))
            self.normals = triangle_normals(self.points, self.faces)
        k = min(self.candidates, len(self.faces))
        _, idx = self._tree.query(q, k=k)
        idx = idx.reshape(len(q), k)
        tri = self._corners[idx]  # (N, k, 3 corners, 3)
        pts = _closest_on_triangles(q[:, None, :], tri[:, :, 0], tri[:, :, 1], tri[:, :, 2])
        dist = np.linalg.norm(pts - q[:, None, :], axis=-1)
        best = np.argmin(dist, axis=1)
        rows = np.arange(len(q))
        return pts[rows, best], dist[rows, best], self.normals[idx[rows, best]]
