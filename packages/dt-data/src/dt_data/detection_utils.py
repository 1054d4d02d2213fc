"""Helpers that turn dataset dicts into model inputs (detectron2's ``detection_utils`` semantics):
image reading, size checks, applying transforms to annotations, building ``Instances``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from dt_structures import (
    BitMasks,
    Boxes,
    BoxMode,
    Instances,
    Keypoints,
    PolygonMasks,
    RotatedBoxes,
    polygons_to_bitmask,
)

from . import transforms as T
from .catalog import MetadataCatalog
from .config import InputConfig
from .errors import ImageError

__all__ = [
    "SizeMismatchError",
    "annotations_to_instances",
    "annotations_to_instances_rotated",
    "is_rotated",
    "build_augmentation",
    "check_image_size",
    "check_metadata_consistency",
    "convert_PIL_to_numpy",
    "create_keypoint_hflip_indices",
    "filter_empty_instances",
    "gen_crop_transform_with_instance",
    "get_fed_loss_cls_weights",
    "read_image",
    "to_8bit",
    "transform_instance_annotations",
    "transform_keypoint_annotations",
    "transform_proposals",
]

logger = logging.getLogger(__name__)
_M_RGB2YUV = [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]]
IMAGE_FORMATS = ("BGR", "RGB", "L", "YUV-BT.601")


class SizeMismatchError(ImageError):
    """The image's size differs from the ``height``/``width`` of its annotation."""


def convert_PIL_to_numpy(image: Image.Image, format: str | None) -> np.ndarray:
    """PIL image -> ``ndarray[H, W, C]`` in ``format`` (BGR, RGB, L (C = 1), YUV-BT.601 (float)) or the
    image's own mode when None."""
    if format is not None:
        if format not in IMAGE_FORMATS:
            raise ValueError(f"image format must be one of {IMAGE_FORMATS} or None, got {format!r}")
        image = image.convert("RGB" if format in ("BGR", "YUV-BT.601") else format)
    array = np.asarray(image)
    if format == "L":
        array = np.expand_dims(array, -1)
    elif format == "BGR":
        array = array[:, :, ::-1]
    elif format == "YUV-BT.601":
        array = np.dot(array / 255.0, np.array(_M_RGB2YUV).T)
    return array


_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_noted_modes: set[str] = set()


def to_8bit(image: Image.Image, file_name: str = "") -> Image.Image:
    """A 16-bit (``I;16``), 32-bit integer (``I``) or float (``F``) PIL image as 8-bit ``L``; other modes
    unchanged. 16-bit values are divided by 257 (0..65535 -> 0..255); 32-bit and float images are
    stretched from their own min..max (floats already in [0, 1] are multiplied by 255). The first
    image of each mode in a process logs a note."""
    if image.mode not in _WIDE_MODES:
        return image
    values = np.asarray(image, dtype=np.float64)  # [H, W]
    if image.mode.startswith("I;16"):
        scaled, how = values / 257.0, "value / 257"
    elif image.mode == "F" and values.size and np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0:
        scaled, how = values * 255.0, "value x 255"
    else:
        low = float(np.nanmin(values)) if values.size else 0.0
        high = float(np.nanmax(values)) if values.size else 0.0
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        how = f"stretched from [{low:g}, {high:g}]"
    if image.mode not in _noted_modes:
        _noted_modes.add(image.mode)
        logger.warning("%s: %s image scaled to 8-bit (%s)", file_name or "image", image.mode, how)
    return Image.fromarray(np.nan_to_num(scaled).clip(0, 255).round().astype(np.uint8), mode="L")


def read_image(file_name: str, format: str | None = None) -> np.ndarray:
    """Read an image file, apply its EXIF orientation, convert to ``format``.

    Returns ``ndarray[H, W, C]`` (uint8; ``[H, W, 1]`` for ``"L"``); for a colour ``format``, 16-bit
    and float images are scaled to 8-bit first (``to_8bit``). A missing file raises
    ``FileNotFoundError``, a file that cannot be decoded (not an image, truncated) ``ImageError``,
    both naming the file.
    """
    try:
        with Image.open(file_name) as image:
            image = ImageOps.exif_transpose(image)
            if format in ("BGR", "RGB", "YUV-BT.601"):  # not "L"/None: label maps keep their values
                image = to_8bit(image, file_name)
            return convert_PIL_to_numpy(image, format)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {file_name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"cannot read image {file_name}: {e} (expected a complete image file)") from None


