"""Two gloo processes: samplers and the train loader shard across ranks with a shared seed."""

import itertools
import json

import torch.distributed as dist
import torch.multiprocessing as mp

from dt_data import InferenceSampler, TrainingSampler, build_detection_train_loader


def _identity(d, rng):
    return dict(d, draw=int(rng.integers(1 << 30)))


def _run(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        sampler = TrainingSampler(10)  # seed=None: a random seed shared by all ranks
        dicts = [{"image_id": i, "width": 4, "height": 3} for i in range(8)]
        loader = build_detection_train_loader(
            dicts, mapper=_identity, total_batch_size=4, aspect_ratio_grouping=False, seed=5
        )
        batches = list(itertools.islice(iter(loader), 3))
        result = {
            "train": list(itertools.islice(iter(sampler), 10)),
            "seed": sampler._seed,
            "inference": list(InferenceSampler(5)),
            "batch_ids": [[d["image_id"] for d in b] for b in batches],
            "draws": [d["draw"] for b in batches for d in b],
        }
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_seed_and_split_data(tmp_path):
    mp.spawn(_run, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["seed"] == r1["seed"]
    ref = TrainingSampler(10, seed=r0["seed"])
    full = list(itertools.islice(iter(ref), 20))
    assert r0["train"] == full[0::2] and r1["train"] == full[1::2]
    assert r0["inference"] == [0, 1, 2] and r1["inference"] == [3, 4]
    assert all(len(b) == 2 for b in r0["batch_ids"] + r1["batch_ids"])  # 4 images per step over 2 ranks
    first_epoch = r0["batch_ids"][0] + r0["batch_ids"][1] + r1["batch_ids"][0] + r1["batch_ids"][1]
    assert sorted(first_epoch) == list(range(8))  # ranks see disjoint images
    assert r0["draws"] != r1["draws"]  # per-rank generators differ
