"""MAE's ViT checkpoints (``mae_pretrain_vit_*.pth``, ViTDet's initial weights) into dt's ViT.

The fast tests use a small dt ViT's shapes under timm's names in MAE's layout; the interop test saves a
real timm ViT-B's state dict in MAE's layout and compares the converted dt ViT (no windowing, no
relative positions: where ViTDet's ViT and timm's coincide) with timm's blocks on the same input
(``nox -s interop``)."""

import pytest
import torch

from dt_config import structure
from dt_models.backbone.vit import ViTConfig, build_vit
from dt_models.layers import ShapeSpec
from dt_zoo import ZooError
from dt_zoo.convert import mae_vit_to_dt

TINY = {"img_size": 64, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2, "drop_path_rate": 0.0,
        "use_rel_pos": False, "window_size": 0, "window_block_indexes": [], "pretrain_img_size": 32,
        "pretrain_use_cls_token": True}  # fmt: skip


def _vit(fields: dict) -> torch.nn.Module:
    return build_vit(structure(ViTConfig, fields), ShapeSpec(channels=3)).eval()


def _mae_layout(vit: torch.nn.Module) -> dict:
    """``vit``'s tensors as MAE saves an encoder: under ``model``, with a class token and final norm."""
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator) for k, v in vit.state_dict().items()}
    dim = state["pos_embed"].shape[-1]
    return {"model": {"cls_token": torch.zeros(1, 1, dim), **state, "norm.weight": torch.ones(dim),
                      "norm.bias": torch.zeros(dim)}}  # fmt: skip


def test_mae_file_loads_into_the_vit_under_a_prefix(tmp_path):
    vit = _vit(TINY)
    checkpoint = _mae_layout(vit)
    torch.save(checkpoint, tmp_path / "mae_pretrain_vit_tiny.pth")
    converted = mae_vit_to_dt(
        tmp_path / "mae_pretrain_vit_tiny.pth", prefix="backbone.net.", pretrain_img_size=32
    )
    assert all(k.startswith("backbone.net.") for k in converted)
    vit.load_state_dict({k.removeprefix("backbone.net."): v for k, v in converted.items()})  # strict
    assert torch.equal(vit.pos_embed, checkpoint["model"]["pos_embed"])  # the class-token row kept


def test_mae_converter_rejects_other_layouts_in_one_line(tmp_path):
    checkpoint = _mae_layout(_vit(TINY))
    with pytest.raises(ZooError, match=r"^MAE checkpoint: expected MAE's layout"):
        mae_vit_to_dt(checkpoint["model"])  # a bare state dict
    without_cls = {"model": {k: v for k, v in checkpoint["model"].items() if k != "cls_token"}}
    with pytest.raises(ZooError, match=r"no 'cls_token'; expected an MAE ViT encoder"):
        mae_vit_to_dt(without_cls)
    odd = {"model": {**checkpoint["model"], "pos_embed": torch.zeros(1, 16, 16)}}
    with pytest.raises(ZooError, match=r"pos_embed has 16 rows; expected a class token plus a square grid"):
        mae_vit_to_dt(odd)
    with pytest.raises(
        ZooError, match=r"4 x 4 grid of 8 px patches, so the ViT needs pretrain_img_size 32, not 224"
    ):
        mae_vit_to_dt(checkpoint, pretrain_img_size=224)
    (tmp_path / "broken.pth").write_text("not a checkpoint")
    with pytest.raises(ZooError, match="broken.pth"):
        mae_vit_to_dt(tmp_path / "broken.pth")


@pytest.mark.interop
def test_mae_layout_of_a_timm_vit_gives_timm_features(tmp_path):
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0).eval()
    encoder = {k: v for k, v in reference.state_dict().items() if not k.startswith(("head.", "fc_norm."))}
    torch.save({"model": encoder}, tmp_path / "mae_pretrain_vit_base.pth")  # MAE's release layout
    fields = {"img_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12,
              "drop_path_rate": 0.0, "use_rel_pos": False, "window_size": 0, "window_block_indexes": [],
              "pretrain_img_size": 224, "pretrain_use_cls_token": True}  # fmt: skip
    model = _vit(fields)
    model.load_state_dict(mae_vit_to_dt(tmp_path / "mae_pretrain_vit_base.pth", pretrain_img_size=224))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        # ViTDet attends over the patch tokens only: timm's blocks on them, with the grid's embeddings
        tokens = reference.blocks(reference.patch_embed(x) + reference.pos_embed[:, 1:])
        expected = tokens.reshape(1, 14, 14, 768).permute(0, 3, 1, 2)
        difference = (model(x)["last_feat"] - expected).abs().max().item()
    assert difference <= 1e-4, f"max abs difference {difference}"
