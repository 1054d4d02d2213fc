"""Every family exported to every format, run outside dt (onnxruntime; a fresh Python with only torch
and dt-ops) on two images of different sizes, against the eager model: same count and classes, boxes
<= 1e-2 px, scores <= 1e-4, masks >= 99.9 % of pixels (``dt_export.check``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from conftest import eager_model, export_args, sample_images
from isolated_site import build_isolated_site

from dt_export.check import compare_detections
from dt_export.experiment import export_experiment
from dt_export.export import eager_detections
from dt_export.runtime import load_exported

HERE = Path(__file__).resolve().parent


def _names(model) -> list[str]:
    return ["boxes", "scores", "classes", *(["masks"] if "mask" in model.roi_heads.branches else [])]


def _check_against_eager(model, images, outputs, names) -> None:
    sizes = {tuple(image.shape[-2:]) for image in images}
    assert len(sizes) == len(images), "the test images must differ in size"
    for image, output in zip(images, outputs, strict=True):
        expected = eager_detections(model, image, names)
        assert len(expected["boxes"]) > 0, "no detections: the comparison would be empty"
        comparison = compare_detections(
            expected, dict(zip(names, output, strict=True)), tuple(image.shape[-2:])
        )
        assert comparison.ok, comparison.describe()


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_with_standard_ops_only(family, tmp_path):
    result = export_experiment(export_args(family, "onnx", tmp_path / "out"))
    graph = onnx.load(str(result.model_file))
    assert graph.opset_import[0].version >= 17
    domains = {node.domain for node in graph.graph.node} | {f.domain for f in graph.functions}
    assert domains <= {"", "ai.onnx"}, f"non-standard op domains: {domains}"
    op_types = {node.op_type for node in graph.graph.node}
    assert {"RoiAlign", "NonMaxSuppression"} <= op_types
    model, predictor = eager_model(family)
    names = _names(model)
    run = load_exported(result.model_file, "onnx", names)
    images = sample_images(predictor)
    _check_against_eager(model, images, [tuple(run(image)[n] for n in names) for image in images], names)


@pytest.mark.slow
@pytest.mark.parametrize("format", ["exported-program", "torchscript"])
def test_runs_in_a_fresh_process_with_only_torch_and_dt_ops(family, format, tmp_path):
    result = export_experiment(export_args(family, format, tmp_path / "out"))
    model, predictor = eager_model(family)
    images = sample_images(predictor)
    torch.save(images, tmp_path / "images.pt")
    site = build_isolated_site(tmp_path / "site", ["torch", "dt-ops"])
    command = [
        sys.executable, "-I", "-S", str(HERE / "fresh_process_run.py"), str(site), str(result.model_file),
        format, str(tmp_path / "images.pt"), str(tmp_path / "outputs.pt"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = torch.load(tmp_path / "outputs.pt", weights_only=True)
    _check_against_eager(model, images, outputs, _names(model))
