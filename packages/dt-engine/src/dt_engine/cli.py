"""The ``dt`` command: ``dt train``, ``dt eval``, ``dt predict``, ``dt plot``, ``dt demo``, and the
commands installed packages add through entry points (``dt_engine.commands``).

Every command takes ``--config`` (YAML or ``.py``) and dotted overrides (``key.path=value``).
Bad input (a config error, an unknown dataset, a missing checkpoint or image, an unwritable
output folder) is reported as one line per problem on stderr with exit code 2, never as a
traceback; it is detected before anything is written, so earlier results are kept.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from dt_config import ConfigError

from .commands import Command, discover_commands
from .errors import InputError, check_writable_dir

__all__ = ["build_parser", "main"]

OVERRIDES_HELP = """\
overrides (key.path=value, any number, applied after --config in order):
  solver.base_lr=0.01                       a number
  solver.steps=(2000, 4000)                 a tuple or list: (a, b) or [a, b]
  solver.amp.enabled=true                   a boolean
  model.roi_heads.num_classes=3             any nested key of the config
  data.datasets.train=[my_train]            datasets registered in DatasetCatalog
  test.best_metric=segm/AP                  the result model_best.pth is chosen on
  workflow=MyTrainer                        a registered DefaultTrainer subclass
  output_dir=runs/exp1                      a string
