"""``dt export``: a config and its weights to ONNX, ExportedProgram or TorchScript, checked vs eager.

Registered in ``dt`` through the ``dt_engine.command`` entry point. Every input is checked before
anything is written; bad input is one line and exit code 2 (``InputError``/``ConfigError``).
"""

from __future__ import annotations

import argparse

from dt_engine.errors import InputError

__all__ = ["COMMAND", "ExportCommand"]

FORMATS = ("onnx", "exported-program", "torchscript")  # as dt_export.export.FORMATS, without importing torch


class ExportCommand:
    """Export a model with the pre/post-processing JSON it expects, after checking it against eager."""

    name = "export"
    summary = "export a model to ONNX, torch.export (.pt2) or TorchScript, checked against the eager model"
    example = (
        "dt export --format onnx --config output/config.yaml --weights output/model_final.pth "
        "--output exported/ --sample-image photo.jpg --dynamic"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--format", required=True, metavar="F",
            help=f"one of {', '.join(FORMATS)} (torchscript is a trace; scripting is not offered)",
        )  # fmt: skip
        parser.add_argument(
            "--config", required=True, metavar="FILE", help="experiment config (e.g. output/config.yaml)"
        )
        parser.add_argument("--weights", required=True, metavar="PATH", help="e.g. output/model_final.pth")
        parser.add_argument("--output", required=True, metavar="DIR", help="output folder (e.g. exported/)")
        parser.add_argument(
            "--sample-image", metavar="IMG", help="image to trace and check on (default: a synthetic one)"
        )
        parser.add_argument("--dynamic", action="store_true", help="accept any image height and width")
        parser.add_argument(
            "--dynamic-batch",
            action="store_true",
            help="take a batch Tensor[B, C, H, W] of same-size images, any B (semantic families)",
        )
        parser.add_argument(
            "--aot-inductor",
            action="store_true",
            help="with --format exported-program: compile it with AOTInductor (needs a C++ compiler)",
        )
        parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides")
        parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")

    def run(self, args: argparse.Namespace) -> int:
        if args.format not in FORMATS and "script" in args.format.lower():
            raise InputError(
                f"--format {args.format!r}: TorchScript scripting is not offered (torch.jit.script does "
                "not read dt's annotations); --format torchscript traces the flat graph"
            )
        if args.format not in FORMATS:
            raise InputError(f"--format {args.format!r} is unknown; expected one of {', '.join(FORMATS)}")
        import sys

        from .experiment import export_experiment
        from .export import ExportCheckError

        try:
            print(export_experiment(args).summary())
        except ExportCheckError as err:  # nothing was written
            print(f"dt export: check failed: {err}", file=sys.stderr)
            return 1
        return 0


COMMAND = ExportCommand()