def check_image_size(dataset_dict: dict, image: np.ndarray) -> None:
    """Raise :class:`SizeMismatchError` if ``image`` ``[H, W, ...]`` disagrees with the dict's
    ``width``/``height`` (when present)."""
    if "width" not in dataset_dict and "height" not in dataset_dict:
        return
    image_wh = (image.shape[1], image.shape[0])
    expected_wh = (dataset_dict.get("width", image_wh[0]), dataset_dict.get("height", image_wh[1]))
    if image_wh != expected_wh:
        name = dataset_dict.get("file_name", "<no file_name>")
        raise SizeMismatchError(
            f"image {name} has size (w, h) = {image_wh} but its annotation says {expected_wh}; "
            "check the width/height in the annotation"
        )


def _check_annotation(annotation: dict) -> None:
    bbox = annotation.get("bbox")
    if bbox is None:
        raise ValueError("annotation has no 'bbox'")
    if "bbox_mode" not in annotation:
        raise ValueError("annotation has no 'bbox_mode'")
    size = 5 if is_rotated(annotation) else 4
    values = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if values.size != size or not np.isfinite(values).all():
        raise ValueError(f"bbox must be {size} finite numbers, got {bbox!r}")
    segm = annotation.get("segmentation")
    if isinstance(segm, list):
        for i, poly in enumerate(segm):
            flat = np.asarray(poly, dtype=np.float64).reshape(-1)
            if flat.size % 2 != 0 or flat.size < 6 or not np.isfinite(flat).all():
                raise ValueError(f"polygon {i} must hold >= 3 finite (x, y) points, got {flat.size} numbers")
    elif isinstance(segm, dict):
        if "counts" not in segm or "size" not in segm:
            raise ValueError("RLE segmentation needs 'counts' and 'size'")
    elif segm is not None and not isinstance(segm, np.ndarray):
        raise ValueError(f"cannot transform segmentation of type {type(segm).__name__}")


def _decode_rle(segm: dict) -> np.ndarray:
    if isinstance(segm["counts"], list):
        segm = mask_util.frPyObjects(segm, *segm["size"])
    try:
        return mask_util.decode(segm)
    except Exception as e:  # pycocotools raises bare Exceptions on corrupt RLE
        raise ValueError(f"cannot decode RLE segmentation: {e}") from None


def is_rotated(annotation: dict) -> bool:
    """Whether the annotation's ``bbox`` is a rotated box (``bbox_mode`` XYWHA_ABS)."""
    return BoxMode(int(annotation["bbox_mode"])) == BoxMode.XYWHA_ABS


def transform_instance_annotations(
    annotation: dict,
    transforms: T.Transform | Sequence[T.Transform],
    image_size: tuple[int, int],
    *,
    keypoint_hflip_indices: np.ndarray | Sequence[int] | None = None,
) -> dict:
    """Apply ``transforms`` to one instance annotation; returns a new dict (input unchanged) with
    ``bbox`` as XYXY_ABS clipped to ``image_size`` (h, w), polygons (list of flat arrays) or a
    bitmask ``ndarray[H, W]`` (from RLE) and keypoints ``ndarray[K, 3]``. A rotated ``bbox``
    (XYWHA_ABS) stays rotated, moved by ``apply_rotated_box`` (``annotations_to_instances_rotated``
    clips it)."""
    _check_annotation(annotation)
    if isinstance(transforms, (tuple, list)):
        transforms = T.TransformList(transforms)
    out = dict(annotation)
    if is_rotated(annotation):
        out["bbox"] = transforms.apply_rotated_box(np.asarray([annotation["bbox"]], dtype=np.float64))[0]
    else:
        bbox = BoxMode.convert(
            np.asarray(annotation["bbox"], dtype=np.float64), annotation["bbox_mode"], BoxMode.XYXY_ABS
        )
        bbox = transforms.apply_box(np.array([bbox]))[0].clip(min=0)
        out["bbox"] = np.minimum(bbox, list(image_size + image_size)[::-1])
        out["bbox_mode"] = BoxMode.XYXY_ABS
    segm = annotation.get("segmentation")
    if isinstance(segm, list):
        polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segm]
        out["segmentation"] = [p.reshape(-1) for p in transforms.apply_polygons(polygons)]
    elif isinstance(segm, dict):
        mask = transforms.apply_segmentation(_decode_rle(segm))
        if tuple(mask.shape[:2]) != tuple(image_size):
            raise ValueError(
                f"RLE mask of size {mask.shape[:2]} does not match the image size {tuple(image_size)}"
            )
        out["segmentation"] = mask
    elif isinstance(segm, np.ndarray):
        out["segmentation"] = transforms.apply_segmentation(segm)
    if "keypoints" in annotation:
        out["keypoints"] = transform_keypoint_annotations(
            annotation["keypoints"], transforms, image_size, keypoint_hflip_indices
        )
    return out


