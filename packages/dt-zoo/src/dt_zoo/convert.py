"""Converters of ImageNet ResNet weights into dt's ResNet names, and a file every dt model can start from.

* ``msra_resnet_to_dt(path)``: detectron2's MSRA/Caffe2 backbones (``ImageNetPretrained/MSRA/R-50.pkl``:
  ``res2_0_branch2a_w``, ``res_conv1_bn_s``, ...). They expect BGR input in 0-255 with detectron2's
  default pixel mean and std 1, and ``stride_in_1x1: true`` (their stride is in the first 1x1 conv).
* ``torchvision_resnet_to_dt(state_dict)``: a torchvision ``resnet50().state_dict()`` (``layer1.0.conv1``,
  ``bn1``, ``downsample``); also ResNeXt (``resnext50_32x4d``: ``num_groups: 32, width_per_group: 4``).
  Those expect RGB in 0-255 with ``pixel_mean [123.675, 116.28, 103.53]``, ``pixel_std [58.395, 57.12,
  57.375]``, and ``stride_in_1x1: false`` (torchvision strides in the 3x3 conv).
* ``save_backbone_weights(state, path)``: a ``.pkl`` (plain arrays, read by dt's safe pickle reader) that
  ``--weights`` loads into any model with this ResNet, wherever it sits (``backbone.bottom_up.`` in an
  FPN model, ``backbone.`` and ``roi_heads.res5`` in a C4 one): its names are matched by suffix.

The classifier (``fc``, ``pred``) is dropped. Any other name that is not a ResNet's is an error, so a
file of another architecture is never half loaded.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ZooError

if TYPE_CHECKING:
    import torch

__all__ = ["msra_resnet_to_dt", "save_backbone_weights", "torchvision_resnet_to_dt"]

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


def _checked(names: Mapping[str, str], source: str) -> None:
    """``names``: dt name -> original name; every dt name must be a ResNet parameter or buffer."""
    wrong = [original for dt_name, original in names.items() if not _DT_RESNET_KEY.fullmatch(dt_name)]
    if wrong:
        raise ZooError(f"{source}: {len(wrong)} tensors are not a ResNet's (first: {wrong[0]!r})")
    if not any(dt_name.startswith("stem.") for dt_name in names):
        raise ZooError(f"{source}: no ResNet stem (conv1) found; expected a ResNet's weights")


def torchvision_resnet_to_dt(
    state: Mapping[str, torch.Tensor], source: str = "torchvision state dict"
) -> dict[str, torch.Tensor]:
    """dt's ResNet state dict (``stem.conv1.weight``, ``res2.0.conv1.norm.weight``, ...) of a torchvision
    ResNet/ResNeXt ``state_dict()``; ``fc.*`` and ``num_batches_tracked`` are dropped.

    Raises:
        ZooError: a tensor that is not a ResNet's, or no stem.
    """
    names = {}
    for original in state:
        if original.startswith("fc.") or original.endswith("num_batches_tracked"):
            continue
        name = original
        for pattern, replacement in _TORCHVISION_RULES:
            name = re.sub(pattern, replacement, name)
        names[name] = original
    _checked(names, source)
    return {name: state[original] for name, original in names.items()}


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
