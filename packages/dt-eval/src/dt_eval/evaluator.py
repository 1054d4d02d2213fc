"""The ``DatasetEvaluator`` protocol, ``DatasetEvaluators`` and ``inference_on_dataset``.

Semantics follow detectron2's ``evaluation/evaluator.py``: an evaluator is reset, fed
``process(inputs, outputs)`` batch by batch, and ``evaluate()`` returns
``{task: {metric: value}}`` on the main process (evaluators gather across DDP ranks themselves).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any, Protocol, runtime_checkable

from dt_eval import comm
from dt_eval._extra import needs_torch_extra

__all__ = ["DatasetEvaluator", "DatasetEvaluators", "inference_on_dataset", "print_csv_format"]

logger = logging.getLogger(__name__)


@runtime_checkable
class DatasetEvaluatorProtocol(Protocol):
    def reset(self) -> None: ...
    def process(self, inputs: list[dict], outputs: list[dict]) -> None: ...
    def evaluate(self) -> dict | None: ...


class DatasetEvaluator:
    """Base class: accumulate model outputs with ``process`` and compute metrics in ``evaluate``.

    Call order: ``reset()``, then ``process(inputs, outputs)`` for every batch (``inputs`` is the
    list of dataset dicts the model received, ``outputs`` what it returned), then ``evaluate()``.
    """

    def reset(self) -> None:
        """Forget everything processed so far."""

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Record one batch of inputs and the model's outputs for them."""

    def evaluate(self) -> dict | None:
        """Metrics ``{task: {metric: value}}``; main process only (other ranks may return ``{}``/None)."""
        return None


class DatasetEvaluators(DatasetEvaluator):
    """Several evaluators driven together; their result dicts are merged (task names must differ)."""

    def __init__(self, evaluators: Sequence[DatasetEvaluatorProtocol]) -> None:
        for e in evaluators:
            if not isinstance(e, DatasetEvaluatorProtocol):
                raise TypeError(f"evaluators must have reset/process/evaluate, got {type(e).__name__}")
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        for e in self._evaluators:
            e.reset()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for e in self._evaluators:
            e.process(inputs, outputs)

    def evaluate(self) -> dict:
        results: OrderedDict = OrderedDict()
        for e in self._evaluators:
            result = e.evaluate()
            if comm.is_main_process() and result is not None:
                for k, v in result.items():
                    if k in results:
                        raise ValueError(f"two evaluators produced results for the same task {k!r}")
                    results[k] = v
        return results


def _progress(iterable: Iterable, total: int | None, enabled: bool) -> Any:
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return iterable
    return tqdm(iterable, total=total, desc="inference", unit="batch", dynamic_ncols=True)


def inference_on_dataset(
    model: Callable,
    data_loader: Iterable,
    evaluator: DatasetEvaluatorProtocol | Sequence[DatasetEvaluatorProtocol] | None,
    *,
    progress: bool = True,
) -> dict:
    """Run ``model`` on every batch of ``data_loader`` under ``torch.no_grad`` (and eval mode for an
    ``nn.Module``, restored afterwards), feed ``evaluator``, and return its results.

    Logs the total and per-image inference time (warm-up of up to 5 batches excluded) and shows a
    progress bar. With a DDP process group, evaluators gather to rank 0; other ranks get ``{}``.
    """
    with needs_torch_extra("dt_eval.inference_on_dataset"):
        import torch

    if evaluator is None:
        evaluator = DatasetEvaluators([])
    elif isinstance(evaluator, (list, tuple)):
        evaluator = DatasetEvaluators(evaluator)
    try:
        total = len(data_loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    logger.info("Start inference on %s batches", total if total is not None else "an unknown number of")
    evaluator.reset()
    num_warmup = min(5, total - 1) if total else 5
    start = time.perf_counter()
    compute_time = data_time = eval_time = 0.0
    counted = 0
    with contextlib.ExitStack() as stack:
        if isinstance(model, torch.nn.Module):
            stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.no_grad())
        data_start = time.perf_counter()
        show = progress and comm.is_main_process()
        for idx, inputs in enumerate(_progress(data_loader, total, show)):
            if idx == num_warmup:
                start = time.perf_counter()
                compute_time = data_time = eval_time = 0.0
                counted = 0
            t0 = time.perf_counter()
            data_time += t0 - data_start
            outputs = model(inputs)
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            compute_time += t1 - t0
            evaluator.process(inputs, outputs)
            t2 = time.perf_counter()
            eval_time += t2 - t1
            counted += len(inputs) if isinstance(inputs, Sized) else 1
            data_start = time.perf_counter()
    elapsed = time.perf_counter() - start
    if counted:
        logger.info(
            "Total inference time: %s (%.6f s / img per device, on %d devices)",
            datetime.timedelta(seconds=int(elapsed)), elapsed / counted, comm.get_world_size(),
        )  # fmt: skip
        logger.info(
            "Total inference pure compute time: %s (%.6f s / img per device); data %.6f s / img, "
            "evaluator %.6f s / img",
            datetime.timedelta(seconds=int(compute_time)), compute_time / counted, data_time / counted,
            eval_time / counted,
        )  # fmt: skip
    results = evaluator.evaluate()
    return {} if results is None else results


@contextlib.contextmanager
def _eval_mode(model: Any):
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def print_csv_format(results: dict) -> None:
    """Log ``{task: {metric: value}}`` in detectron2's copy-paste friendly CSV form."""
    for task, res in results.items():
        if not isinstance(res, dict):
            logger.info("%s: %s", task, res)
            continue
        important = [(k, v) for k, v in res.items() if "-" not in k]
        logger.info("copypaste: Task: %s", task)
        logger.info("copypaste: %s", ",".join(k for k, _ in important))
        logger.info("copypaste: %s", ",".join(f"{v:.4f}" for _, v in important))
