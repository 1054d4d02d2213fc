"""``dt predict --video in.mp4``: the predictor on every frame, an annotated copy of the video and the
per-frame results.

``<output>/<video stem>.mp4`` (codec ``mp4v``, the input's frame rate and size) holds each frame drawn
through the ``PredictionOutput`` handlers, as ``dt predict`` draws images; the handlers' results files
(``coco_instances_results.json``, ...) hold the records of every frame, in the format of image
predictions with ``image_id`` = ``frame`` = the frame's index from 0 and ``file_name`` = the video.
Both are written only once every frame has run (the video under a temporary name until then), so a
failure leaves earlier outputs as they were. Progress (frames done / total) goes to stderr.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import attrs
import cv2
import numpy as np
from tqdm import tqdm

from dt_data import Metadata

from .errors import InputError
from .prediction_outputs import PredictionContext, PredictionRecorder
from .predictor import Predictor

__all__ = ["VIDEO_CODEC", "VideoInfo", "check_video", "predict_video"]

logger = logging.getLogger(__name__)

VIDEO_CODEC = "mp4v"
DEFAULT_FPS = 30.0
"""The frame rate written when the input does not state one."""


@attrs.frozen
class VideoInfo:
    """A readable video: ``fps``, frame ``width`` x ``height`` and ``frames`` (None when the container
    does not say)."""

    path: Path
    fps: float
    width: int
    height: int
    frames: int | None


def _open(path: Path) -> tuple[cv2.VideoCapture, np.ndarray]:
    """The capture and its first frame; ``InputError`` for a missing or undecodable file."""
    if not path.is_file():
        raise InputError(f"video not found: {path}")
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise InputError(
            f"cannot read video {path}: expected a video file OpenCV can decode (e.g. .mp4, .avi)"
        )
    return capture, first


def check_video(path: str | os.PathLike[str]) -> VideoInfo:
    """What ``predict_video`` will read from ``path``, checked before anything is written."""
    capture, first = _open(Path(path))
    try:
        return _info(Path(path), capture, first)
    finally:
        capture.release()


def _info(path: Path, capture: cv2.VideoCapture, first: np.ndarray) -> VideoInfo:
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and fps > 0):
        logger.warning("%s states no frame rate; writing %g fps", path, DEFAULT_FPS)
        fps = DEFAULT_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    height, width = first.shape[:2]
    return VideoInfo(path, fps, width, height, count if count > 0 else None)


def _frames(capture: cv2.VideoCapture, first: np.ndarray) -> Iterator[np.ndarray]:
    frame: np.ndarray | None = first
    while frame is not None:
        yield frame  # BGR uint8 [H, W, 3]
        ok, frame = capture.read()
        frame = frame if ok else None


def predict_video(
    predictor: Predictor,
    video: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    metadata: Metadata | None = None,
    confidence: float = 0.5,
    progress: TextIO | None = sys.stderr,
) -> tuple[Path, int, list[dict[str, Any]]]:
    """Run ``predictor`` on every frame of ``video`` (see the module docstring); ``progress=None``
    shows none. Returns the annotated video's path, the number of frames and the instance records.

    A frame the model cannot run on is an ``InputError`` (naming the frame); nothing is written then.
    """
    from .run import one_line  # run imports this module lazily

    path, out = Path(video), Path(output)
    capture, first = _open(path)
    info = _info(path, capture, first)
    final = out / f"{path.stem}.mp4"
    partial = out / f".{path.stem}.partial.mp4"  # the extension picks the container
    writer = cv2.VideoWriter(
        str(partial), cv2.VideoWriter_fourcc(*VIDEO_CODEC), info.fps, (info.width, info.height)
    )
    recorder = PredictionRecorder(PredictionContext(metadata, confidence))
    done = 0
    try:
        if not writer.isOpened():
            raise InputError(f"cannot write video {partial} (codec {VIDEO_CODEC})")
        with tqdm(
            total=info.frames, unit="frame", desc="dt predict", file=progress, disable=progress is None
        ) as bar:
            for index, frame in enumerate(_frames(capture, first)):
                try:
                    outputs = predictor(frame)
                except (RuntimeError, ValueError) as err:
                    raise InputError(
                        f"cannot run the model on frame {index} ({info.width}x{info.height}) of {path} "
                        f"({one_line(err)})"
                    ) from None
                drawing = recorder.add(frame, outputs, index, file_name=str(path), frame=index)  # RGB
                writer.write(np.ascontiguousarray(drawing[:, :, ::-1]))
                done += 1
                bar.update()
    except BaseException:
        writer.release()
        partial.unlink(missing_ok=True)
        raise
    finally:
        capture.release()
    writer.release()
    os.replace(partial, final)
    recorder.write(out)
    return final, done, recorder.results("instances")
