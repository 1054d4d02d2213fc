"""``dt export`` of a narrow ``PanopticDeepLab`` (registered through the ``dt_export.family`` entry
point), post-processing included: the graph and every exported format give the eager semantic labels
and panoptic ids on two image sizes (>= 99.9 % of pixels)."""

from __future__ import annotations

import pytest
import torch
from test_model import _tiny

from dt_config import structure
from dt_export import export_model
from dt_export.check import compare_outputs
from dt_export.families import exportable_graph
from dt_export.runtime import load_exported
from dt_models import ModelConfig, build_model


def _model_and_images() -> tuple[torch.nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model(structure(ModelConfig, _tiny() | {"center_threshold": 0.1})).eval()
    generator = torch.Generator().manual_seed(1)
    return model, [torch.rand(3, *size, generator=generator) * 255 for size in ((96, 128), (120, 88))]


def _check(graph, images, run) -> None:
    for image in images:
        expected = graph.eager_outputs(image)
        assert len(expected["panoptic_seg"].unique()) > 2, "too few segments for a meaningful comparison"
        comparison = compare_outputs(expected, run(image), tuple(image.shape[-2:]))
        assert comparison.ok and "panoptic_seg" in comparison.fields, comparison.describe()


def test_the_entry_point_family_exports_the_eager_panoptic_ids():
    model, images = _model_and_images()
    graph = exportable_graph(model, "onnx").eval()
    assert graph.output_names == ("sem_seg", "panoptic_seg")
    _check(graph, images, graph.named_outputs)


def test_square_padding_exports_the_eager_panoptic_ids():
    """dt-export's own padding check covers this family: a square pad (ViTDet's) is reproduced."""
    model, images = _model_and_images()
    model.padding_constraints = {"square_size": 160}
    graph = exportable_graph(model, "onnx").eval()
    assert graph.square_size == 160
    _check(graph, images, graph.named_outputs)


@pytest.mark.slow
@pytest.mark.parametrize("format", ["onnx", "exported-program", "torchscript"])
def test_exported_panoptic_deeplab_gives_the_eager_panoptic_ids(format, tmp_path):
    model, images = _model_and_images()
    result = export_model(model, format, tmp_path / "out", images[0], dynamic=True)
    graph = exportable_graph(model, format)
    _check(graph, images, load_exported(result.model_file, format, graph.output_names))
