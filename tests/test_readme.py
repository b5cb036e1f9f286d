"""The README's library example runs as written."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_block_after(heading):
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_library_api_example_runs():
    namespace = {}
    exec(compile(python_block_after("## Library API"), "README.md", "exec"), namespace)  # noqa: S102
    assert abs(namespace["achieved"] - 0.5) <= 0.02
    assert namespace["compact"].count_params() < namespace["model"].count_params()
