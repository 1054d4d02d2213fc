"""``dt backbone-shapes``: a subcommand this package adds to ``dt`` through an entry point."""

from __future__ import annotations

import argparse
import json

from dt_engine.errors import InputError


class BackboneShapesCommand:
    """Print the feature shapes ``TinyConvBackbone`` gives for an image size, as JSON."""

    name = "backbone-shapes"
    summary = "print TinyConvBackbone's feature shapes for an image size"
    example = "dt backbone-shapes --size 64 --width 16"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, required=True, metavar="PX", help="image side (e.g. 64)")
        parser.add_argument("--width", type=int, default=16, metavar="C", help="channels (e.g. 16)")

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from .backbone import TinyConvBackbone

        if args.size < 8:
            raise InputError(f"--size must be at least 8 pixels, got {args.size}")
        backbone = TinyConvBackbone(in_channels=3, width=args.width, levels=2)
        features = backbone(torch.zeros(1, 3, args.size, args.size))
        print(json.dumps({name: list(feature.shape) for name, feature in features.items()}))
        return 0


COMMAND = BackboneShapesCommand()
