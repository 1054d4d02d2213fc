import warnings

import pytest
import torch
from torch.export import Dim

from dt_structures import ImageList


def images(*sizes, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(channels, h, w, generator=g) for h, w in sizes]


def test_from_tensors_pads_and_keeps_sizes():
    imgs = images((5, 7), (8, 3))
    il = ImageList.from_tensors(imgs, pad_value=-1.0)
    assert il.tensor.shape == (2, 3, 8, 7)
    assert il.image_sizes == [(5, 7), (8, 3)]
    assert len(il) == 2
    for i, img in enumerate(imgs):
        assert torch.equal(il[i], img)
    assert bool((il.tensor[0, :, 5:, :] == -1).all()) and bool((il.tensor[1, :, :, 3:] == -1).all())
    assert il.tensor.is_contiguous()


def test_size_divisibility_single_and_batch():
    il = ImageList.from_tensors(images((5, 7)), size_divisibility=4)
    assert il.tensor.shape == (1, 3, 8, 8)
    assert torch.equal(il[0], images((5, 7))[0])
    il = ImageList.from_tensors(images((5, 7), (9, 2)), size_divisibility=4)
    assert il.tensor.shape == (2, 3, 12, 8)
    il = ImageList.from_tensors(images((8, 8)), size_divisibility=4)
    assert il.tensor.shape == (1, 3, 8, 8)
    il = ImageList.from_tensors(images((5, 7)), size_divisibility=1)
    assert il.tensor.shape == (1, 3, 5, 7)


def test_padding_constraints():
    imgs = images((5, 7), (6, 3))
    il = ImageList.from_tensors(imgs, padding_constraints={"square_size": 10})
    assert il.tensor.shape == (2, 3, 10, 10)
    il = ImageList.from_tensors(imgs, size_divisibility=32, padding_constraints={"size_divisibility": 4})
    assert il.tensor.shape == (2, 3, 8, 8)
    il = ImageList.from_tensors(imgs, padding_constraints={"square_size": 10, "size_divisibility": 4})
    assert il.tensor.shape == (2, 3, 12, 12)
    with pytest.raises(ValueError, match="square_size"):
        ImageList.from_tensors(imgs, padding_constraints={"square_size": 6})
    with pytest.raises(ValueError, match="unknown keys"):
        ImageList.from_tensors(imgs, padding_constraints={"size_divisibilty": 4})


def test_two_dim_and_multi_dim_images():
    il = ImageList.from_tensors([torch.ones(2, 3), torch.ones(4, 1)])
    assert il.tensor.shape == (2, 4, 3)
    il = ImageList.from_tensors([torch.ones(2, 5, 2, 3), torch.ones(2, 5, 4, 1)])
    assert il.tensor.shape == (2, 2, 5, 4, 3)
    assert il[1].shape == (2, 5, 4, 1)


def test_validation():
    with pytest.raises(ValueError, match="non-empty"):
        ImageList.from_tensors([])
    with pytest.raises(TypeError, match=r"tensors\[1\]"):
        ImageList.from_tensors([torch.ones(3, 2, 2), [[1.0]]])
    with pytest.raises(ValueError, match=r"tensors\[1\] has leading shape"):
        ImageList.from_tensors([torch.ones(3, 2, 2), torch.ones(1, 2, 2)])
    with pytest.raises(ValueError, match="size_divisibility"):
        ImageList.from_tensors([torch.ones(3, 2, 2)], size_divisibility=-1)
    with pytest.raises(ValueError, match="image_sizes"):
        ImageList(torch.zeros(2, 3, 4, 4), [(4, 4)])


def test_non_contiguous_dtype_and_to():
    img = torch.rand(3, 6, 4).transpose(1, 2)  # non-contiguous [3, 4, 6]
    assert not img.is_contiguous()
    il = ImageList.from_tensors([img, torch.zeros(3, 2, 2, dtype=torch.float32)], size_divisibility=8)
    assert torch.equal(il[0], img)
    u8 = ImageList.from_tensors([torch.full((3, 2, 2), 7, dtype=torch.uint8)] * 2, pad_value=1)
    assert u8.tensor.dtype == torch.uint8
    moved = il.to("meta")
    assert moved.device.type == "meta" and moved.image_sizes == il.image_sizes
    assert il.to(torch.float64).tensor.dtype == torch.float64


def _batch(a, b):
    return ImageList.from_tensors([a, b], size_divisibility=32, pad_value=0.5).tensor


def test_jit_trace_follows_input_sizes():
    a, b = images((20, 30), (25, 17))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_batch, (a, b))
    for sizes in [((20, 30), (25, 17)), ((40, 10), (33, 50)), ((64, 64), (1, 1))]:
        c, d = images(*sizes, seed=1)
        assert torch.equal(traced(c, d), _batch(c, d))


class _Pad(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor):
        il = ImageList.from_tensors([a, b], size_divisibility=32, pad_value=1.0)
        return il.tensor, il[1]


def test_torch_export_static_and_dynamic():
    a, b = images((20, 30), (25, 17))
    ep = torch.export.export(_Pad(), (a, b))
    out = ep.module()(a, b)
    assert torch.equal(out[0], _Pad()(a, b)[0]) and torch.equal(out[1], b)

    h1, w1, h2, w2 = (Dim(n, min=2, max=512) for n in ("h1", "w1", "h2", "w2"))
    ep = torch.export.export(_Pad(), (a, b), dynamic_shapes=({1: h1, 2: w1}, {1: h2, 2: w2}))
    c, d = images((40, 10), (33, 50), seed=2)
    out = ep.module()(c, d)
    assert out[0].shape == (2, 3, 64, 64)
    assert torch.equal(out[0], _Pad()(c, d)[0]) and torch.equal(out[1], d)
