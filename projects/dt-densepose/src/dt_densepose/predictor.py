"""The chart-based DensePose predictor and its output.

``DensePoseChartPredictor`` maps head features ``Tensor[R, D, S, S]`` through 4x4 stride-2 transposed
convs and a bilinear 2x upsampling to ``[R, C, 4S, 4S]`` maps: coarse segmentation (``C`` = 2 for
foreground/background or 15 for the coarse parts), fine segmentation (``C = P + 1``: background and P
parts), U and V (``P + 1`` channels, one chart per part). Optional confidences, as detectron2's
``DensePoseChartWithConfidencePredictor``:

- ``uv_confidence="iid_iso"``: ``sigma_2`` (softplus + epsilon), one isotropic UV variance per part;
- ``uv_confidence="indep_aniso"``: ``sigma_2`` and the anisotropy direction ``kappa_u``, ``kappa_v``;
- ``segm_confidence``: per-pixel temperatures (softplus + epsilon) that scale the segmentation logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from .heads import init_conv_params

__all__ = ["UV_CONFIDENCES", "DensePoseChartOutput", "DensePoseChartPredictor"]

UV_CONFIDENCES = ("none", "iid_iso", "indep_aniso")
_FIELDS = (
    "coarse_segm", "fine_segm", "u", "v", "sigma_2", "kappa_u", "kappa_v",
    "fine_segm_confidence", "coarse_segm_confidence",
)  # fmt: skip


@attrs.frozen(eq=False)
class DensePoseChartOutput:
    """Predictor outputs for R boxes, each ``Tensor[R, C, H, W]`` over the box (None: not predicted).

    Indexes, concatenates and moves like an ``Instances`` field (``out[keep]``, ``cat``, ``to``).
    """

    coarse_segm: torch.Tensor
    fine_segm: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    sigma_2: torch.Tensor | None = None
    kappa_u: torch.Tensor | None = None
    kappa_v: torch.Tensor | None = None
    fine_segm_confidence: torch.Tensor | None = None
    coarse_segm_confidence: torch.Tensor | None = None

    def _map(self, fn) -> DensePoseChartOutput:
        return DensePoseChartOutput(
            **{k: None if getattr(self, k) is None else fn(getattr(self, k)) for k in _FIELDS}
        )

    def __len__(self) -> int:
        return int(self.coarse_segm.shape[0])

    def __getitem__(self, item: Any) -> DensePoseChartOutput:
        if isinstance(item, int):
            item = slice(item, item + 1 if item != -1 else None)
        return self._map(lambda t: t[item])

    def to(self, *args: Any, **kwargs: Any) -> DensePoseChartOutput:
        return self._map(lambda t: t.to(*args, **kwargs))

    @classmethod
    def cat(cls, outputs: Sequence[DensePoseChartOutput]) -> DensePoseChartOutput:
        first = outputs[0]
        return DensePoseChartOutput(
            **{
                k: None if getattr(first, k) is None else torch.cat([getattr(o, k) for o in outputs])
                for k in _FIELDS
            }
        )


class DensePoseChartPredictor(nn.Module):
    """Head features to :class:`DensePoseChartOutput` (see the module docstring).

    Args:
        in_channels: head feature channels; num_parts: P; num_coarse_segm_channels: 2 or 15.
        deconv_kernel: transposed conv kernel (4); up_scale: bilinear upsampling factor (2).
        uv_confidence: one of ``UV_CONFIDENCES``; segm_confidence: predict segmentation temperatures.
        epsilon: lower bound added to the softplus of ``sigma_2`` and the temperatures.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_parts: int = 24,
        num_coarse_segm_channels: int = 2,
        deconv_kernel: int = 4,
        up_scale: int = 2,
        uv_confidence: str = "none",
        segm_confidence: bool = False,
        epsilon: float = 0.01,
    ) -> None:
        super().__init__()
        if uv_confidence not in UV_CONFIDENCES:
            raise ValueError(f"uv_confidence must be one of {UV_CONFIDENCES}, got {uv_confidence!r}")
        charts = num_parts + 1

        def deconv(out_channels: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(
                in_channels, out_channels, deconv_kernel, stride=2, padding=deconv_kernel // 2 - 1
            )

        self.ann_index_lowres = deconv(num_coarse_segm_channels)
        self.index_uv_lowres = deconv(charts)
        self.u_lowres = deconv(charts)
        self.v_lowres = deconv(charts)
        self.uv_confidence = uv_confidence
        self.segm_confidence = segm_confidence
        if uv_confidence != "none":
            self.sigma_2_lowres = deconv(charts)
        if uv_confidence == "indep_aniso":
            self.kappa_u_lowres = deconv(charts)
            self.kappa_v_lowres = deconv(charts)
        if segm_confidence:
            self.fine_segm_confidence_lowres = deconv(1)
            self.coarse_segm_confidence_lowres = deconv(1)
        self.up_scale = up_scale
        self.epsilon = epsilon
        init_conv_params(self)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> DensePoseChartOutput:
        """``Tensor[R, D, S, S]`` to maps of side ``2 S up_scale``."""
        out: dict[str, torch.Tensor | None] = {
            "coarse_segm": self._up(self.ann_index_lowres(x)),
            "fine_segm": self._up(self.index_uv_lowres(x)),
            "u": self._up(self.u_lowres(x)),
            "v": self._up(self.v_lowres(x)),
        }
        if self.uv_confidence != "none":
            out["sigma_2"] = F.softplus(self._up(self.sigma_2_lowres(x))) + self.epsilon
        if self.uv_confidence == "indep_aniso":
            out["kappa_u"] = self._up(self.kappa_u_lowres(x))
            out["kappa_v"] = self._up(self.kappa_v_lowres(x))
        if self.segm_confidence:
            fine_t = F.softplus(self._up(self.fine_segm_confidence_lowres(x))) + self.epsilon
            coarse_t = F.softplus(self._up(self.coarse_segm_confidence_lowres(x))) + self.epsilon
            out["fine_segm"] = out["fine_segm"] * fine_t  # [R, P+1, H, W] * [R, 1, H, W]
            out["coarse_segm"] = out["coarse_segm"] * coarse_t
            out["fine_segm_confidence"], out["coarse_segm_confidence"] = fine_t, coarse_t
        return DensePoseChartOutput(**out)
