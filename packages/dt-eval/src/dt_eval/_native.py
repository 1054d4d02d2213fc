"""Loader of the native core ``dt_eval._C`` with an actionable error when it is missing."""

from __future__ import annotations

__all__ = ["load"]


def load():
    """Return the compiled module ``dt_eval._C``.

    Raises:
        ImportError: the extension is not built; the message says how to build it.
    """
    try:
        from dt_eval import _C
    except ImportError as exc:  # pragma: no cover - exercised only on broken installs
        raise ImportError(
            "dt_eval's native core (dt_eval._C) is not built or does not match this Python. "
            "Reinstall dt-eval from a wheel, or build it from the checkout with "
            "`pip install --no-build-isolation -e packages/dt-eval` (needs a C++17 compiler, CMake, nanobind "
            "and scikit-build-core)."
        ) from exc
    return _C
