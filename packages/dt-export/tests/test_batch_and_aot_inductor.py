"""A dynamic batch (``--dynamic-batch``) for the batch-agnostic semantic families and AOTInductor
compilation (``--aot-inductor``) where it is verified: each batched file, run on batches of
different same-size images at two sizes (and on other batch sizes), gives each image the eager
model's semantic labels on that image alone (>= 99.9 % of pixels), and each AOTInductor package the
eager outputs on two sizes (``dt_export.check`` tolerances); other families, formats and
TorchScript scripting are refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAMILIES, case_model_and_images
from isolated_site import build_isolated_site
from narrow_models import narrow_model

from dt_engine.cli import main
from dt_export import export_model
from dt_export.check import compare_outputs
from dt_export.families import exportable_graph
from dt_export.predict_backend import ExportedModel
from dt_export.runtime import decode_outputs, load_exported

HERE = Path(__file__).resolve().parent
CONFIG, WEIGHTS, _ = FAMILIES["mask_rcnn_R_50_FPN"]


def _semantic_fpn() -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """The narrow Semantic FPN and its two test images (sizes 300x420 and 392x330)."""
    return case_model_and_images("semantic_fpn")


def _assert_each_image_is_eager(graph, batch: torch.Tensor, sem_seg: torch.Tensor) -> None:
    """``sem_seg`` ``[B, C, H, W]`` of ``batch`` ``[B, 3, H, W]``: image by image the eager labels."""
    assert sem_seg.shape[0] == batch.shape[0] and sem_seg.shape[-2:] == batch.shape[-2:]
    for image, output in zip(batch, sem_seg, strict=True):
        comparison = compare_outputs(graph.eager_outputs(image), {"sem_seg": output}, tuple(image.shape[-2:]))
        assert comparison.ok, comparison.describe()


def _batches(images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Batches of 1 and 3 different images at each test size (the export is checked on 2)."""
    batches = []
    for image in images:
        variants = [image, image.flip(-2), 255 - image]
        batches += [torch.stack(variants[:1]), torch.stack(variants)]
    return batches


def test_the_batched_graph_gives_each_image_the_eager_labels():
    model, images = _semantic_fpn()
    graph = exportable_graph(model, "onnx", dynamic_batch=True).eval()
    assert graph.batched
    for batch in _batches(images):
        _assert_each_image_is_eager(graph, batch, graph.named_outputs(batch)["sem_seg"])


@pytest.mark.parametrize("family", ["retinanet", "mask_rcnn_c4", "panoptic_fpn"])
def test_a_dynamic_batch_is_refused_for_per_image_families_in_one_line(family):
    with pytest.raises(ValueError) as err:
        exportable_graph(narrow_model(family), "exported-program", dynamic_batch=True)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("dt export --dynamic-batch does not support ")
    assert message.endswith(
        "supported: SemanticSegmentor (Semantic FPN), DeepLabSegmentor (DeepLabV3, DeepLabV3+)"
    )


def test_aot_inductor_is_refused_for_unverified_families_and_other_formats_in_one_line():
    refused = r"^dt export --aot-inductor is not verified for GeneralizedRCNN; supported: RetinaNet, "
    refused += r"FCOS, SemanticSegmentor \(Semantic FPN\)$"
    with pytest.raises(ValueError, match=refused):
        exportable_graph(narrow_model("keypoint_rcnn"), "exported-program", aot_inductor=True)
    model, _ = _semantic_fpn()
    with pytest.raises(ValueError, match=r"^dt export --aot-inductor compiles an exported program, not onnx"):
        exportable_graph(model, "onnx", aot_inductor=True)


@pytest.mark.parametrize(
    "options,expected",
    [
        (["--format", "torchscript-script"], "TorchScript scripting is not offered"),
        (["--format", "onnx", "--aot-inductor"], "--aot-inductor compiles an exported program, not onnx"),
        (
            ["--format", "exported-program", "--dynamic-batch"],
            "--dynamic-batch does not support GeneralizedRCNN",
        ),
    ],
)
def test_the_cli_refuses_scripting_and_unsupported_options_in_one_line(tmp_path, capsys, options, expected):
    code = main(["export", "--config", str(CONFIG), "--weights", str(WEIGHTS), "--output",
                 str(tmp_path / "out"), *options])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("format", ["onnx", "exported-program", "torchscript"])
