"""The line protocol of a benchmark worker process: one JSON command per stdin line, one JSON reply
per stdout line. Used by ``side_by_side.py`` for its dt worker and by ``_detectron2_worker.py``, which
runs in detectron2's venv (so this module imports nothing but the standard library and torch).

Commands: ``{"cmd": "setup", "case": C, "dir": D}`` (build the case; ``D`` holds the shared inputs),
``{"cmd": "run"}`` (one timed call: ``{"wall": s, "cpu": s}``), ``{"cmd": "profile", "top": K}`` (one
call under ``torch.profiler``: the K ops with the most self CPU time), ``{"cmd": "check"}`` (a summary
of the last outputs and the peak memory), ``{"cmd": "quit"}``. A failure replies ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from collections.abc import Callable

import torch

# setup(case, dir) -> (run once, summary of the last outputs)
Setup = Callable[[str, str], tuple[Callable[[], object], Callable[[], dict]]]


def profile_ops(run: Callable[[], object], top: int) -> dict:
    """One call of ``run`` under ``torch.profiler`` (CPU): the ``top`` ops by self CPU time (ms,
    summed over calls) and the total self CPU time of every op."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    rows = [
        {"op": e.key, "self_ms": round(e.self_cpu_time_total / 1000, 1), "calls": e.count} for e in events
    ]
    return {"total_self_ms": round(sum(r["self_ms"] for r in rows), 1), "top_ops": rows[:top]}


def serve(setup: Setup) -> None:
    """Answer commands until ``quit``; everything the libraries print goes to stderr."""
    replies = sys.stdout
    sys.stdout = sys.stderr
    torch.set_num_threads(2)
    run: Callable[[], object] | None = None
    summary: Callable[[], dict] | None = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "quit":
                break
            if command["cmd"] == "setup":
                run, summary = setup(command["case"], command["dir"])
                reply: dict = {"ok": True, "torch": torch.__version__}
            elif command["cmd"] == "run":
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                reply = {"wall": time.perf_counter() - start, "cpu": time.process_time() - start_cpu}
            elif command["cmd"] == "profile":
                reply = profile_ops(run, command["top"])
            elif command["cmd"] == "check":
                peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                reply = {**summary(), "peak_rss_mib": round(peak_mib, 1)}
            else:
                reply = {"error": f"unknown command {command['cmd']!r}"}
        except Exception as e:  # sent to the coordinator, which reports it
            traceback.print_exc()
            reply = {"error": f"{type(e).__name__}: {e}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
