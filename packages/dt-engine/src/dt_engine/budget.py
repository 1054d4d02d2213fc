"""Training against a wall-clock budget: measure this machine's throughput, then fix ``max_iter``.

The measurement is a short throw-away run of the workflow's own model, optimizer, loader and
trainer (so AMP, accumulation, EMA and the data pipeline are all counted), plus inference on a few
test images to foresee the final evaluation. ``fit_max_iter`` then returns a config whose
``solver.max_iter`` (and schedule: steps and warmup scaled with it) fits the remaining seconds;
the run that follows is an ordinary one, so the saved ``config.yaml`` reproduces it exactly with
``dt train``.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import TYPE_CHECKING

import attrs
import torch

from .train_loop import HookBase

if TYPE_CHECKING:
    from .config.experiment import ExperimentConfig
    from .defaults import DefaultTrainer

__all__ = ["Throughput", "fit_max_iter", "measure_throughput", "scale_schedule"]


@attrs.frozen
class Throughput:
    """``seconds_per_iter``: median of the timed training iterations (after ``warmup`` untimed
    ones); ``seconds_per_test_image``: mean inference time of one test image (0 without test data)."""

    seconds_per_iter: float
    seconds_per_test_image: float
    timed_iterations: int


class _StepTimer(HookBase):
    def __init__(self) -> None:
        self.durations: list[float] = []
        self._start = 0.0

    def before_step(self) -> None:
        self._start = time.perf_counter()

    def after_step(self) -> None:
        self.durations.append(time.perf_counter() - self._start)


def measure_throughput(
    workflow: DefaultTrainer, *, iterations: int = 6, warmup: int = 2, test_images: int = 4
) -> Throughput:
    """Time ``warmup + iterations`` training steps of ``workflow``'s parts, then inference on the first
    ``test_images`` images of its first test dataset. Nothing is written; the RNG state is restored."""
    if iterations < 1 or warmup < 0 or test_images < 0:
        given = f"{iterations}, {warmup}, {test_images}"
        raise ValueError(f"need iterations >= 1, warmup >= 0, test_images >= 0; got {given}")
    rng = torch.random.get_rng_state()
    try:
        model = workflow.build_model()
        optimizer = workflow.build_optimizer(model)
        trainer = workflow.build_trainer(model, workflow.build_train_loader(workflow.cfg.seed), optimizer)
        timer = _StepTimer()
        trainer.register_hooks([timer])
        trainer.train(0, warmup + iterations)
        timed = sorted(timer.durations[warmup:])
        per_test_image = _seconds_per_test_image(workflow, model, test_images)
    finally:
        torch.random.set_rng_state(rng)
    return Throughput(timed[len(timed) // 2], per_test_image, len(timed))


def _seconds_per_test_image(workflow: DefaultTrainer, model: torch.nn.Module, count: int) -> float:
    tests = workflow.cfg.data.datasets.test
    if not tests or count == 0:
        return 0.0
    model.eval()
    batches = list(itertools.islice(workflow.build_test_loader(tests[0]), count))
    with torch.no_grad():
        start = time.perf_counter()
        for batch in batches:
            model(batch)
        elapsed = time.perf_counter() - start
    return elapsed / max(1, len(batches))


def scale_schedule(cfg: ExperimentConfig, max_iter: int) -> ExperimentConfig:
    """``cfg`` with ``solver.max_iter = max_iter`` and its LR steps and warmup scaled by the same
    factor (each step at least 1 and strictly increasing, below ``max_iter``)."""
    solver = cfg.solver
    factor = max_iter / solver.max_iter
    steps: list[int] = []
    for step in solver.steps:
        scaled = max(1, round(step * factor), steps[-1] + 1 if steps else 1)
        if scaled < max_iter:
            steps.append(scaled)
    warmup = min(max_iter - 1, round(solver.warmup_iters * factor)) if max_iter > 1 else 0
    scaled_solver = attrs.evolve(solver, max_iter=max_iter, steps=tuple(steps), warmup_iters=max(0, warmup))
    return attrs.evolve(cfg, solver=scaled_solver)


def fit_max_iter(
    cfg: ExperimentConfig,
    throughput: Throughput,
    seconds_left: float,
    *,
    num_test_images: int,
    reserve_seconds: float = 0.0,
) -> tuple[ExperimentConfig, float]:
    """The config whose training plus final evaluation of ``num_test_images`` fits ``seconds_left``
    minus ``reserve_seconds`` (at least one iteration), and the training seconds it plans for.

    Raises ``ValueError`` when even the evaluation does not fit.
    """
    evaluation = throughput.seconds_per_test_image * num_test_images
    train_seconds = seconds_left - reserve_seconds - evaluation
    if train_seconds < throughput.seconds_per_iter:
        raise ValueError(
            f"{seconds_left:.0f} s left cannot hold one training iteration "
            f"({throughput.seconds_per_iter:.2f} s) plus the evaluation ({evaluation:.0f} s) "
            f"and {reserve_seconds:.0f} s reserved"
        )
    max_iter = math.floor(train_seconds / throughput.seconds_per_iter)
    return scale_schedule(cfg, max_iter), max_iter * throughput.seconds_per_iter
