"""Converters of ImageNet backbone weights into dt's backbone names, and a file every dt model can start
from.

* ``msra_resnet_to_dt(path)``: detectron2's MSRA/Caffe2 backbones (``ImageNetPretrained/MSRA/R-50.pkl``:
  ``res2_0_branch2a_w``, ``res_conv1_bn_s``, ...). They expect BGR input in 0-255 with detectron2's
  default pixel mean and std 1, and ``stride_in_1x1: true`` (their stride is in the first 1x1 conv).
* ``torchvision_resnet_to_dt(state_dict)``: a torchvision ``resnet50().state_dict()`` (``layer1.0.conv1``,
  ``bn1``, ``downsample``); also ResNeXt (``resnext50_32x4d``: ``num_groups: 32, width_per_group: 4``).
  Those expect RGB in 0-255 with ``pixel_mean [123.675, 116.28, 103.53]``, ``pixel_std [58.395, 57.12,
  57.375]``, and ``stride_in_1x1: false`` (torchvision strides in the 3x3 conv).
* ``timm_resnet_to_dt(state_dict)``: a timm ``resnet50``/``resnext50_32x4d`` (torchvision's names; the
  ``resnet*d`` deep-stem and SE variants are refused). Same input conventions as torchvision's.
* ``torchvision_regnet_to_dt`` (``regnet_x_*``/``regnet_y_*``: ``trunk_output.block1.block1-0.f.a.0``) and
  ``timm_regnet_to_dt`` (``regnetx_*``/``regnety_*``: ``s1.b1.conv1.conv``) into dt's RegNet. Build the dt
  ``RegNet`` with the library's parameters (torchvision's ``depth, w_0, w_a, w_m, group_width,
  se_ratio``; timm's ``depth, w0, wa, wm, group_size, se_ratio``), ``stem_width: 32``, ``norm: BN`` or
  ``FrozenBN``, and for torchvision ``width_rounding: half_up`` (its stage widths round half up, which
  makes ``regnet_x_400mf`` and ``regnet_y_800mf`` wider than detectron2's rounding would); RGB
  statistics as torchvision's.
* ``timm_vit_to_dt`` (dt-models' ``convert_timm_vit_state_dict``) and ``timm_swin_to_dt``: a timm
  ``swin_*`` (not SwinV2) into dt's Swin. timm's final ``norm`` becomes the last stage's ``norm3``;
  the other stage norms (``norm0``..``norm2``) and ``relative_position_index`` (computed) are not in timm's
  file and keep their initial values, as detectron2 starts its Swin detectors.
* ``mae_vit_to_dt(path)``: MAE's ImageNet pretraining (``mae_pretrain_vit_base.pth``, ViTDet's
  initial weights): timm's ViT names under a ``model`` key, no ``head``/``fc_norm``, a class token and
  a ``pos_embed`` of ``1 + (224 / patch) ** 2`` rows; build the ViT with ``pretrain_use_cls_token: true``
  and the ``pretrain_img_size`` that grid gives (checked when passed).
* ``save_backbone_weights(state, path)``: a ``.pkl`` (plain arrays, read by dt's safe pickle reader) that
  ``--weights`` loads into any model with this ResNet, wherever it sits (``backbone.bottom_up.`` in an
  FPN model, ``backbone.`` and ``roi_heads.res5`` in a C4 one): its names are matched by suffix.

The classifier (``fc``, ``head``, ``pred``) is dropped. Any other name that is not the family's is an error
naming it, so a file of another architecture or variant is never half loaded.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ZooError

if TYPE_CHECKING:
    import torch

__all__ = [
    "mae_vit_to_dt",
    "msra_resnet_to_dt",
    "save_backbone_weights",
    "timm_regnet_to_dt",
    "timm_resnet_to_dt",
    "timm_swin_to_dt",
    "timm_vit_to_dt",
    "torchvision_regnet_to_dt",
    "torchvision_resnet_to_dt",
]

_Rules = tuple[tuple[str, "str | Callable[[re.Match[str]], str]"], ...]

_DT_RESNET_KEY = re.compile(
    r"(stem\.conv1|res[2-5]\.\d+\.(conv[1-3]|shortcut))\.(weight|bias|norm\.(weight|bias|running_mean|running_var))"
)
_TORCHVISION_RULES = (  # applied in order to each torchvision name
    (r"^conv1\.weight$", "stem.conv1.weight"),
    (r"^bn1\.", "stem.conv1.norm."),
    (r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}."),
    (r"\.bn(\d)\.", r".conv\1.norm."),
    (r"\.downsample\.0\.", ".shortcut."),
    (r"\.downsample\.1\.", ".shortcut.norm."),
)


_BN = r"(weight|bias|running_mean|running_var)"
_DT_REGNET_KEY = re.compile(
    rf"stem\.(conv\.weight|bn\.{_BN})|s\d+\.b\d+\.(proj\.weight|bn\.{_BN}|f\.[abc]\.weight|f\.[abc]_bn\.{_BN}"
    r"|f\.se\.f_ex\.[02]\.(weight|bias))"
)
_TORCHVISION_REGNET_RULES = (
    (r"^stem\.0\.", "stem.conv."),
    (r"^stem\.1\.", "stem.bn."),
    (r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.", lambda m: f"s{m.group(1)}.b{int(m.group(2)) + 1}."),
    (r"\.proj\.0\.", ".proj."),
    (r"\.proj\.1\.", ".bn."),
    (r"\.f\.([abc])\.0\.", r".f.\1."),
    (r"\.f\.([abc])\.1\.", r".f.\1_bn."),
    (r"\.f\.se\.fc1\.", ".f.se.f_ex.0."),
    (r"\.f\.se\.fc2\.", ".f.se.f_ex.2."),
)
_TIMM_REGNET_RULES = (
    (r"^(s\d+\.b\d+)\.conv([123])\.conv\.", lambda m: f"{m.group(1)}.f.{'abc'[int(m.group(2)) - 1]}."),
    (r"^(s\d+\.b\d+)\.conv([123])\.bn\.", lambda m: f"{m.group(1)}.f.{'abc'[int(m.group(2)) - 1]}_bn."),
    (r"\.se\.fc1\.", ".f.se.f_ex.0."),
    (r"\.se\.fc2\.", ".f.se.f_ex.2."),
    (r"\.downsample\.conv\.", ".proj."),
    (r"\.downsample\.bn\.", ".bn."),
)
_DT_SWIN_KEY = re.compile(
    r"patch_embed\.(proj|norm)\.(weight|bias)|norm\d+\.(weight|bias)"
    r"|layers\.\d+\.(downsample\.(norm\.(weight|bias)|reduction\.weight)|blocks\.\d+\.(norm[12]\.(weight|bias)"
    r"|attn\.(relative_position_bias_table|qkv\.(weight|bias)|proj\.(weight|bias))|mlp\.fc[12]\.(weight|bias)))"
)


def _checked(
    names: Mapping[str, str], source: str, family: str = "ResNet", key: re.Pattern[str] = _DT_RESNET_KEY,
    stem: str = "stem.",
) -> None:  # fmt: skip
    """``names``: dt name -> original name; every dt name must be a parameter or buffer of ``family``."""
    wrong = [original for dt_name, original in names.items() if not key.fullmatch(dt_name)]
    if wrong:
        raise ZooError(f"{source}: {len(wrong)} tensors are not a {family}'s (first: {wrong[0]!r})")
    if not any(dt_name.startswith(stem) for dt_name in names):
        raise ZooError(f"{source}: no {family} stem ({stem}) found; expected a {family}'s weights")


def _renamed(
    state: Mapping[str, torch.Tensor], rules: _Rules, dropped: tuple[str, ...], source: str, **check: object
) -> dict[str, torch.Tensor]:
    """``state`` with ``rules`` applied in order to each name, after dropping names starting with
    ``dropped`` and the BatchNorm counters; the result is checked by ``_checked(**check)``."""
    names = {}
    for original in state:
        if original.startswith(dropped) or original.endswith("num_batches_tracked"):
            continue
        name = original
        for pattern, replacement in rules:
            name = re.sub(pattern, replacement, name)
        names[name] = original
    _checked(names, source, **check)  # type: ignore[arg-type]
    return {name: state[original] for name, original in names.items()}


def torchvision_resnet_to_dt(
    state: Mapping[str, torch.Tensor], source: str = "torchvision state dict"
) -> dict[str, torch.Tensor]:
    """dt's ResNet state dict (``stem.conv1.weight``, ``res2.0.conv1.norm.weight``, ...) of a torchvision
    ResNet/ResNeXt ``state_dict()``; ``fc.*`` and ``num_batches_tracked`` are dropped.

    Raises:
        ZooError: a tensor that is not a ResNet's, or no stem.
    """
    return _renamed(state, _TORCHVISION_RULES, ("fc.",), source)


def timm_resnet_to_dt(
    state: Mapping[str, torch.Tensor], source: str = "timm state dict"
) -> dict[str, torch.Tensor]:
    """dt's ResNet state dict of a timm ResNet/ResNeXt (``resnet50``, ``resnext50_32x4d``: torchvision's
    names); ``fc.*`` is dropped.

    Raises:
        ZooError: a tensor that is not a plain ResNet's (``conv1.0.weight`` of a ``resnet50d`` deep stem,
            ``layer1.0.se.fc.weight`` of an SE-ResNet, ...), or no stem.
    """
    return _renamed(state, _TORCHVISION_RULES, ("fc.",), source)


def torchvision_regnet_to_dt(
    state: Mapping[str, torch.Tensor], source: str = "torchvision state dict"
) -> dict[str, torch.Tensor]:
    """dt's RegNet state dict (``stem.conv.weight``, ``s1.b1.f.a_bn.weight``, ``s2.b1.proj.weight``, ...) of
    a torchvision ``regnet_x_*``/``regnet_y_*`` ``state_dict()``; ``fc.*`` is dropped.

    Raises:
        ZooError: a tensor that is not a RegNet's, or no stem.
    """
    return _renamed(state, _TORCHVISION_REGNET_RULES, ("fc.",), source, family="RegNet", key=_DT_REGNET_KEY)


def timm_regnet_to_dt(
    state: Mapping[str, torch.Tensor], source: str = "timm state dict"
) -> dict[str, torch.Tensor]:
    """dt's RegNet state dict of a timm ``regnetx_*``/``regnety_*``; ``head.*`` is dropped.

    Raises:
        ZooError: a tensor that is not a plain RegNet's (the pre-activation or final-conv variants,
            ``regnetv``/``regnetz``), or no stem.
    """
    return _renamed(state, _TIMM_REGNET_RULES, ("head.",), source, family="RegNet", key=_DT_REGNET_KEY)


def timm_vit_to_dt(
    state: Mapping[str, torch.Tensor], source: str = "timm state dict", *, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """dt's ViT state dict of a timm ``VisionTransformer`` (dt-models' ``convert_timm_vit_state_dict``:
    the class token, final norm and head are dropped; build the ViT with ``pretrain_use_cls_token``),
    its names under ``prefix`` (``"backbone.net."`` for the ViT of a ViTDet model).

    Raises:
        ZooError: a part dt's ViT does not have (layer scale, q/k norms, register tokens, ...).
    """
    from dt_models.backbone import convert_timm_vit_state_dict

    try:
        return convert_timm_vit_state_dict(state, prefix=prefix)
    except ValueError as err:
        raise ZooError(f"{source}: {err}") from None


def mae_vit_to_dt(
    checkpoint: str | os.PathLike[str] | Mapping[str, object],
    *,
    prefix: str = "",
    pretrain_img_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """dt's ViT state dict of an MAE-pretrained encoder: a ``.pth`` file (read without running code) or
    its loaded ``{"model": state_dict}``, in timm's ViT names with a class token and without classifier.

    ``pos_embed`` (``[1, 1 + g * g, C]``, the class token's row first) is kept: dt's ViT drops that row
    and interpolates the ``g x g`` grid to each input. Build the ViT with ``pretrain_use_cls_token: true``
    and ``pretrain_img_size = g * patch`` (224 for MAE's releases); pass ``pretrain_img_size`` to have
    it checked here.

    Raises:
        ZooError: an unreadable file, not MAE's layout, a position embedding that is no class token plus
            a square grid, another ``pretrain_img_size``, or a part dt's ViT does not have.
    """
    from dt_engine.checkpoint import torch_load_checked

    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "MAE checkpoint"
    if isinstance(checkpoint, (str, os.PathLike)):
        try:
            checkpoint = torch_load_checked(checkpoint)
        except ValueError as err:
            raise ZooError(str(err)) from None
    state = checkpoint.get("model") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise ZooError(f"{source}: expected MAE's layout, a dict with the encoder's state dict under 'model'")
    missing = [name for name in ("cls_token", "pos_embed", "patch_embed.proj.weight") if name not in state]
    if missing:
        raise ZooError(f"{source}: no {missing[0]!r}; expected an MAE ViT encoder (timm names, class token)")
    rows, patch = state["pos_embed"].shape[1], state["patch_embed.proj.weight"].shape[-1]
    grid = math.isqrt(max(rows - 1, 0))
    if grid == 0 or grid * grid != rows - 1:
        raise ZooError(f"{source}: pos_embed has {rows} rows; expected a class token plus a square grid")
    if pretrain_img_size is not None and pretrain_img_size != grid * patch:
        raise ZooError(
            f"{source}: pos_embed is a {grid} x {grid} grid of {patch} px patches, so the ViT needs "
            f"pretrain_img_size {grid * patch}, not {pretrain_img_size}"
        )
    return timm_vit_to_dt(state, source, prefix=prefix)


def timm_swin_to_dt(
    state: Mapping[str, torch.Tensor], source: str = "timm state dict"
) -> dict[str, torch.Tensor]:
    """dt's Swin state dict of a timm ``swin_*`` model: timm merges patches at the start of stage ``i``
    (``layers.{i}.downsample``), dt at the end of stage ``i - 1``; timm's final ``norm`` is dt's norm of
    the last stage. ``head.*``, ``attn_mask`` and ``relative_position_index`` (buffers dt computes) are
    dropped.

    Raises:
        ZooError: a tensor that is not a Swin's (SwinV2's ``logit_scale``/``cpb_mlp``, ...), or no patch
            embedding.
    """
    stages = {int(m.group(1)) for name in state if (m := re.match(r"layers\.(\d+)\.", name))}
    last = max(stages, default=0)
    rules: _Rules = (
        (r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample."),
        (r"^norm\.", f"norm{last}."),
    )
    buffers = {name for name in state if name.endswith(("attn_mask", "relative_position_index"))}
    kept = {name: tensor for name, tensor in state.items() if name not in buffers}
    return _renamed(kept, rules, ("head.",), source, family="Swin", key=_DT_SWIN_KEY, stem="patch_embed.")


def msra_resnet_to_dt(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """dt's ResNet state dict of a detectron2 MSRA/Caffe2 ImageNet ``.pkl`` (read without running code).

    Raises:
        ZooError: not a Caffe2 pickle of a ResNet.
    """
    from dt_models.checkpoint import load_checkpoint_file

    try:
        tensors, caffe2_names = load_checkpoint_file(path)
    except (ValueError, pickle.UnpicklingError) as err:  # not a dict of arrays, or a pickle with code
        raise ZooError(f"{path}: {err}") from None
    if not caffe2_names or Path(path).suffix != ".pkl":
        raise ZooError(f"{path}: expected a Caffe2 ImageNet .pkl (names like res2_0_branch2a_w)")
    kept = {name: name for name in tensors if not name.startswith(("pred.", "fc1000."))}
    _checked(kept, str(path))
    return {name: tensors[name] for name in kept}


def save_backbone_weights(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` (dt ResNet names) as a ``.pkl`` of numpy arrays that dt loads by name suffix."""
    path = Path(path)
    if path.suffix != ".pkl":
        raise ZooError(f"{path}: backbone weights are written as .pkl (dt matches their names by suffix)")
    _checked({name: name for name in state}, str(path))
    arrays = {name: tensor.detach().cpu().numpy() for name, tensor in state.items()}
    data = {"model": arrays, "__author__": "dt_zoo.convert", "matching_heuristics": True}
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path
