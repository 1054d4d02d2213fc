"""``dt data check``: the whole pre-flight of a config's datasets, images included, with a summary table;
``dt data show``: draw dataset dicts (or, with ``--augmented``, the training mapper's augmented inputs
with their ground truth) into a folder.

Installed as a ``dt`` subcommand through dt-engine's own ``dt_engine.command`` entry point (the
same way packages add theirs). Every problem is one line on stderr (file, record, what is wrong,
what was expected); the exit code is 2 when there is any, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["COMMAND", "DataCommand", "format_table"]


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """Fixed-width text table, columns separated by two spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


class DataCommand:
    """``dt data check --config C``: check every dataset the config names or defines."""

    name = "data"
    summary = "check a config's datasets (annotations and every image) before training"
    example = "dt data check --config my_data.yaml"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="data_action", required=True, metavar="action")
        check = actions.add_parser(
            "check",
            help="load every annotation and read every image of the config's datasets",
            description="load every annotation and read every image of the config's datasets; "
            "one line per problem, a summary table, exit 2 on any problem",
        )
        check.add_argument("--config", required=True, metavar="FILE", help="experiment config (YAML or .py)")
        check.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides")
        check.add_argument("--debug", action="store_true", help="show the traceback of an input error")
        show = actions.add_parser(
            "show",
            help="draw dataset dicts (or the augmented training inputs) into a folder",
            description="draw the annotations of a config's dataset into <output>/<dataset>/",
        )
        show.add_argument("--config", required=True, metavar="FILE", help="experiment config (YAML or .py)")
        show.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides")
        show.add_argument("--output", required=True, metavar="DIR", help="folder of the PNGs (e.g. show/)")
        show.add_argument("--dataset", metavar="NAME", help="default: the first training dataset")
        show.add_argument("--num", type=int, default=16, metavar="N", help="images drawn (e.g. 16)")
        show.add_argument(
            "--augmented", action="store_true", help="draw the training mapper's output (augmented)"
        )
        show.add_argument("--debug", action="store_true", help="show the traceback of an input error")

    def run(self, args: argparse.Namespace) -> int:
        return self.check(args) if args.data_action == "check" else self.show(args)

    def show(self, args: argparse.Namespace) -> int:
        """Draw up to ``--num`` dicts of a dataset (or their augmented training inputs)."""
        import numpy as np

        from dt_data import DatasetCatalog, MetadataCatalog, Visualizer
        from dt_data import build as data_build
        from dt_data.detection_utils import read_image

        from .config.experiment import load_experiment
        from .config.model_facts import model_facts
        from .defaults import register_config_datasets
        from .errors import InputError, check_writable_dir
        from .preflight import load_dataset_dicts

        if args.num < 1:
            raise InputError(f"--num must be >= 1, got {args.num}")
        cfg = load_experiment(args.config, args.overrides)
        register_config_datasets(cfg)
        name = args.dataset or (cfg.data.datasets.train or (None,))[0]
        if name is None or name not in DatasetCatalog:
            known = ", ".join(sorted(DatasetCatalog.list()))
            raise InputError(f"unknown dataset {name!r}; registered: {known}")
        dicts = load_dataset_dicts(name)[: args.num]
        metadata = MetadataCatalog.get(name)
        classes = metadata.get("thing_classes")
        out = check_writable_dir(Path(args.output) / name)
        facts = model_facts(cfg.model)
        mapper = data_build.build_mapper(cfg.data, True, mask_on=facts.mask_on, keypoint_on=facts.keypoint_on)
        rng = np.random.default_rng(0)
        for index, record in enumerate(dicts):
            if args.augmented:
                mapped = mapper(record, rng=rng)
                if mapped is None:
                    continue
                image = mapped["image"].numpy().transpose(1, 2, 0)  # [H, W, C] in data.input.format
                if cfg.data.input.format == "BGR":
                    image = image[:, :, ::-1]
                visual = Visualizer(np.ascontiguousarray(image), metadata)
                instances = mapped["instances"]
                labels = [classes[c] for c in instances.gt_classes.tolist()] if classes else None
                masks = instances.gt_masks if instances.has("gt_masks") else None
                drawn = visual.overlay_instances(boxes=instances.gt_boxes, labels=labels, masks=masks)
            else:
                image = read_image(record["file_name"], format="RGB")
                drawn = Visualizer(image, metadata).draw_dataset_dict(record)
            drawn.save(out / f"{index:04d}_{Path(record['file_name']).stem}.png")
        print(f"{len(dicts)} images of {name} -> {out}")
        return 0

    def check(self, args: argparse.Namespace) -> int:
        """The pre-flight of every dataset the config names or defines, images decoded."""
        from .config.experiment import load_experiment
        from .defaults import build_workflow
        from .errors import InputError
        from .preflight import DatasetReport, check_dataset

        cfg = load_experiment(args.config, args.overrides)
        build_workflow(cfg).check()  # registers the config's datasets; names, class counts, evaluators
        names = list(dict.fromkeys([*cfg.datasets, *cfg.data.datasets.train, *cfg.data.datasets.test]))
        reports: list[DatasetReport] = []
        failed: list[tuple[str, str]] = []
        for name in names:
            try:
                reports.append(check_dataset(name, read_images=True, stop_at_first=False))
            except InputError as err:  # the dataset cannot be loaded at all
                failed.append((name, str(err)))
        for report in reports:
            for problem in report.problems:
                print(f"dt data: error: {problem}", file=sys.stderr)
        for _, problem in failed:
            print(f"dt data: error: {problem}", file=sys.stderr)
        rows = [
            (
                r.name,
                str(r.images),
                str(r.annotations),
                "-" if r.classes is None else str(r.classes),
                str(len(r.problems)),
            )
            for r in reports
        ] + [(name, "-", "-", "-", "cannot load") for name, _ in failed]
        print(format_table(rows, ("dataset", "images", "annotations", "classes", "problems")))
        total = sum(len(r.problems) for r in reports) + len(failed)
        print(f"{len(names)} datasets, {total} problems")
        return 2 if total else 0


COMMAND = DataCommand()