def transform_keypoint_annotations(
    keypoints: Any,
    transforms: T.Transform,
    image_size: tuple[int, int],
    keypoint_hflip_indices: np.ndarray | Sequence[int] | None = None,
) -> np.ndarray:
    """Keypoints (flat ``[3K]`` or ``[K, 3]`` of x, y, visibility) -> transformed ``ndarray[K, 3]``.
    Points leaving the image become unlabeled (0, 0, 0); an odd number of horizontal flips reorders
    them by ``keypoint_hflip_indices``."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.size % 3 != 0:
        raise ValueError(f"keypoints must be (x, y, v) triples, got {keypoints.size} numbers")
    keypoints = keypoints.reshape(-1, 3).copy()
    if not isinstance(transforms, T.TransformList):
        transforms = T.TransformList([transforms])
    xy = transforms.apply_coords(keypoints[:, :2])
    inside = ((xy >= np.array([0, 0])) & (xy <= np.array(image_size[::-1]))).all(axis=1)
    keypoints[:, :2] = xy
    keypoints[:, 2][~inside] = 0
    do_hflip = sum(isinstance(t, T.HFlipTransform) for t in transforms.transforms) % 2 == 1
    if do_hflip:
        if keypoint_hflip_indices is None:
            raise ValueError("cannot flip keypoints without keypoint_hflip_indices")
        if len(keypoints) != len(keypoint_hflip_indices):
            raise ValueError(
                f"keypoint_hflip_indices has {len(keypoint_hflip_indices)} entries "
                f"for {len(keypoints)} keypoints"
            )
        keypoints = keypoints[np.asarray(keypoint_hflip_indices, dtype=np.int64), :]
    keypoints[keypoints[:, 2] == 0] = 0
    return keypoints


def annotations_to_instances(
    annos: list[dict], image_size: tuple[int, int], mask_format: str = "polygon"
) -> Instances:
    """Transformed annotations (XYXY_ABS boxes) -> ``Instances`` with ``gt_boxes`` (Boxes[N]),
    ``gt_classes`` (int64[N]) and, when present, ``gt_masks`` (PolygonMasks or BitMasks[N, H, W]) and
    ``gt_keypoints`` (Keypoints[N, K, 3])."""
    if mask_format not in ("polygon", "bitmask"):
        raise ValueError(f"mask_format must be 'polygon' or 'bitmask', got {mask_format!r}")
    if annos:
        boxes = np.stack(
            [
                BoxMode.convert(np.asarray(a["bbox"], np.float64), a["bbox_mode"], BoxMode.XYXY_ABS)
                for a in annos
            ]
        )
    else:
        boxes = np.zeros((0, 4))
    target = Instances(image_size)
    target.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
    target.gt_classes = torch.tensor([int(a["category_id"]) for a in annos], dtype=torch.int64)
    if annos and "segmentation" in annos[0]:
        segms = [a["segmentation"] for a in annos]
        if mask_format == "polygon":
            try:
                target.gt_masks = PolygonMasks(segms)
            except (ValueError, TypeError) as e:
                raise ValueError(f"mask_format='polygon' cannot hold these segmentations: {e}") from e
        else:
            masks = []
            for segm in segms:
                if isinstance(segm, list):
                    masks.append(polygons_to_bitmask(segm, *image_size))
                elif isinstance(segm, dict):
                    masks.append(_decode_rle(segm))
                elif isinstance(segm, np.ndarray) and segm.ndim == 2:
                    masks.append(segm)
                else:
                    raise ValueError(
                        f"cannot convert segmentation of type {type(segm).__name__} to a bitmask"
                    )
            target.gt_masks = BitMasks(
                torch.stack([torch.from_numpy(np.ascontiguousarray(m)) for m in masks])
            )
    if annos and "keypoints" in annos[0]:
        target.gt_keypoints = Keypoints([a.get("keypoints", []) for a in annos])
    return target


def annotations_to_instances_rotated(annos: list[dict], image_size: tuple[int, int]) -> Instances:
    """Annotations with rotated ``bbox`` (cx, cy, w, h, angle degrees CCW) -> ``Instances`` with
    ``gt_boxes`` (RotatedBoxes[N], clipped to ``image_size``) and ``gt_classes`` (int64[N])."""
    boxes = torch.as_tensor([list(a["bbox"]) for a in annos], dtype=torch.float32).reshape(-1, 5)
    target = Instances(image_size)
    target.gt_boxes = RotatedBoxes(boxes).clipped(image_size)
    target.gt_classes = torch.tensor([int(a["category_id"]) for a in annos], dtype=torch.int64)
    return target


def gen_crop_transform_with_instance(
    crop_size: tuple[int, int],
    image_size: tuple[int, int],
    instance: dict,
    rng: np.random.Generator | None = None,
) -> T.CropTransform:
    """A random ``crop_size`` (h, w) crop of an ``image_size`` (h, w) image containing the centre of
    ``instance``'s box."""
    crop = np.asarray(crop_size, dtype=np.int32)
    bbox = BoxMode.convert(list(instance["bbox"]), instance["bbox_mode"], BoxMode.XYXY_ABS)
    center_yx = np.array([(bbox[1] + bbox[3]) * 0.5, (bbox[0] + bbox[2]) * 0.5])
    if image_size[0] < center_yx[0] or image_size[1] < center_yx[1]:
        raise ValueError(f"the instance's box {bbox} is outside the image of size {tuple(image_size)}")
    if image_size[0] < crop[0] or image_size[1] < crop[1]:
        raise ValueError(f"crop size {tuple(crop_size)} is larger than the image size {tuple(image_size)}")
    min_yx = np.maximum(np.floor(center_yx).astype(np.int32) - crop, 0)
    max_yx = np.maximum(np.asarray(image_size, dtype=np.int32) - crop, 0)
    max_yx = np.minimum(max_yx, np.ceil(center_yx).astype(np.int32))
    rng = T.augmentation.as_generator(rng)
    y0 = int(rng.integers(min_yx[0], max_yx[0] + 1))
    x0 = int(rng.integers(min_yx[1], max_yx[1] + 1))
    return T.CropTransform(x0, y0, int(crop[1]), int(crop[0]))


