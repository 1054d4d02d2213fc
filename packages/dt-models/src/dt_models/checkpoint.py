"""Loading detectron2 checkpoints: model-zoo ``.pkl`` (numpy), trainer ``.pth``, Caffe2-style names.

dt's module names are detectron2's, except for the extra ROI branches, which dt holds by name:
``roi_heads.branches.mask.head.*`` is detectron2's ``roi_heads.mask_head.*`` (:func:`detectron2_name`).

Nothing in a checkpoint can execute code: ``.pkl`` files go through :func:`safe_load_pickle` and
``.pth`` files through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from dt_models.safe_pickle import safe_load_pickle

__all__ = ["LoadReport", "convert_caffe2_names", "detectron2_name", "load_checkpoint_file", "load_weights"]


@attrs.frozen
class LoadReport:
    """What happened when loading weights into a model.

    ``loaded``: model keys that received a value; ``missing``: model keys without one;
    ``unexpected``: checkpoint keys nothing used; ``shape_mismatch``: ``(model key, checkpoint key,
    model shape, checkpoint shape)`` left at their initial values.
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shape_mismatch: tuple[tuple[str, str, tuple[int, ...], tuple[int, ...]], ...]

    @property
    def ok(self) -> bool:
        """True if every model key was loaded and every checkpoint key used."""
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def table(self) -> str:
        """The problems as a fixed-width table (one row per key), or a one-line summary."""
        rows = [("missing", k, "", "") for k in self.missing]
        rows += [("unexpected", k, "", "") for k in self.unexpected]
        rows += [
            ("shape mismatch", m, str(tuple(ms)), f"{c} {tuple(cs)}") for m, c, ms, cs in self.shape_mismatch
        ]
        summary = (
            f"loaded {len(self.loaded)} tensors; {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, "
            f"{len(self.shape_mismatch)} shape mismatches"
        )
        if not rows:
            return summary
        header = ("problem", "key", "model shape", "checkpoint")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
        ]
        return "\n".join([summary, lines[0], "  ".join("-" * w for w in widths), *lines[1:]])

    def __str__(self) -> str:
        return self.table()


_CAFFE2_RULES = [
    (r"\.b$", ".bias"),
    (r"\.w$", ".weight"),
    (r"bn\.s$", "norm.weight"),
    (r"bn\.bias$", "norm.bias"),
    (r"bn\.rm$", "norm.running_mean"),
    (r"bn\.running\.mean$", "norm.running_mean"),
    (r"bn\.riv$", "norm.running_var"),
    (r"bn\.running\.var$", "norm.running_var"),
    (r"bn\.gamma$", "norm.weight"),
    (r"bn\.beta$", "norm.bias"),
    (r"gn\.s$", "norm.weight"),
    (r"gn\.bias$", "norm.bias"),
    (r"^res\.conv1\.norm\.", "conv1.norm."),
    (r"^conv1\.", "stem.conv1."),
    (r"\.branch1\.", ".shortcut."),
    (r"\.branch2a\.", ".conv1."),
    (r"\.branch2b\.", ".conv2."),
    (r"\.branch2c\.", ".conv3."),
]


def convert_caffe2_names(names: list[str]) -> dict[str, str]:
    """Map Caffe2/Detectron1 ResNet names (``res2_0_branch2a_bn_s``) to dt/detectron2 names
    (``res2.0.conv1.norm.weight``). Returns ``{new name: original name}``."""
    mapping = {}
    for original in names:
        key = original.replace("_", ".")
        for pattern, replacement in _CAFFE2_RULES:
            key = re.sub(pattern, replacement, key)
        mapping[key] = original
    return mapping


_BRANCH_PART = re.compile(r"(^|\.)roi_heads\.branches\.(\w+)\.(\w+)\.")


def detectron2_name(key: str) -> str:
    """detectron2's name of a dt state-dict ``key``: a module ``<part>`` of the ROI branch ``<branch>``
    (``roi_heads.branches.<branch>.<part>.``) is detectron2's ``roi_heads.<branch>_<part>.``, so
    ``roi_heads.branches.mask.head.predictor.weight`` is ``roi_heads.mask_head.predictor.weight``;
    every other name is the same in both."""
    return _BRANCH_PART.sub(r"\1roi_heads.\2_\3.", key, count=1)