"""

COMMANDS = {
    "train": (
        "train a model",
        "dt train --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x "
        "--weights zoo:ImageNetPretrained/MSRA/R-50 --num-gpus 2 solver.max_iter=1000",
    ),
    "eval": (
        "evaluate a checkpoint on the config's test datasets",
        "dt eval --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x "
        "--weights zoo:COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x",
    ),
    "predict": (
        "run a model on images or a video and write visualizations and COCO-format results",
        "dt predict --config COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x "
        "--weights zoo:COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x --input 'photos/*.jpg' --output preds",
    ),
    "plot": (
        "plot training curves (losses, LR, evaluation AP) from metrics.jsonl to PNG",
        "dt plot --metrics output/metrics.jsonl --output output/plots",
    ),
    "demo": (
        "train, evaluate and visualize a small Mask R-CNN (or --task panoptic/semantic/rotated) on the "
        "synthetic shapes dataset (CPU, 10 min)",
        "dt demo --output output/demo --minutes 10",
    ),
}


def _add_common(parser: argparse.ArgumentParser, config_required: bool) -> None:
    parser.add_argument(
        "--config",
        required=config_required,
        metavar="FILE",
        help="experiment config: YAML, .py or zoo name (e.g. --config COCO-Detection/retinanet_R_50_FPN_3x)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.path=value",
        help="config overrides (e.g. solver.base_lr=0.01); see the list below",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")


def build_parser(extra_commands: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    """The parser of the built-in commands and of ``extra_commands`` (see ``discover_commands``)."""
    parser = argparse.ArgumentParser(
        prog="dt",
        description="dt: train, evaluate and run detection/segmentation models.",
        epilog="run `dt <command> --help` for a command's options and override examples",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    sub = {}
    for name, (summary, example) in COMMANDS.items():
        sub[name] = commands.add_parser(
            name,
            help=summary,
            description=f"{summary}.\n\nexample:\n  {example}",
            epilog=OVERRIDES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    train = sub["train"]
    _add_common(train, config_required=True)
    train.add_argument("--resume", action="store_true", help="continue from output_dir's last checkpoint")
    train.add_argument(
        "--overwrite", action="store_true", help="replace the run already in output_dir (deletes its files)"
    )
    train.add_argument(
        "--fast-resume", action="store_true", help="with --resume: re-seed the data instead of replaying it"
    )
    train.add_argument(
        "--weights", metavar="PATH", help="initial weights (e.g. --weights zoo:ImageNetPretrained/MSRA/R-50)"
    )
    train.add_argument("--num-gpus", type=int, default=1, metavar="N", help="processes per machine (e.g. 8)")
    train.add_argument("--num-machines", type=int, default=1, metavar="M", help="machines (e.g. 2)")
    train.add_argument("--machine-rank", type=int, default=0, metavar="R", help="this machine (e.g. 1)")
    train.add_argument(
        "--dist-url", default="auto", metavar="URL", help="machine 0's address (e.g. tcp://10.0.0.1:29500)"
    )
    train.add_argument(
        "--dist-timeout", type=float, default=30.0, metavar="MIN", help="collective timeout, min (e.g. 10)"
    )

    evaluate = sub["eval"]
    _add_common(evaluate, config_required=True)
    evaluate.add_argument("--weights", required=True, metavar="PATH", help="e.g. output/model_final.pth")
    evaluate.add_argument("--ema", action="store_true", help="use the checkpoint's EMA weights (e.g. --ema)")
    evaluate.add_argument(
        "--allow-partial-weights", action="store_true", help="run even if weights leave tensors unset"
    )

    predict = sub["predict"]
    _add_common(predict, config_required=False)
    predict.add_argument("--weights", metavar="PATH", help="e.g. output/model_final.pth")
    predict.add_argument(
        "--model",
        metavar="NAME",
        help="a zoo model instead of --config and --weights (e.g. COCO-Detection/faster_rcnn_R_50_FPN_3x)",
    )
    predict.add_argument("--ema", action="store_true", help="use the checkpoint's EMA weights (e.g. --ema)")
    predict.add_argument(
        "--allow-partial-weights", action="store_true", help="run even if weights leave tensors unset"
    )
    inputs = predict.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--input", nargs="+", metavar="PATH", help="images/folders/globs (e.g. 'imgs/*.png')")
    inputs.add_argument("--video", metavar="FILE", help="a video: writes <output>/<name>.mp4 (e.g. in.mp4)")
    predict.add_argument("--output", required=True, metavar="DIR", help="output folder (e.g. preds/)")
    predict.add_argument(
        "--confidence", type=float, default=0.5, metavar="S", help="minimum score drawn (e.g. 0.5)"
    )
    predict.add_argument(
        "--backend",
        default="torch",
        metavar="B",
        help="torch (default), or onnxruntime / exported-program / torchscript to run --weights as the "
        "file of dt export (needs dt-export)",
    )

    plot = sub["plot"]
    _add_common(plot, config_required=False)
    plot.add_argument(
        "--metrics", metavar="FILE", help="metrics.jsonl (default: <output_dir>/metrics.jsonl of --config)"
    )
    plot.add_argument("--output", metavar="DIR", help="PNG folder (default: the metrics folder)")

    demo = sub["demo"]
    _add_common(demo, config_required=False)
    demo.add_argument(
        "--task",
        default="instances",
        metavar="TASK",
        help="instances (Mask R-CNN, default), panoptic (Panoptic FPN), semantic (Semantic FPN) or "
        "rotated (rotated Faster R-CNN): the packaged shapes config and evaluator of that family",
    )
    demo.add_argument("--output", default="./output/demo", metavar="DIR", help="default: ./output/demo")
    demo.add_argument(
        "--minutes",
        type=float,
        metavar="M",
        help="wall-clock budget of the whole demo; the iterations are fitted to it (default: 10)",
    )
    demo.add_argument("--max-iter", type=int, metavar="N", help="fixed length, no budget (e.g. 100)")
    demo.add_argument("--threads", type=int, metavar="T", help="torch threads (default: all cores)")

    for name, command in (extra_commands or {}).items():
        command.add_arguments(
            commands.add_parser(
                name,
                help=command.summary,
                description=f"{command.summary}.\n\nexample:\n  {command.example}",
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser


def _plot(args: argparse.Namespace) -> int:
    from .plot import plot_metrics

    if args.metrics is not None:
        if args.overrides:
            raise InputError("overrides apply to --config; with --metrics there is no config to override")
        metrics = Path(args.metrics)
    elif args.config is not None:
        from .config.experiment import load_experiment

        metrics = Path(load_experiment(args.config, args.overrides).output_dir) / "metrics.jsonl"
    else:
        raise InputError("give --metrics FILE or --config FILE")
    if not metrics.is_file():
        raise InputError(f"metrics file not found: {metrics}")
    output = Path(args.output) if args.output is not None else metrics.parent
    check_writable_dir(output)
    try:
        written = plot_metrics(metrics, output)
    except ValueError as err:
        raise InputError(str(err)) from None
    for path in written:
        print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from . import demo, run

    commands = {
        "train": run.train_command,
        "eval": run.eval_command,
        "predict": run.predict_command,
        "demo": demo.demo_command,
    }
    return commands[args.command](args)


def _zoo_model_arguments(args: argparse.Namespace) -> None:
    """``dt predict --model NAME`` is ``--config NAME --weights zoo:NAME``; otherwise both are needed."""
    if args.model is None:
        missing = [option for option in ("config", "weights") if getattr(args, option) is None]
        if missing:
            raise InputError(f"needs --{' and --'.join(missing)}, or --model NAME (a zoo model)")
        return
    if args.config is not None or args.weights is not None:
        raise InputError("--model NAME replaces --config and --weights; give one or the other")
    args.config, args.weights = args.model, f"zoo:{args.model}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dt`` console script; returns the exit code."""
    try:
        extra_commands = discover_commands(reserved=set(COMMANDS))
    except InputError as err:
        print(f"dt: error: {err}", file=sys.stderr)
        return 2
    args = build_parser(extra_commands).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command in extra_commands:
            return extra_commands[args.command].run(args)
        if args.command == "predict":
            _zoo_model_arguments(args)
        if getattr(args, "weights", None):  # `zoo:NAME` and other sources: fetched once, before any launch
            from .weights import resolve_weights

            args.weights = resolve_weights(args.weights)
        return _plot(args) if args.command == "plot" else _run(args)
    except (ConfigError, InputError) as err:
        if getattr(args, "debug", False):
            raise
        lines = err.problems if isinstance(err, ConfigError) else [str(err)]
        for line in lines:
            print(f"dt {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