def get_fed_loss_cls_weights(
    dataset_names: str | Sequence[str], freq_weight_power: float = 1.0
) -> torch.Tensor:
    """Per-class weights ``image_count ** freq_weight_power`` (``Tensor[C]`` float32) from the
    metadata's ``class_image_count`` (LVIS), for federated losses."""
    names = [dataset_names] if isinstance(dataset_names, str) else list(dataset_names)
    check_metadata_consistency("class_image_count", names)
    counts = MetadataCatalog.get(names[0]).get("class_image_count")
    if counts is None:
        raise ValueError(f"metadata of {names[0]!r} has no 'class_image_count'")
    freq = torch.tensor(
        [c["image_count"] for c in sorted(counts, key=lambda c: c["id"])], dtype=torch.float32
    )
    return freq**freq_weight_power


def filter_empty_instances(
    instances: Instances,
    by_box: bool = True,
    by_mask: bool = True,
    box_threshold: float = 1e-5,
    return_mask: bool = False,
) -> Instances | tuple[Instances, torch.Tensor]:
    """Drop instances whose box has a side <= ``box_threshold`` or whose mask is empty."""
    if not (by_box or by_mask):
        raise ValueError("filter_empty_instances: at least one of by_box, by_mask must be True")
    keep = []
    if by_box:
        keep.append(instances.gt_boxes.nonempty(threshold=box_threshold))
    if by_mask and instances.has("gt_masks"):
        keep.append(instances.gt_masks.nonempty())
    if not keep:
        return (instances, torch.ones(len(instances), dtype=torch.bool)) if return_mask else instances
    m = keep[0]
    for x in keep[1:]:
        m = m & x
    return (instances[m], m) if return_mask else instances[m]


