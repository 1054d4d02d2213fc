"""Running an exported file: the same call for every format, on one image ``Tensor[C, H, W]`` (or, for
an export with a dynamic batch, a batch ``Tensor[B, C, H, W]`` of same-size images).

Needs only torch and dt-ops (and onnxruntime for ONNX), as a deployment has: ``dt_ops`` is imported
so that ``torch.ops.dt.*`` exist when a ``.pt2`` or TorchScript file is loaded. Keypoint models also
need dt-structures, whose ``heatmaps_to_keypoints`` decodes their heatmaps (:func:`decode_outputs`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

__all__ = ["Runner", "decode_outputs", "load_exported"]

Runner = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def decode_outputs(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``outputs`` with ``keypoint_heatmaps`` ``[R, K, S, S]`` decoded in their ``boxes`` to
    ``keypoints`` ``[R, K, 3]`` (x, y, score; the eager model's decoding), others unchanged."""
    if "keypoint_heatmaps" not in outputs:
        return outputs
    from dt_structures import heatmaps_to_keypoints

    decoded = dict(outputs)
    heatmaps = decoded.pop("keypoint_heatmaps")
    decoded["keypoints"] = heatmaps_to_keypoints(heatmaps, outputs["boxes"])[:, :, [0, 1, 3]]
    return decoded


def load_exported(
    path: str | os.PathLike[str],
    format: str,
    output_names: Sequence[str],
    *,
    threads: int | None = None,
    aot_inductor: bool = False,
) -> Runner:
    """A function running the exported model at ``path`` on an image ``Tensor[C, H, W]`` float32 (a
    batch ``[B, C, H, W]`` for a batched export: its JSON's ``input.batched``) and returning its
    outputs by name (CPU tensors, decoded by :func:`decode_outputs`). ``threads`` sets
    onnxruntime's intra-op threads (torch formats use ``torch.set_num_threads``). ``aot_inductor``:
    the ``.pt2`` is an AOTInductor package (its JSON's ``aot_inductor``), run on contiguous inputs
    (its compiled code assumes the strides it was compiled for)."""
    path = os.fspath(path)
    names = list(output_names)
    if format == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run_onnx(image: torch.Tensor) -> dict[str, torch.Tensor]:
            outputs = session.run(names, {input_name: image.numpy()})
            return decode_outputs({n: torch.from_numpy(o) for n, o in zip(names, outputs, strict=True)})

        return run_onnx
    import dt_ops  # noqa: F401  (registers torch.ops.dt.*)

    if format == "exported-program" and aot_inductor:
        from torch._inductor import aoti_load_package

        package = aoti_load_package(path)

        def run_aoti(image: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                return decode_outputs(dict(zip(names, package(image.contiguous()), strict=True)))

        return run_aoti
    if format == "exported-program":
        module = torch.export.load(path).module()
    elif format == "torchscript":
        module = torch.jit.load(path)
    else:
        raise ValueError(f"unknown format {format!r}")

    def run_torch(image: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return decode_outputs(dict(zip(names, module(image), strict=True)))

    return run_torch
