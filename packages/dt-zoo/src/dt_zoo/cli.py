"""``dt zoo``: list the zoo's models with their reported metrics, show one, download its weights.

    dt zoo list [--task keypoints]
    dt zoo info COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x
    dt zoo download COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x [--offline]

Registered as the ``zoo`` entry point of ``dt_engine.command``. A zoo error (unknown name, offline
without the file, failed download) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse

import attrs

from .api import get_weights, info, list_models
from .download import cache_path
from .errors import ZooError
from .manifest import TASKS, Metrics, ZooEntry, default_manifest
from .zoo_configs import CONFIG_DIR

__all__ = ["COMMAND", "ZooCommand", "format_table"]

_COLUMNS = (  # (header, Metrics field)
    ("box AP", "box_ap"),
    ("mask AP", "mask_ap"),
    ("kp. AP", "keypoint_ap"),
    ("PQ", "pq"),
    ("prop. AR", "proposal_ar"),
    ("train s/it", "train_time_s_per_iter"),
    ("inf. s/im", "inference_time_s_per_im"),
    ("mem GB", "train_memory_gb"),
)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def format_table(entries: list[ZooEntry]) -> str:
    """One row per entry: name, task, the metrics detectron2 reports, whether dt has its config."""
    header = ("name", "task", *(h for h, _ in _COLUMNS), "dt config")
    rows = [
        (
            e.name,
            e.task,
            *(_number(getattr(e.metrics, field)) for _, field in _COLUMNS),
            "yes" if e.config is not None else "-",
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _metrics_line(metrics: Metrics) -> str:
    return (
        ", ".join(f"{k} {v:g}" for k, v in attrs.asdict(metrics).items() if v is not None) or "none reported"
    )


def format_info(entry: ZooEntry) -> str:
    """What the zoo knows of ``entry``, one ``key: value`` per line."""
    weights = entry.weights
    cached = cache_path(weights.urls[0])
    lines = [
        f"name: {entry.name}",
        f"task: {entry.task} ({entry.label}, {entry.section})",
        f"dt config: {CONFIG_DIR / entry.config if entry.config else 'none yet'}",
        f"detectron2 config: {entry.detectron2_config or '-'}",
        f"weights: {' | '.join(weights.urls)}",
        f"sha256: {weights.sha256 or '-'}; md5 prefix: {weights.md5_prefix or '-'}",
        f"cached: {cached if cached.is_file() else f'no (would be {cached})'}",
        f"metrics: {_metrics_line(entry.metrics)}",
    ]
    if entry.tta_metrics is not None:
        lines.append(f"with test-time augmentation: {_metrics_line(entry.tta_metrics)}")
    if entry.dataset is not None:
        d = entry.dataset
        lines.append(f"datasets: train {', '.join(d.train)}; test {', '.join(d.test)}; classes {d.classes}")
    return "\n".join(lines)


class ZooCommand:
    """``dt zoo list|info|download``."""

    name = "zoo"
    summary = "list the model zoo with detectron2's reported metrics, show a model, download its weights"
    example = "dt zoo list --task keypoints"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="zoo_action", required=True, metavar="action")
        listing = actions.add_parser(
            "list", help="table of the zoo's models (e.g. dt zoo list --task detection)"
        )
        listing.add_argument("--task", choices=TASKS, help="only this task (e.g. --task keypoints)")
        show = actions.add_parser(
            "info", help="one model (e.g. dt zoo info COCO-Detection/retinanet_R_50_FPN_3x)"
        )
        show.add_argument("model", metavar="NAME", help="zoo name, e.g. COCO-Detection/retinanet_R_50_FPN_3x")
        fetch = actions.add_parser(
            "download",
            help="fetch a model's weights into $DT_CACHE (e.g. dt zoo download ImageNetPretrained/MSRA/R-50)",
        )
        fetch.add_argument("model", metavar="NAME", help="zoo name, e.g. ImageNetPretrained/MSRA/R-50")
        fetch.add_argument("--offline", action="store_true", help="only check the cache (as DT_OFFLINE=1)")

    def run(self, args: argparse.Namespace) -> int:
        from dt_engine.errors import InputError

        try:
            if args.zoo_action == "list":
                manifest = default_manifest()
                print(format_table([manifest.get(n) for n in list_models(args.task)]))
            elif args.zoo_action == "info":
                print(format_info(info(args.model)))
            else:
                print(get_weights(args.model, offline=True if args.offline else None))
        except ZooError as err:
            raise InputError(str(err)) from None
        return 0


COMMAND = ZooCommand()
