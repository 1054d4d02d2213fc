"""tools/make_manifest.py on a small MODEL_ZOO.md written here (and on detectron2's, when available)."""

import importlib.util
import os
import textwrap
from importlib import resources
from pathlib import Path

import pytest

import dt_zoo

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_manifest.py"
_spec = importlib.util.spec_from_file_location("dt_zoo_make_manifest", TOOL)
make_manifest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_manifest)

D2 = "https://dl.fbaipublicfiles.com/detectron2"


def _row(name_cell: str, cells: list[str]) -> str:
    tds = "".join(f'<td align="center">{c}</td>\n' for c in cells)
    return f'<tr><td align="left">{name_cell}</td>\n{tds}</tr>'


def _model(config: str, label: str, numbers: list[str], model_id: str, path: str) -> str:
    url = f"{D2}/{path}"
    links = (
        f'<a href="{url}">model</a>&nbsp;|&nbsp;<a href="{url.rsplit("/", 1)[0]}/metrics.json">metrics</a>'
    )
    return _row(f'<a href="configs/{config}">{label}</a>', [*numbers, model_id, links])


def _table(columns: list[str], rows: list[str]) -> str:
    headers = "".join(f'<th valign="bottom">{c}</th>\n' for c in ["Name", *columns, "model id", "download"])
    return "<table><tbody>\n" + headers + "\n".join(rows) + "\n</tbody></table>\n"


FASTER = _model(
    "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml", "R50-FPN", ["1x", "0.210", "37.9", ""], "137257794",
    "COCO-Detection/faster_rcnn_R_50_FPN_1x/137257794/model_final_b275ba.pkl",
)  # fmt: skip
LSJ = _model(
    "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py", "R50-FPN", ["100", "44.6", "40.3"], "42047764",
    "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ/42047764/model_final_bb69de.pkl",
)  # fmt: skip
REGNET = _model(
    "new_baselines/mask_rcnn_regnetx_FPN_200ep_LSJ.py", "regnetx", ["200", "N/A", "41.0"], "42132721",
    "new_baselines/mask_rcnn_regnetx_FPN_200ep_LSJ/42132721/model_final_5d87c1.pkl",
)  # fmt: skip
TTA = _row("above + test-time aug.", ["", "46.0", "41.9", "", ""])

MODEL_ZOO = f"""# Model Zoo

#### ImageNet Pretrained Models

* [R-50.pkl]({D2}/ImageNetPretrained/MSRA/R-50.pkl): converted copy of MSRA's ResNet-50.
* [R-50-GN.pkl](https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/47261647/R-50-GN.pkl):
  ResNet-50 with Group Normalization.

#### License

### COCO Object Detection Baselines

#### Faster R-CNN:

{_table(["lr<br/>sched", "train<br/>time<br/>(s/iter)", "box<br/>AP", "mask<br/>AP"], [FASTER])}
### Other Settings

{_table(["lr<br/>sched", "train<br/>time<br/>(s/iter)", "box<br/>AP", "mask<br/>AP"], [FASTER])}
{_table(["epochs", "box<br/>AP", "mask<br/>AP"], [LSJ, REGNET, TTA])}
"""

CONFIGS = {
    "Base-RCNN-FPN.yaml": 'DATASETS:\n  TRAIN: ("coco_2017_train",)\n  TEST: ("coco_2017_val",)\n',
    "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml": textwrap.dedent("""\
        _BASE_: "../Base-RCNN-FPN.yaml"
        MODEL:
          ANCHOR_GENERATOR:
            SIZES: !!python/object/apply:eval ["[[x, x * 2] for x in [32, 64]]"]
        """),
    "common/data/coco.py": textwrap.dedent("""\
        dataloader.train = L(build_detection_train_loader)(
            dataset=L(get_detection_dataset_dicts)(names="coco_2017_train"),
        )
        dataloader.test = L(build_detection_test_loader)(
            dataset=L(get_detection_dataset_dicts)(names="coco_2017_val", filter_empty=False),
        )
        """),
    "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py": "from ..common.data.coco import dataloader\n",
    "new_baselines/mask_rcnn_regnetx_FPN_200ep_LSJ.py": "from .mask_rcnn_R_50_FPN_100ep_LSJ import (\n"
    "    dataloader,\n    model,\n)\n",
}


