"""Evaluators gather predictions from every DDP rank (gloo, 2 processes) to rank 0."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from dt_eval.coco_evaluation import COCOEvaluator
from dt_eval.evaluator import inference_on_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, gt_path: str, out_dir: str) -> None:
    from dteval_outputs import metadata_of as _metadata
    from dteval_outputs import model_outputs as _outputs
    from dteval_synth import make_dataset

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gt, results = make_dataset(seed=21, num_images=12, crowd_prob=0.0, rle_gt_prob=0.0)
        inputs, outputs = _outputs(gt, results, with_masks=False)
        by_id = {i["image_id"]: o for i, o in zip(inputs, outputs, strict=True)}
        mine = inputs[rank::world]  # each rank sees half of the images
        evaluator = COCOEvaluator("ddp", coco_json=gt_path, metadata=_metadata(gt), tasks=["bbox"])
        res = inference_on_dataset(
            lambda batch: [by_id[x["image_id"]] for x in batch], [[x] for x in mine], evaluator
        )
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(res, f)
    finally:
        dist.destroy_process_group()


def test_results_gathered_to_rank_zero(tmp_path):
    from dteval_outputs import metadata_of as _metadata
    from dteval_outputs import model_outputs as _outputs
    from dteval_synth import make_dataset

    gt, results = make_dataset(seed=21, num_images=12, crowd_prob=0.0, rle_gt_prob=0.0)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    mp.start_processes(
        _worker, args=(2, _free_port(), str(gt_path), str(tmp_path)), nprocs=2, start_method="fork"
    )
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    assert json.loads((tmp_path / "rank1.json").read_text()) == {}
    single = COCOEvaluator("one", coco_json=str(gt_path), metadata=_metadata(gt), tasks=["bbox"])
    single.process(*_outputs(gt, results, with_masks=False))
    expected = single.evaluate()["bbox"]
    assert rank0["bbox"]["AP"] == pytest.approx(expected["AP"])
    assert rank0["bbox"]["AP50"] == pytest.approx(expected["AP50"])
