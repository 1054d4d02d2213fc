"""The README's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_example_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    (example,) = re.findall(r"## Example\n\n```python\n(.*?)```", text, flags=re.S)
    exec(compile(example, "README.md", "exec"), {})
