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


def read_mesh_points(path: str | Path) -> np.ndarray:
    """Vertices of a surface mesh file (.stl, .vtk, .vtp, .obj, .ply, .off), in the file's coordinates.

    Duplicated vertices (STL stores each triangle's three corners) are merged.
    """
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
    return np.unique(pts, axis=0)


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
