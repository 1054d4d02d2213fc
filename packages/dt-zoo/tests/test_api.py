import hashlib
import subprocess
import sys

import pytest
from zoo_server import MODEL

import dt_zoo
from dt_zoo import ZooError
from dt_zoo.download import cache_path, sidecar_path


@pytest.fixture
def zoo(manifest_file):
    return dt_zoo.load_manifest(manifest_file)


def test_list_models_in_manifest_order_and_by_task(zoo):
    assert dt_zoo.list_models(manifest=zoo) == [
        "Test-Detection/faster_tiny_1x",
        "Test-InstanceSegmentation/mask_tiny_3x",
        "Test-Keypoints/keypoint_tiny_3x",
        "ImageNetPretrained/Test/R-1",
    ]
    assert dt_zoo.list_models("backbone", manifest=zoo) == ["ImageNetPretrained/Test/R-1"]
    assert dt_zoo.list_models("panoptic-segmentation", manifest=zoo) == []


def test_unknown_task_suggests_one(zoo):
    with pytest.raises(
        ZooError, match="^unknown task 'keypoint' \\(did you mean 'keypoints'\\?\\); tasks: detection, "
    ):
        dt_zoo.list_models("keypoint", manifest=zoo)


def test_info_accepts_detectron2_config_names(zoo):
    entry = dt_zoo.info("Test-Detection/faster_tiny_1x.yaml", manifest=zoo)
    assert entry is dt_zoo.info("Test-Detection/faster_tiny_1x", manifest=zoo)
    assert entry.task == "detection" and entry.weights.sha256 == hashlib.sha256(MODEL).hexdigest()


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("Test-Detection/faster_tiny_3x", "'Test-Detection/faster_tiny_1x'"),
        ("mask_tiny_3x", "'Test-InstanceSegmentation/mask_tiny_3x'"),  # the prefix forgotten
    ],
)
def test_unknown_name_suggests_close_ones(zoo, name, suggestion):
    with pytest.raises(ZooError) as err:
        dt_zoo.info(name, manifest=zoo)
    assert str(err.value).startswith(f"unknown zoo model {name!r} (did you mean {suggestion}")
    assert str(err.value).endswith("; dt_zoo.list_models() lists all 4")


def test_get_weights_downloads_verifies_and_reuses(server, zoo):
    name = "Test-InstanceSegmentation/mask_tiny_3x"  # no sha256: md5 prefix, then the recorded digest
    path = dt_zoo.get_weights(name, manifest=zoo, progress=False)
    assert path == cache_path(dt_zoo.info(name, manifest=zoo).weights.urls[0])
    assert path.read_bytes() == MODEL
    assert sidecar_path(path).read_text().split()[0] == hashlib.sha256(MODEL).hexdigest()
    assert dt_zoo.get_weights(name, manifest=zoo, offline=True) == path
    assert len(server.requests) == 1


def test_get_weights_offline_names_the_url_and_path(server, zoo):
    entry = dt_zoo.info("Test-Keypoints/keypoint_tiny_3x", manifest=zoo)
    with pytest.raises(ZooError) as err:
        dt_zoo.get_weights(entry.name, manifest=zoo, offline=True)
    assert str(err.value).endswith(
        f"download {entry.weights.urls[0]} and save it as {cache_path(entry.weights.urls[0])}"
    )
    assert server.requests == []


def test_packaged_manifest_has_detectron2s_models():
    names = dt_zoo.list_models()
    assert len(names) == 68 and len(set(names)) == 68  # 61 trained models + 7 ImageNet backbones
    assert len(dt_zoo.list_models("backbone")) == 7
    entry = dt_zoo.info("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x")
    assert (entry.metrics.box_ap, entry.metrics.mask_ap, entry.model_id) == (41.0, 37.2, 137849600)
    assert entry.weights.urls == (
        "https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/"
        "model_final_f10217.pkl",
    )
    assert (entry.weights.md5_prefix, entry.weights.sha256) == ("f10217", None)
    assert entry.dataset.test == ("coco_2017_val",) and entry.dataset.classes == "coco"
    x152 = dt_zoo.info("Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv")
    assert (x152.tta_metrics.box_ap, x152.tta_metrics.mask_ap) == (51.9, 45.9)


def test_import_is_cheap():
    heavy = "('torch', 'dt_models', 'dt_engine', 'tqdm')"
    code = f"import sys, dt_zoo; print(sorted(m for m in {heavy} if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "[]\n"
    )
