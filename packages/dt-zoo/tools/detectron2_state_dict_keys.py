"""Write the state-dict keys of detectron2's model for every zoo entry with a detectron2 config.

    <python with detectron2> packages/dt-zoo/tools/detectron2_state_dict_keys.py DETECTRON2_DIR OUT.json.gz

Each model is built on the meta device (no weights allocated) from detectron2's own file under
``DETECTRON2_DIR/configs``: a YAML config with ``get_cfg().merge_from_file`` and ``build_model``, a
LazyConfig (``.py``) with ``LazyConfig.load`` and ``instantiate(cfg.model)``. The output (gzip of JSON)
maps each entry name to an index into ``key_lists``, the sorted ``state_dict()`` keys; entries with the
same keys share a list. ``tests/test_configs.py`` checks dt's zoo configs against it.

Needs detectron2 (and its torch), not dt; this script is not part of the installed package.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import torch

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "dt_zoo" / "manifest.json"


def detectron2_keys(config: Path) -> list[str]:
    """The sorted state-dict keys of the model detectron2 builds from ``config``."""
    from detectron2.config import LazyConfig, get_cfg, instantiate
    from detectron2.modeling import build_model

    with torch.device("meta"):
        if config.suffix == ".py":
            model = instantiate(LazyConfig.load(str(config)).model)
        else:
            cfg = get_cfg()
            cfg.merge_from_file(str(config))
            cfg.MODEL.DEVICE = "meta"
            model = build_model(cfg)
    return sorted(model.state_dict())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    configs = Path(argv[0]) / "configs"
    entries = json.loads(MANIFEST.read_text())["entries"]
    lists: list[list[str]] = []
    index: dict[str, int] = {}
    for entry in entries:
        if entry["detectron2_config"] is None:
            continue
        keys = detectron2_keys(configs / entry["detectron2_config"])
        if keys not in lists:
            lists.append(keys)
        index[entry["name"]] = lists.index(keys)
    data = json.dumps({"entries": index, "key_lists": lists}, sort_keys=True).encode()
    with gzip.GzipFile(argv[1], "wb", mtime=0) as f:  # the same bytes for the same keys
        f.write(data)
    print(f"{len(index)} entries, {len(lists)} distinct key lists", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
