"""``dt_zoo.get``: a zoo entry served by the local server builds and loads like the same file by hand."""

import io
import json

import pytest
import torch

import dt_zoo
from dt_engine.config.experiment import load_experiment
from dt_engine.weights import load_model_weights
from dt_models import build_model
from dt_zoo import ZooError

TINY = """\
model:
  backbone:
    resnet: {depth: 50, stem_out_channels: 8, res2_out_channels: 16, width_per_group: 4, norm: BN}
    out_channels: 8
  proposal_generator: {pre_nms_topk_test: 50, post_nms_topk_test: 10}
  roi_heads:
    num_classes: 3
    box_head: {fc_dim: 16}
    score_thresh_test: 0.0
data:
  datasets: {train: [shapes_train], test: [shapes_val]}
  input: {min_size_test: 64, max_size_test: 64}
"""


def _weights_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict()}, buffer)
    return buffer.getvalue()


@pytest.fixture
def tiny_zoo(server, tmp_path):
    """A manifest of one detector whose config is a tiny file here and whose weights the server holds."""
    config = tmp_path / "tiny_rcnn.yaml"
    config.write_text(TINY)
    torch.manual_seed(0)
    trained = build_model(load_experiment(config).model)
    server.files["/d2/Tiny/rcnn/model_final.pth"] = _weights_bytes(trained)
    wrong = build_model(load_experiment(config, ["model.roi_heads.num_classes=5"]).model)
    server.files["/d2/Tiny/wrong/model_final.pth"] = _weights_bytes(wrong)
    entries = [
        {
            "name": f"Tiny/{name}",
            "task": "detection",
            "label": name,
            "section": "tests",
            "config": str(config),  # absolute: a manifest of one's own may point anywhere
            "weights": {"urls": [server.url(f"/d2/Tiny/{name}/model_final.pth")]},
        }
        for name in ("rcnn", "wrong")
    ]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"version": 1, "entries": entries}))
    return dt_zoo.load_manifest(path), config


def _outputs(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, 64, 64)).float()
    with torch.no_grad():
        instances = model([{"image": image}])[0]["instances"]
    return {"boxes": instances.pred_boxes.tensor, "scores": instances.scores}


def test_get_gives_the_model_of_the_file_loaded_by_hand(tiny_zoo):
    manifest, config = tiny_zoo
    model = dt_zoo.get("Tiny/rcnn", manifest=manifest, progress=False)
    assert not model.training
    by_hand = build_model(load_experiment(config).model)
    load_model_weights(by_hand, dt_zoo.get_weights("Tiny/rcnn", manifest=manifest))
    expected, got = _outputs(by_hand.eval()), _outputs(model)
    assert len(expected["scores"]) > 0
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    untrained = dt_zoo.get("Tiny/rcnn", trained=False, manifest=manifest)
    assert not torch.equal(
        untrained.roi_heads.box_predictor.cls_score.weight, model.roi_heads.box_predictor.cls_score.weight
    )


def test_get_refuses_weights_that_do_not_fit(tiny_zoo):
    manifest, _ = tiny_zoo
    with pytest.raises(
        ZooError, match="^zoo model 'Tiny/wrong': .* 0 model tensors unset and 4 of another shape"
    ):
        dt_zoo.get("Tiny/wrong", manifest=manifest, progress=False)


def test_get_names_the_entry_and_suggests(tiny_zoo):
    manifest, _ = tiny_zoo
    with pytest.raises(ZooError, match="^unknown zoo model 'Tiny/rcn' \\(did you mean 'Tiny/rcnn'"):
        dt_zoo.get("Tiny/rcn", manifest=manifest)
    with pytest.raises(ZooError, match="has no dt config \\(an ImageNet backbone has none\\)"):
        dt_zoo.get_config("ImageNetPretrained/MSRA/R-50")


def test_offline_without_cache_says_what_to_fetch(tiny_zoo):
    manifest, _ = tiny_zoo
    with pytest.raises(
        ZooError, match="download http://127.0.0.1:\\d+/d2/Tiny/rcnn/model_final.pth and save it as"
    ):
        dt_zoo.get("Tiny/rcnn", manifest=manifest, offline=True)