def transform_proposals(
    dataset_dict: dict,
    image_shape: tuple[int, int],
    transforms: T.Transform,
    *,
    proposal_topk: int,
    min_box_size: float = 0,
) -> dict:
    """Precomputed proposals (``proposal_boxes``, ``proposal_bbox_mode``, ``proposal_objectness_logits``)
    -> a new dict with ``proposals`` (Instances with ``proposal_boxes``, ``objectness_logits``, at most
    ``proposal_topk``) instead of the three raw keys."""
    if "proposal_boxes" not in dataset_dict:
        return dataset_dict
    out = dict(dataset_dict)
    raw = BoxMode.convert(
        np.asarray(out.pop("proposal_boxes"), dtype=np.float64),
        out.pop("proposal_bbox_mode"),
        BoxMode.XYXY_ABS,
    )
    boxes = Boxes(torch.as_tensor(transforms.apply_box(raw), dtype=torch.float32)).clipped(image_shape)
    logits = torch.as_tensor(np.asarray(out.pop("proposal_objectness_logits"), dtype=np.float32))
    keep = boxes.nonempty(threshold=min_box_size)
    proposals = Instances(image_shape)
    proposals.proposal_boxes = boxes[keep][:proposal_topk]
    proposals.objectness_logits = logits[keep][:proposal_topk]
    out["proposals"] = proposals
    return out


def check_metadata_consistency(key: str, dataset_names: Sequence[str]) -> None:
    """Raise ``ValueError`` if the datasets' metadata disagree on ``key`` (missing everywhere is fine)."""
    if not dataset_names:
        return
    values = [MetadataCatalog.get(n).get(key) for n in dataset_names]
    for name, value in zip(dataset_names, values, strict=True):
        if value != values[0]:
            raise ValueError(
                f"metadata {key!r} differs between datasets {dataset_names[0]!r} ({values[0]!r}) "
                f"and {name!r} ({value!r})"
            )


def create_keypoint_hflip_indices(dataset_names: str | Sequence[str]) -> list[int]:
    """Index map for horizontal flips from the datasets' ``keypoint_names`` and ``keypoint_flip_map``."""
    names_list = [dataset_names] if isinstance(dataset_names, str) else list(dataset_names)
    check_metadata_consistency("keypoint_names", names_list)
    check_metadata_consistency("keypoint_flip_map", names_list)
    meta = MetadataCatalog.get(names_list[0])
    names = list(meta.keypoint_names)
    flip_map = dict(meta.keypoint_flip_map)
    flip_map.update({v: k for k, v in flip_map.items()})
    flipped = [flip_map.get(n, n) for n in names]
    return [names.index(n) for n in flipped]


def build_augmentation(config: InputConfig, is_train: bool) -> list[T.Augmentation]:
    """``[RandomCrop (train, when config.crop is set), ResizeShortestEdge, RandomFlip (train, unless
    random_flip is "none")]`` as detectron2 builds them."""
    augs: list[T.Augmentation] = []
    if is_train:
        if config.crop is not None:
            augs.append(T.RandomCrop(config.crop.type, config.crop.size))
        augs.append(
            T.ResizeShortestEdge(config.min_size_train, config.max_size_train, config.min_size_train_sampling)
        )
        if config.random_flip != "none":
            augs.append(
                T.RandomFlip(
                    horizontal=config.random_flip == "horizontal", vertical=config.random_flip == "vertical"
                )
            )
    else:
        augs.append(T.ResizeShortestEdge(config.min_size_test, config.max_size_test, "choice"))
    return augs
