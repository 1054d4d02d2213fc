"""``ChartSymmetry``: what a horizontal flip does to chart annotations (part labels and U, V).

A flip swaps left and right body parts (``point_label_symmetries`` for the fine parts ``I``,
``mask_label_symmetries`` for the coarse parts of ``dp_masks``) and moves a point's (U, V) on its
part to the mirrored location, read from per-part lookup tables ``u_transforms``/``v_transforms``
``[P, G, G]`` indexed ``[part - 1, v_index, u_index]`` (nearest grid point, ``index = round(t (G - 1))``).

For the human body the label tables are DensePose-COCO's and the UV tables come from
``UV_symmetry_transforms.mat`` (``U_transforms``, ``V_transforms``: 24 cells of 256 x 256), read from
the dt cache (:func:`human_chart_symmetry`).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch

from .cache import cache_file

__all__ = [
    "HUMAN_MASK_LABEL_SYMMETRIES",
    "HUMAN_POINT_LABEL_SYMMETRIES",
    "UV_SYMMETRY_FILE",
    "ChartSymmetry",
    "human_chart_symmetry",
    "mirror_chart_symmetry",
]

UV_SYMMETRY_FILE = "UV_symmetry_transforms.mat"

# Label after a flip, by label (0: background). DensePose-COCO's 24 fine parts and 14 coarse parts:
# left/right pairs swap, torso, head and the remaining unpaired parts map to themselves.
HUMAN_POINT_LABEL_SYMMETRIES = (
    0,
    1,
    2,
    4,
    3,
    6,
    5,
    8,
    7,
    10,
    9,
    12,
    11,
    14,
    13,
    16,
    15,
    18,
    17,
    20,
    19,
    22,
    21,
    24,
    23,
)
HUMAN_MASK_LABEL_SYMMETRIES = (0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14)


def _check_permutation(table: Sequence[int], what: str) -> None:
    if sorted(table) != list(range(len(table))) or table[0] != 0:
        raise ValueError(f"{what} must be a permutation of 0..{len(table) - 1} keeping 0, got {list(table)}")


@attrs.frozen
class ChartSymmetry:
    """Flip symmetries of a chart model with ``P = len(point_label_symmetries) - 1`` parts.

    Args:
        point_label_symmetries: fine part label after a flip, by label (``[P + 1]``, 0 stays 0).
        mask_label_symmetries: coarse part label after a flip, by label (``[M + 1]``).
        u_transforms, v_transforms: ``float32[P, G, G]``, mirrored U and V by (part - 1, v, u) grid index.
    """

    point_label_symmetries: tuple[int, ...]
    mask_label_symmetries: tuple[int, ...]
    u_transforms: np.ndarray
    v_transforms: np.ndarray

    def __attrs_post_init__(self) -> None:
        _check_permutation(self.point_label_symmetries, "point_label_symmetries")
        _check_permutation(self.mask_label_symmetries, "mask_label_symmetries")
        parts = len(self.point_label_symmetries) - 1
        for name in ("u_transforms", "v_transforms"):
            table = getattr(self, name)
            if table.ndim != 3 or table.shape[0] != parts or table.shape[1] != table.shape[2]:
                raise ValueError(f"{name} must be [{parts}, G, G], got {list(table.shape)}")

    @property
    def num_parts(self) -> int:
        return len(self.point_label_symmetries) - 1

    @property
    def num_mask_parts(self) -> int:
        return len(self.mask_label_symmetries) - 1

    def flip_points(
        self, i: torch.Tensor, u: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Part labels ``int64[N]`` (1..P) and U, V ``float32[N]`` of flipped points; the UV table of a
        point's part before the flip is used, as detectron2 does."""
        grid = self.u_transforms.shape[1] - 1
        part = i.long() - 1
        u_index = (u * grid).round().long().clamp(0, grid)
        v_index = (v * grid).round().long().clamp(0, grid)
        u_table = torch.from_numpy(self.u_transforms)
        v_table = torch.from_numpy(self.v_transforms)
        new_u = u_table[part, v_index, u_index].to(u.dtype)
        new_v = v_table[part, v_index, u_index].to(v.dtype)
        new_i = torch.as_tensor(self.point_label_symmetries, dtype=torch.int64)[i.long()]
        return new_i, new_u, new_v

    def flip_mask_labels(self, segm: torch.Tensor) -> torch.Tensor:
        """Coarse part labels of a label map after a flip (the map's columns are not reversed here)."""
        return torch.as_tensor(self.mask_label_symmetries, dtype=segm.dtype)[segm.long()]


def human_chart_symmetry() -> ChartSymmetry:
    """DensePose-COCO's symmetries; the UV tables are read from
    ``$DT_CACHE/densepose/UV_symmetry_transforms.mat``."""
    from scipy.io import loadmat

    path = cache_file(UV_SYMMETRY_FILE)
    try:
        data = loadmat(str(path))
        u_cells, v_cells = data["U_transforms"], data["V_transforms"]
        u = np.stack([np.asarray(u_cells[0, k], dtype=np.float32) for k in range(u_cells.shape[1])])
        v = np.stack([np.asarray(v_cells[0, k], dtype=np.float32) for k in range(v_cells.shape[1])])
    except (KeyError, IndexError, ValueError, OSError) as err:
        raise ValueError(
            f"{path}: expected U_transforms and V_transforms cells of [256, 256] arrays ({err})"
        ) from None
    return ChartSymmetry(HUMAN_POINT_LABEL_SYMMETRIES, HUMAN_MASK_LABEL_SYMMETRIES, u, v)


def mirror_chart_symmetry(num_parts: int, num_mask_parts: int, grid: int = 256) -> ChartSymmetry:
    """Symmetries of parts that are their own mirror image across a vertical axis in U: a flip keeps
    every label and maps (U, V) to (1 - U, V) (the synthetic shapes set's charts)."""
    steps = np.linspace(0.0, 1.0, grid, dtype=np.float32)
    u = np.broadcast_to(1.0 - steps[None, None, :], (num_parts, grid, grid)).copy()
    v = np.broadcast_to(steps[None, :, None], (num_parts, grid, grid)).copy()
    return ChartSymmetry(tuple(range(num_parts + 1)), tuple(range(num_mask_parts + 1)), u, v)
