"""Plain-text tables for metric logs (no third-party table package)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table", "metrics_table", "per_category_table"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-style pipe table; floats printed with 3 decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)
    ]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join(":" + "-" * (w + 1) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, sep, *body])


def metrics_table(metrics: dict[str, float]) -> str:
    """One-row table of named metrics."""
    return format_table(list(metrics), [list(metrics.values())])


def per_category_table(values: Sequence[tuple[str, float]], metric: str = "AP", columns: int = 3) -> str:
    """Category/metric pairs laid out ``columns`` pairs per row, as detectron2 prints per-category AP."""
    flat: list[object] = [x for pair in values for x in pair]
    width = 2 * min(columns, max(len(values), 1))
    rows = [flat[i : i + width] for i in range(0, len(flat), width)]
    if rows and len(rows[-1]) < width:
        rows[-1] = [*rows[-1], *([""] * (width - len(rows[-1])))]
    return format_table(["category", metric] * (width // 2), rows)