def _roi_heads_part_aliases(model: nn.Module) -> dict[str, str]:
    """dt key prefix -> detectron2 key prefix of the ROI-branch parts that detectron2 keeps directly
    under its ROI heads: a branch lists them in ``detectron2_roi_heads_parts`` (DensePose's
    ``decoder`` is ``roi_heads.decoder.*``, not ``roi_heads.densepose_decoder.*``)."""
    aliases = {}
    for name, module in model.named_modules():
        match = re.search(r"(^|\.)roi_heads\.branches\.\w+$", name)
        if match is not None:
            heads = name[: match.start()] + match.group(1) + "roi_heads."
            for part in getattr(module, "detectron2_roi_heads_parts", ()):
                aliases[f"{name}.{part}."] = f"{heads}{part}."
    return aliases


def _detectron2_key(key: str, aliases: dict[str, str]) -> str:
    for prefix, replacement in aliases.items():
        if key.startswith(prefix):
            return replacement + key[len(prefix) :]
    return detectron2_name(key)


def load_checkpoint_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], bool]:
    """Read a checkpoint's weights as tensors, and whether its names need suffix matching.

    ``.pkl``: detectron2 model zoo (``{"model": ..., "__author__": ...}``) or Caffe2 (a dict of
    arrays, optionally under ``"blobs"``; names converted with :func:`convert_caffe2_names`).
    Anything else is read with ``torch.load(weights_only=True)`` (``{"model": state_dict, ...}`` or
    a bare state dict).
    """
    path = Path(path)
    if path.suffix == ".pkl":
        data = safe_load_pickle(path.read_bytes())
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a dict at the top of the pickle, got {type(data).__name__}")
        if "model" in data and "__author__" in data:
            weights, heuristics = data["model"], bool(data.get("matching_heuristics", False))
        else:
            blobs = data.get("blobs", data)
            names = convert_caffe2_names([k for k in blobs if not k.endswith("_momentum")])
            weights, heuristics = {new: blobs[old] for new, old in names.items()}, True
    else:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a dict checkpoint, got {type(data).__name__}")
        weights, heuristics = data.get("model", data), False
    tensors = {}
    for name, value in weights.items():
        if isinstance(value, np.ndarray):
            tensors[name] = torch.from_numpy(np.require(value, requirements="C"))  # keeps 0-d arrays 0-d
        elif isinstance(value, torch.Tensor):
            tensors[name] = value
        elif isinstance(value, (int, float)):
            tensors[name] = torch.tensor(value)
        else:
            raise ValueError(f"{path}: value of {name!r} is a {type(value).__name__}, not an array")
    if tensors and all(k.startswith("module.") for k in tensors):  # saved from DistributedDataParallel
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors, heuristics


def _match_by_suffix(model_keys: list[str], ckpt_keys: list[str]) -> dict[str, str]:
    """Model key -> checkpoint key whose name is the longest ``.``-aligned suffix of the model key."""
    matches: dict[str, str] = {}
    for key in model_keys:
        best = None
        for ck in ckpt_keys:
            if (key == ck or key.endswith("." + ck)) and (best is None or len(ck) > len(best)):
                best = ck
        if best is not None:
            matches[key] = best
    used: dict[str, list[str]] = {}
    for key, ck in matches.items():
        used.setdefault(ck, []).append(key)
    # a checkpoint key claimed by several model keys is ambiguous: load none of them
    return {k: ck for k, ck in matches.items() if len(used[ck]) == 1}


def load_weights(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load a detectron2 (or dt) checkpoint into ``model``; returns a :class:`LoadReport`.

    A model key takes the checkpoint tensor of the same name, or else of its :func:`detectron2_name`.
    Tensors with a shape that differs from the model's are left untouched and reported, so a
    checkpoint with another number of classes can still initialize everything else.
    """
    weights, heuristics = load_checkpoint_file(path)
    state = model.state_dict()
    if heuristics:
        matches = _match_by_suffix(list(state), list(weights))
    else:
        aliases = _roi_heads_part_aliases(model)
        names = {k: k if k in weights else _detectron2_key(k, aliases) for k in state}
        matches = {k: name for k, name in names.items() if name in weights}
    to_load, mismatched = {}, []
    for key, ck in matches.items():
        value = weights[ck]
        if tuple(value.shape) != tuple(state[key].shape):
            mismatched.append((key, ck, tuple(state[key].shape), tuple(value.shape)))
            continue
        to_load[key] = value.to(dtype=state[key].dtype)
    model.load_state_dict(to_load, strict=False)
    used = set(matches.values())
    return LoadReport(
        loaded=tuple(sorted(to_load)),
        missing=tuple(sorted(k for k in state if k not in matches)),
        unexpected=tuple(sorted(k for k in weights if k not in used)),
        shape_mismatch=tuple(mismatched),
    )
