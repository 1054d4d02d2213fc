"""dt weights as safetensors: an exact round trip, loading by every dt loader, and one-line errors."""

import struct

import pytest
import torch

from dt_engine.checkpoint import Checkpointer, CheckpointError, save_safetensors, torch_load_checked
from dt_engine.errors import InputError
from dt_engine.weights import load_model_weights


def test_round_trip_keeps_every_dtype_shape_and_value(tmp_path):
    tensors = {
        "f32": torch.randn(3, 4),
        "bf16": torch.randn(5).to(torch.bfloat16),
        "f16": torch.randn(2, 1, 2).half(),
        "i64": torch.arange(6).reshape(2, 3),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "flag": torch.tensor([True, False]),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
    }
    module = torch.nn.Module()
    for name, tensor in tensors.items():
        module.register_buffer(name, tensor)
    module.register_buffer("transposed", torch.arange(12.0).reshape(3, 4).t())  # not contiguous
    module.register_buffer("tied", module.f32[0])  # shares memory with f32: stored as its own copy
    path = save_safetensors(module, tmp_path / "w.safetensors", iteration=3)
    loaded = torch_load_checked(path)
    assert loaded["iteration"] == 3 and loaded["format"] == "dt-weights-v1"
    expected = {**tensors, "transposed": module.transposed, "tied": module.f32[0]}
    assert set(loaded["model"]) == set(expected)
    for name, tensor in expected.items():
        got = loaded["model"][name]
        assert got.dtype == tensor.dtype and torch.equal(got, tensor), name


def test_dt_loaders_read_safetensors_weights(tmp_path):
    source = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    path = save_safetensors(source, tmp_path / "model_final.safetensors", iteration=12, config="seed: 1\n")
    data = Checkpointer.read(path)
    assert (data["iteration"], data["config"]) == (12, "seed: 1\n")
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    report = load_model_weights(target, path)
    assert report.ok and torch.equal(target[0].weight, source[0].weight)
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(5))  # fine-tuning: partial fit
    report = load_model_weights(other, path)
    assert {m[0] for m in report.shape_mismatch} == {"1.weight", "1.bias", "1.running_mean", "1.running_var"}
    resumed = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    Checkpointer(resumed, tmp_path).load(path, resume=False)
    assert torch.equal(resumed[1].running_var, source[1].running_var)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d[:-3],  # truncated
        lambda d: d[:6],  # shorter than the header length
        lambda d: struct.pack("<Q", 10**12) + d[8:],  # header length beyond the file
        lambda d: d + b"junk",  # bytes after the last tensor
        lambda d: d.replace(b'"F32"', b'"F99"'),  # unknown dtype
        lambda d: b"not safetensors at all",
    ],
)
def test_broken_files_are_one_clear_line(tmp_path, corrupt):
    good = save_safetensors(torch.nn.Linear(3, 2), tmp_path / "good.safetensors")
    path = tmp_path / "bad.safetensors"
    path.write_bytes(corrupt(good.read_bytes()))
    with pytest.raises(CheckpointError, match=f"^{path}: not a valid safetensors file") as caught:
        torch_load_checked(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="not a valid safetensors file"):
        load_model_weights(torch.nn.Linear(3, 2), path)