def test_a_dynamic_batch_export_gives_each_image_the_eager_labels(format, tmp_path):
    model, images = _semantic_fpn()
    result = export_model(model, format, tmp_path / "out", images[0], dynamic=True, dynamic_batch=True)
    spec = json.loads(result.spec_file.read_text())
    assert spec["input"]["batched"] and spec["input"]["shape"] == ["B", "C", "height", "width"]
    assert spec["outputs"][0]["shape"] == ["B", "C", "height", "width"]
    checked = [(tuple(c["size"]), c["index"]) for c in spec["check"]]
    assert len({size for size, _ in checked}) == 2 and [i for _, i in checked] == [0, 1, 0, 1]
    graph = exportable_graph(model, format, dynamic_batch=True)
    run = load_exported(result.model_file, format, graph.output_names)
    for batch in _batches(images):
        _assert_each_image_is_eager(graph, batch, run(batch)["sem_seg"])
    # dt predict --backend: images of two sizes, the same-size ones run as one batch
    backend = ExportedModel(result.model_file, format)
    inputs = [
        {"image": images[0]},
        {"image": images[1], "height": 500, "width": 420},
        {"image": 255 - images[0]},
    ]
    with torch.no_grad():
        expected = [model([item])[0]["sem_seg"].argmax(0) for item in inputs]
    for item, want, got in zip(inputs, expected, backend(inputs), strict=True):
        agreement = float((got["sem_seg"].argmax(0) == want).float().mean())
        assert agreement >= 0.999, (tuple(item["image"].shape), agreement)


def _assert_eager(graph, image: torch.Tensor, outputs: dict | tuple) -> None:
    """``outputs`` of ``image`` (by name, or the graph's tuple): the eager model's within tolerance."""
    if not isinstance(outputs, dict):
        outputs = dict(zip(graph.output_names, outputs, strict=True))
    expected = graph.eager_outputs(image)
    assert len(expected.get("boxes", [0])) > 0, "no detections: the comparison would be empty"
    comparison = compare_outputs(expected, decode_outputs(outputs), tuple(image.shape[-2:]))
    assert comparison.ok, comparison.describe()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["semantic_fpn", "retinanet", "fcos"])
def test_aot_inductor_package_matches_eager_on_two_sizes_in_a_fresh_process(family, tmp_path):
    """Compiles a narrow model with dynamic shapes (on one thread of an AVX2 core: Semantic FPN about
    2 minutes, RetinaNet about 6, FCOS about 2.5)."""
    model, images = case_model_and_images(family)
    result = export_model(
        model, "exported-program", tmp_path / "out", images[0], dynamic=True, aot_inductor=True
    )
    assert result.model_file.name == "model.aoti.pt2" and all(c.ok for c in result.comparisons)
    spec = json.loads(result.spec_file.read_text())
    assert spec["file"] == "model.aoti.pt2" and "contiguous" in spec["aot_inductor"]
    graph = exportable_graph(model, "exported-program")
    # the test images are permuted HWC arrays (not contiguous): the runtime makes them contiguous
    assert not images[1].is_contiguous()
    run = load_exported(result.model_file, "exported-program", graph.output_names, aot_inductor=True)
    for image in images:
        _assert_eager(graph, image, run(image))
    torch.save(images, tmp_path / "images.pt")
    site = build_isolated_site(tmp_path / "site", ["torch", "dt-ops"])
    command = [
        sys.executable, "-I", "-S", str(HERE / "fresh_process_run.py"), str(site), str(result.model_file),
        "aot-inductor", str(tmp_path / "images.pt"), str(tmp_path / "outputs.pt"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = torch.load(tmp_path / "outputs.pt", weights_only=True)
    for image, output in zip(images, outputs, strict=True):
        _assert_eager(graph, image, output)


def test_aot_inductor_without_a_cpp_compiler_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    config, weights, overrides = FAMILIES["retinanet_R_50_FPN"]
    code = main(["export", "--format", "exported-program", "--aot-inductor", "--config", str(config),
                 "--weights", str(weights), "--output", str(tmp_path / "out"), *overrides])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs a C++ compiler: no-such-compiler" in err[0], err
    assert not (tmp_path / "out").exists()