@pytest.fixture
def detectron2(tmp_path):
    root = tmp_path / "detectron2"
    for name, text in CONFIGS.items():
        (root / "configs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "configs" / name).write_text(text)
    (root / "MODEL_ZOO.md").write_text(MODEL_ZOO)
    return root


def test_tables_rows_repeats_tta_and_backbones(detectron2):
    data, counts = make_manifest.build_manifest(detectron2)
    assert counts == {"rows": 4, "repeated": 1, "tta": 1, "backbones": 2, "entries": 5}
    manifest = dt_zoo.parse_manifest(data)
    assert manifest.names() == [
        "COCO-Detection/faster_rcnn_R_50_FPN_1x",
        "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ",
        "new_baselines/mask_rcnn_regnetx_FPN_200ep_LSJ",
        "ImageNetPretrained/MSRA/R-50",
        "ImageNetPretrained/FAIR/R-50-GN",
    ]
    faster = manifest.get("COCO-Detection/faster_rcnn_R_50_FPN_1x")
    assert (faster.task, faster.lr_sched, faster.model_id, faster.section) == (
        "detection", "1x", 137257794, "COCO Object Detection Baselines / Faster R-CNN"
    )  # fmt: skip
    assert (faster.metrics.box_ap, faster.metrics.train_time_s_per_iter, faster.metrics.mask_ap) == (
        37.9,
        0.21,
        None,
    )
    assert faster.weights.md5_prefix == "b275ba" and faster.metrics_url.endswith("137257794/metrics.json")
    assert (faster.dataset.train, faster.dataset.test, faster.dataset.classes) == (
        ("coco_2017_train",), ("coco_2017_val",), "coco"
    )  # fmt: skip
    regnet = manifest.get("new_baselines/mask_rcnn_regnetx_FPN_200ep_LSJ")
    assert (regnet.task, regnet.epochs, regnet.config, regnet.detectron2_config) == (
        "instance-segmentation",
        200,
        None,
        "new_baselines/mask_rcnn_regnetx_FPN_200ep_LSJ.py",
    )  # fmt: skip  (dt has no config file of that name)
    assert faster.config == "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"  # dt_zoo/configs has this one
    assert (regnet.metrics.box_ap, regnet.metrics.mask_ap) == (None, 41.0)
    assert (regnet.tta_metrics.box_ap, regnet.tta_metrics.mask_ap) == (46.0, 41.9)
    assert regnet.dataset.test == ("coco_2017_val",)
    gn = manifest.get("ImageNetPretrained/FAIR/R-50-GN")
    assert (gn.task, gn.label, gn.config, gn.dataset) == ("backbone", "R-50-GN", None, None)


def test_a_model_repeated_with_other_numbers_is_an_error(detectron2):
    text = (detectron2 / "MODEL_ZOO.md").read_text()
    (detectron2 / "MODEL_ZOO.md").write_text(text.replace("37.9", "38.0", 1))
    with pytest.raises(SystemExit, match="faster_rcnn_R_50_FPN_1x is listed twice with different numbers"):
        make_manifest.build_manifest(detectron2)


def test_an_unknown_column_is_an_error(detectron2):
    text = (detectron2 / "MODEL_ZOO.md").read_text()
    (detectron2 / "MODEL_ZOO.md").write_text(text.replace("epochs", "iterations"))
    with pytest.raises(SystemExit, match="unknown column 'iterations'"):
        make_manifest.build_manifest(detectron2)


def test_check_mode(detectron2, tmp_path):
    out = tmp_path / "manifest.json"
    assert make_manifest.main([str(detectron2), "-o", str(out)]) == 0
    assert dt_zoo.load_manifest(out).names("backbone") == [
        "ImageNetPretrained/MSRA/R-50",
        "ImageNetPretrained/FAIR/R-50-GN",
    ]
    assert make_manifest.main([str(detectron2), "-o", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("37.9", "38.9"))
    assert make_manifest.main([str(detectron2), "-o", str(out), "--check"]) == 1


@pytest.mark.skipif("DETECTRON2_DIR" not in os.environ, reason="set DETECTRON2_DIR to detectron2's checkout")
def test_committed_manifest_is_generated_from_detectron2s_model_zoo():
    with resources.as_file(resources.files("dt_zoo") / "manifest.json") as packaged:
        assert make_manifest.main([os.environ["DETECTRON2_DIR"], "-o", str(packaged), "--check"]) == 0
