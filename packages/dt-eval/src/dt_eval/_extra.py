"""The ``torch`` extra: what the evaluators need beyond dt-eval's base install (numpy, pycocotools).

``dt_eval.coco`` works with the base install alone; the evaluators (``DatasetEvaluator`` and its
subclasses, ``inference_on_dataset``, proposal recall) take dt model outputs and need torch,
dt-structures and dt-config. Their imports run under ``needs_torch_extra`` so that a base install
reports one actionable line instead of a bare ``No module named ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["EXTRA_MODULES", "INSTALL_HINT", "needs_torch_extra"]

EXTRA_MODULES = frozenset({"torch", "dt_structures", "dt_config", "cv2", "PIL", "tqdm"})
"""Top-level modules that come with ``dt-eval[torch]`` (not with the base install)."""

INSTALL_HINT = "pip install 'dt-eval[torch]'"


@contextlib.contextmanager
def needs_torch_extra(what: str) -> Iterator[None]:
    """Turn a missing module of the ``torch`` extra, imported inside the block, into one ImportError
    line naming ``what`` (the part of dt-eval that needs it) and the extra. Other errors pass unchanged."""
    try:
        yield
    except ImportError as err:  # a nested block's line is relabelled: the outermost ``what`` is the user's
        missing = (err.name or "").partition(".")[0]
        ours = isinstance(err, ModuleNotFoundError) or INSTALL_HINT in str(err)
        if missing not in EXTRA_MODULES or not ours:
            raise
        raise ImportError(
            f"{what}: module {missing!r} is missing; it comes with the evaluators' extra: {INSTALL_HINT} "
            "(the base install of dt-eval has dt_eval.coco only)",
            name=missing,
        ) from None
