"""``dt predict --backend``: without a package filling ``dt_engine.predict_backend`` (dt-export), a
backend other than torch is one line naming ``pip install dt-export``, exit 2, nothing written."""

from __future__ import annotations

import pytest

from dt_engine import predict_backends
from dt_engine.cli import main
from dt_engine.errors import InputError


def test_a_missing_dt_export_is_one_line_naming_pip_install(monkeypatch):
    monkeypatch.setattr(predict_backends, "entry_points", lambda group: [])
    with pytest.raises(
        InputError, match=r"^--backend onnxruntime needs dt-export: pip install 'dt-export\[onnx\]'$"
    ):
        predict_backends.load_predict_backend("onnxruntime", "exported/model.onnx")
    with pytest.raises(InputError, match=r"^--backend 'tvm' is unknown; expected one of torch, onnxruntime"):
        predict_backends.load_predict_backend("tvm", "exported/model.onnx")


def test_predict_with_a_backend_but_no_dt_export_exits_2_before_writing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(predict_backends, "entry_points", lambda group: [])
    (tmp_path / "model.pt2").write_bytes(b"not read")
    (tmp_path / "photo.png").write_bytes(b"not read either")
    code = main([
        "predict", "--config", "COCO-Detection/retinanet_R_50_FPN_1x",
        "--weights", str(tmp_path / "model.pt2"), "--input", str(tmp_path / "photo.png"),
        "--output", str(tmp_path / "preds"), "--backend", "exported-program",
    ])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        "dt predict: error: --backend exported-program needs dt-export: pip install 'dt-export'"
    ]
    assert not (tmp_path / "preds").exists()
