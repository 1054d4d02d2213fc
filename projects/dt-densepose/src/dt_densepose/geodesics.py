"""``MeshGeodesics``: geodesic distances between chart points, through a mesh of charted vertices.

A point (part I, U, V) is snapped to the nearest vertex (in U, V) of its part; the distance between
two points is the geodesic distance between their vertices, from a dense ``[V, V]`` matrix or, for
the 27554-vertex SMPL mesh, a condensed one (upper triangle, row-major) through a vertex -> row
index map. ``normalisation[I]`` is the per-part distance scale of the GPS score
``exp(-d^2 / (2 k^2))``: by the metric's definition (DensePose-COCO evaluation since 2019), the mean
geodesic distance between points of the part.

:func:`human_geodesics` reads the SMPL files detectron2's evaluator uses from the dt cache
(``SMPL_subdiv.mat``, ``SMPL_SUBDIV_TRANSFORM.mat``, ``Pdist_matrix.pkl``); :func:`flat_chart_geodesics`
builds the flat charts of the shapes set (distance = UV distance within a part, infinite across;
scale = the mean UV distance between two points of a chart).
"""

from __future__ import annotations

import attrs
import numpy as np

from .cache import cache_file

__all__ = [
    "HUMAN_NORMALISATION",
    "SMPL_GEODESIC_FILES",
    "MeshGeodesics",
    "flat_chart_geodesics",
    "human_geodesics",
]

SMPL_GEODESIC_FILES = ("SMPL_subdiv.mat", "SMPL_SUBDIV_TRANSFORM.mat", "Pdist_matrix.pkl")

# detectron2's DensePose evaluator: mean geodesic distance per coarse body region, and the region of
# each of the 24 fine parts; the GPS scale of part p is MEAN[COARSE[p]].
_HUMAN_MEAN_DISTANCES = (0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150)
_HUMAN_COARSE_PARTS = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8)
HUMAN_NORMALISATION = tuple(_HUMAN_MEAN_DISTANCES[c] for c in _HUMAN_COARSE_PARTS)


@attrs.frozen(eq=False)
class MeshGeodesics:
    """Vertices ``vertex_part`` ``int[V]`` (1..P) with chart coordinates ``vertex_uv`` ``float[V, 2]``;
    ``distances``: dense ``[V, V]``, or condensed ``[n (n - 1) / 2]`` with ``vertex_rows`` ``int[V]``
    (each vertex's 0-based row among n); ``normalisation``: ``float[P + 1]`` GPS scale by part."""

    vertex_part: np.ndarray
    vertex_uv: np.ndarray
    distances: np.ndarray
    normalisation: np.ndarray
    vertex_rows: np.ndarray | None = None

    def closest_vertices(self, i: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``int64[K]``: the nearest vertex (in U, V) of part ``i`` of each point; -1 where ``i`` is 0
        or the part has no vertex."""
        i = np.asarray(i).astype(np.int64)
        points = np.stack([np.asarray(u, np.float64), np.asarray(v, np.float64)], axis=1)
        out = np.full(len(i), -1, np.int64)
        for part in np.unique(i[i > 0]):
            vertices = np.nonzero(self.vertex_part == part)[0]
            if len(vertices) == 0:
                continue
            mine = i == part
            d2 = ((points[mine, None, :] - self.vertex_uv[None, vertices, :]) ** 2).sum(-1)
            out[mine] = vertices[d2.argmin(axis=1)]
        return out

    def vertex_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``float64[K]`` geodesic distances between vertices ``a`` and ``b``; inf where either is -1."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        out = np.full(len(a), np.inf)
        ok = (a >= 0) & (b >= 0)
        if self.vertex_rows is None:
            out[ok] = self.distances[a[ok], b[ok]]
            return out
        n = int(round((1 + np.sqrt(1 + 8 * len(self.distances))) / 2))
        r, s = self.vertex_rows[a[ok]], self.vertex_rows[b[ok]]
        lo, hi = np.minimum(r, s), np.maximum(r, s)
        same = lo == hi
        index = n * lo - lo * (lo + 1) // 2 + hi - lo - 1
        values = np.zeros(len(lo))
        values[~same] = self.distances[index[~same]]
        out[ok] = values
        return out

    def point_distances(self, gt_iuv: tuple, pred_iuv: tuple) -> np.ndarray:
        """Geodesic distances between ground-truth and predicted points ``(I, U, V)`` (arrays of K)."""
        return self.vertex_distances(self.closest_vertices(*gt_iuv), self.closest_vertices(*pred_iuv))


def flat_chart_geodesics(num_parts: int, grid: int = 17, normalisation: float | None = None) -> MeshGeodesics:
    """Flat square charts: per part a ``grid x grid`` lattice over [0, 1]^2, distances = UV distances
    within a part, infinite across parts. The GPS scale of every part is ``normalisation``, by
    default the metric's definition: the mean distance between two vertices of the part (0.555 for
    ``grid=17``: a point off by 0.1 in U and in V scores 0.97, one off by 0.5 in both 0.44)."""
    steps = np.linspace(0.0, 1.0, grid)
    uu, vv = np.meshgrid(steps, steps, indexing="xy")
    lattice = np.stack([uu.ravel(), vv.ravel()], axis=1)
    uv = np.concatenate([lattice] * num_parts)
    part = np.repeat(np.arange(1, num_parts + 1), len(lattice))
    distances = np.sqrt(((uv[:, None] - uv[None]) ** 2).sum(-1))
    if normalisation is None:  # over the pairs of distinct vertices of one chart (all are alike)
        one_chart = distances[: len(lattice), : len(lattice)]
        normalisation = float(one_chart[np.triu_indices(len(lattice), 1)].mean())
    distances[part[:, None] != part[None]] = np.inf
    return MeshGeodesics(part, uv, distances, np.array([0.0] + [normalisation] * num_parts))


def human_geodesics() -> MeshGeodesics:
    """The SMPL mesh geodesics of DensePose-COCO evaluation, from ``$DT_CACHE/densepose``."""
    from scipy.io import loadmat

    from dt_models.safe_pickle import safe_load_pickle

    subdiv = loadmat(str(cache_file("SMPL_subdiv.mat")))
    rows = loadmat(str(cache_file("SMPL_SUBDIV_TRANSFORM.mat")))["index"].squeeze().astype(np.int64) - 1
    pdist = cache_file("Pdist_matrix.pkl")
    arrays = safe_load_pickle(pdist.read_bytes())
    if not isinstance(arrays, dict) or "Pdist_matrix" not in arrays:
        raise ValueError(f"{pdist}: expected a dict with 'Pdist_matrix'")
    uv = np.stack([subdiv["U_subdiv"].squeeze(), subdiv["V_subdiv"].squeeze()], axis=1).astype(np.float64)
    return MeshGeodesics(
        vertex_part=subdiv["Part_ID_subdiv"].squeeze().astype(np.int64),
        vertex_uv=uv,
        distances=np.asarray(arrays["Pdist_matrix"], np.float64).reshape(-1),
        normalisation=np.asarray(HUMAN_NORMALISATION),
        vertex_rows=rows,
    )
