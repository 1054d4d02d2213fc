"""Pre-flight checks of registered datasets, run before anything is written.

``check_dataset`` loads a dataset's dicts (the loaders validate every annotation: unknown
``category_id``, negative box sizes, malformed JSON, ...), refuses an empty dataset, checks that
every image (and label map) file exists and that each image's header gives the record's
``height``/``width`` (EXIF rotation applied); with ``read_images`` it decodes every image instead
(truncated and corrupt files are found too). Every problem is one line naming the
file, the record, what is wrong and what was expected; ``dt train``/``dt eval`` stop at the first
(``InputError``), ``dt data check`` lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from PIL import Image, ImageOps, UnidentifiedImageError

from dt_data import DatasetCatalog, MetadataCatalog

from .errors import InputError

__all__ = ["DatasetReport", "ImageProblem", "check_dataset", "load_dataset_dicts"]

_LOAD_ERRORS = (ValueError, TypeError, KeyError, IndexError, OSError, AttributeError)
_FILE_KEYS = ("file_name", "sem_seg_file_name", "pan_seg_file_name")


class ImageProblem(InputError):
    """A missing, unreadable or wrongly sized image (which ``data.loader.skip_bad_images`` may skip)."""


@attrs.frozen(kw_only=True)
class DatasetReport:
    """What ``check_dataset`` found in one dataset: counts and the problem lines."""

    name: str
    images: int
    annotations: int
    classes: int | None
    problems: tuple[str, ...] = ()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = text[0] if text else ""
    if isinstance(err, KeyError):
        return f"a record lacks the key {message} ({type(err).__name__})"
    return message or type(err).__name__


def load_dataset_dicts(name: str) -> list[dict]:
    """``DatasetCatalog.get(name)`` with any loading failure as one-line ``InputError``, and an empty
    dataset refused."""
    try:
        dicts = DatasetCatalog.get(name)
    except _LOAD_ERRORS as err:
        raise InputError(f"dataset {name!r}: {_first_line(err)}") from None
    if not dicts:
        meta = MetadataCatalog.get(name)
        source = meta.get("json_file") or meta.get("image_root") or meta.get("dirname") or "its source"
        raise InputError(f"dataset {name!r} is empty: {source} gives no images (expected at least one)")
    return dicts


def _where(name: str, record: dict[str, Any]) -> str:
    source = MetadataCatalog.get(name).get("json_file")
    image_id = record.get("image_id", "?")
    return f"{source}: image id={image_id}" if source else f"dataset {name!r}: image id={image_id}"


_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_EXIF_IN_HEADER = ("JPEG", "MPO", "TIFF", "WEBP")  # PNG's EXIF may follow the pixels: not read here


def _check_image(path: str, record: dict[str, Any], decode: bool) -> str | None:
    """The problem with the image ``path`` (its header only unless ``decode``), or None."""
    try:
        with Image.open(path) as image:
            if decode:
                image = ImageOps.exif_transpose(image)
                image.load()
                width, height = image.size
            else:
                width, height = image.size
                if image.format in _EXIF_IN_HEADER and image.getexif().get(0x0112) in _ROTATED:
                    width, height = height, width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return f"{path} cannot be read ({err}); expected a complete image file"
    expected = (record.get("width", width), record.get("height", height))
    if (width, height) != expected:
        return (
            f"{path} is {width}x{height} (w x h) but the annotation says {expected[0]}x{expected[1]}; "
            "expected the sizes to agree"
        )
    return None


def check_dataset(
    name: str,
    *,
    read_images: bool = False,
    stop_at_first: bool = True,
    skip_images: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = iter,
) -> DatasetReport:
    """Check the registered dataset ``name`` (see the module docstring).

    ``stop_at_first`` raises ``InputError`` (``ImageProblem`` for an image) at the first problem;
    otherwise, and for image problems with ``skip_images``, the problems are returned in the report
    (a dataset that cannot be loaded at all still raises).
    """
    dicts = load_dataset_dicts(name)
    problems: list[str] = []
    for record in progress(dicts):
        for key in _FILE_KEYS:
            path = record.get(key)
            if path is None:
                continue
            if not os.path.isfile(path):
                problem = f"{_where(name, record)}: {key} {path} does not exist (expected an existing file)"
            elif key == "file_name":
                detail = _check_image(path, record, decode=read_images)
                problem = f"{_where(name, record)}: {detail}" if detail else ""
            else:
                problem = ""
            if problem and stop_at_first and not (skip_images and key == "file_name"):
                raise ImageProblem(problem) if key == "file_name" else InputError(problem)
            if problem:
                problems.append(problem)
    classes = MetadataCatalog.get(name).get("thing_classes") or MetadataCatalog.get(name).get("stuff_classes")
    return DatasetReport(
        name=name,
        images=len(dicts),
        annotations=sum(len(d.get("annotations", ()) or d.get("segments_info", ())) for d in dicts),
        classes=None if classes is None else len(classes),
        problems=tuple(problems),
    )
