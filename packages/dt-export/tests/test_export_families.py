"""Every family exported to every format, run outside dt (onnxruntime; a fresh Python with only torch
and dt-ops, keypoint heatmaps decoded afterwards by ``decode_outputs``) on two images of different
sizes, against the eager model: same count and classes, boxes <= 1e-2 px, scores <= 1e-4, masks
>= 99.9 % of pixels, keypoints <= 1e-2 px, semantic labels and panoptic ids >= 99.9 % of pixels
(``dt_export.check``). A family whose ops have no standard ONNX operator is refused ONNX in one
line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from conftest import FAMILIES, case_model_and_images, export_args
from isolated_site import build_isolated_site

from dt_export import export_model
from dt_export.check import compare_outputs
from dt_export.experiment import export_experiment
from dt_export.export import MAX_SIDE
from dt_export.families import exportable_graph
from dt_export.runtime import decode_outputs, load_exported

HERE = Path(__file__).resolve().parent
ONNX_REFUSED = {"rotated_faster_rcnn"}  # rotated NMS and ROIAlignRotated have no standard ONNX op


def _export(family: str, format: str, output: Path):
    """Export ``family`` (its golden config through ``dt export``'s path, or its narrow model) and
    return the result, the eager model and the two test images."""
    model, images = case_model_and_images(family)
    if family in FAMILIES:
        result = export_experiment(export_args(family, format, output))
    else:
        result = export_model(model, format, output, images[0], dynamic=True)
    spec = json.loads(result.spec_file.read_text())["input"]
    square = exportable_graph(model, format).square_size  # a network input of one size (ViTDet's)
    assert (spec["square_size"], spec["max_side"]) == ((square, square) if square else (None, MAX_SIDE))
    return result, model, images


def _check_against_eager(model, images, outputs: list) -> None:
    """``outputs``: per image, the exported model's output tuple or its (decoded) outputs by name."""
    sizes = {tuple(image.shape[-2:]) for image in images}
    assert len(sizes) == len(images), "the test images must differ in size"
    graph = exportable_graph(model, "exported-program")
    for image, output in zip(images, outputs, strict=True):
        expected = graph.eager_outputs(image)
        boxes = expected.get("boxes", expected.get("rotated_boxes"))
        if boxes is not None:
            assert len(boxes) > 0, "no detections: the comparison would be empty"
        if "panoptic_seg" in expected:
            assert len(expected["panoptic_seg"].unique()) > 1, "one segment: the comparison would be weak"
        if not isinstance(output, dict):  # a fresh process returns the graph's tuple
            output = dict(zip(graph.output_names, output, strict=True))
        actual = decode_outputs(output)
        comparison = compare_outputs(expected, actual, tuple(image.shape[-2:]))
        assert comparison.ok, comparison.describe()


def test_graph_matches_the_eager_model(family):
    """The graph module itself (uncaptured) gives the eager outputs: the fast check of its logic."""
    model, images = case_model_and_images(family)
    graph = exportable_graph(model, "exported-program").eval()
    _check_against_eager(model, images, [graph.named_outputs(image) for image in images])


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_with_standard_ops_only(family, tmp_path):
    if family in ONNX_REFUSED:
        with pytest.raises(ValueError, match=r"^dt export does not support .* to onnx; supported: "):
            _export(family, "onnx", tmp_path / "out")
        assert not (tmp_path / "out").exists()
        return
    result, model, images = _export(family, "onnx", tmp_path / "out")
    graph = onnx.load(str(result.model_file))
    assert graph.opset_import[0].version >= 17
    domains = {node.domain for node in graph.graph.node} | {f.domain for f in graph.functions}
    assert domains <= {"", "ai.onnx"}, f"non-standard op domains: {domains}"
    run = load_exported(result.model_file, "onnx", exportable_graph(model, "onnx").output_names)
    _check_against_eager(model, images, [run(image) for image in images])


@pytest.mark.slow
@pytest.mark.parametrize("format", ["exported-program", "torchscript"])
def test_runs_in_a_fresh_process_with_only_torch_and_dt_ops(family, format, tmp_path):
    result, model, images = _export(family, format, tmp_path / "out")
    torch.save(images, tmp_path / "images.pt")
    site = build_isolated_site(tmp_path / "site", ["torch", "dt-ops"])
    command = [
        sys.executable, "-I", "-S", str(HERE / "fresh_process_run.py"), str(site), str(result.model_file),
        format, str(tmp_path / "images.pt"), str(tmp_path / "outputs.pt"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = torch.load(tmp_path / "outputs.pt", weights_only=True)
    _check_against_eager(model, images, outputs)
