"""``dt export`` of a narrow ``DeepLabSegmentor`` (the family dt-deeplab registers through the
``dt_export.family`` entry point): the graph and every exported format give the eager semantic labels
on two image sizes (>= 99.9 % of pixels), also as a batch of same-size images
(``--dynamic-batch``)."""

from __future__ import annotations

import pytest
import torch
from deeplab_helpers import tiny_model_config

from dt_config import structure
from dt_export import export_model
from dt_export.check import compare_outputs
from dt_export.families import exportable_graph
from dt_export.runtime import load_exported
from dt_models import ModelConfig, build_model


def _model_and_images() -> tuple[torch.nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model(structure(ModelConfig, tiny_model_config())).eval()
    generator = torch.Generator().manual_seed(1)
    return model, [torch.rand(3, *size, generator=generator) * 255 for size in ((96, 128), (120, 88))]


def _check(graph, images, run) -> None:
    for image in images:
        comparison = compare_outputs(graph.eager_outputs(image), run(image), tuple(image.shape[-2:]))
        assert comparison.ok and "sem_seg" in comparison.fields, comparison.describe()


def test_the_entry_point_family_exports_the_eager_labels():
    model, images = _model_and_images()
    graph = exportable_graph(model, "onnx").eval()
    assert graph.output_names == ("sem_seg",)
    _check(graph, images, graph.named_outputs)


def _check_batch(graph, images, run) -> None:
    """Batches of 3 different same-size images at each size: image by image the eager labels."""
    for image in images:
        batch = torch.stack([image, image.flip(-1), 255 - image])
        outputs = run(batch)["sem_seg"]
        assert outputs.shape[:1] == (3,)
        for one, output in zip(batch, outputs, strict=True):
            comparison = compare_outputs(graph.eager_outputs(one), {"sem_seg": output}, tuple(one.shape[-2:]))
            assert comparison.ok, comparison.describe()


def test_the_entry_point_family_exports_a_batch():
    model, images = _model_and_images()
    graph = exportable_graph(model, "onnx", dynamic_batch=True).eval()
    assert graph.batched
    _check_batch(graph, images, graph.named_outputs)


@pytest.mark.slow
def test_a_dynamic_batch_export_of_deeplab_gives_the_eager_labels(tmp_path):
    model, images = _model_and_images()
    result = export_model(
        model, "exported-program", tmp_path / "out", images[0], dynamic=True, dynamic_batch=True
    )
    graph = exportable_graph(model, "exported-program", dynamic_batch=True)
    _check_batch(graph, images, load_exported(result.model_file, "exported-program", graph.output_names))


@pytest.mark.slow
@pytest.mark.parametrize("format", ["onnx", "exported-program", "torchscript"])
def test_exported_deeplab_gives_the_eager_labels(format, tmp_path):
    model, images = _model_and_images()
    result = export_model(model, format, tmp_path / "out", images[0], dynamic=True)
    graph = exportable_graph(model, format)
    _check(graph, images, load_exported(result.model_file, format, graph.output_names))
