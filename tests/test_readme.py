"""The README is a short front door whose links resolve, and the library example runs as written."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def python_block_after(path, heading):
    text = read(path)
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_library_api_example_runs():
    namespace = {}
    exec(compile(python_block_after("docs/library.md", "## Library API"), "docs/library.md", "exec"), namespace)  # noqa: S102
    assert abs(namespace["achieved"] - 0.5) <= 0.02
    assert namespace["compact"].count_params() < namespace["model"].count_params()


def test_readme_is_short():
    assert len(read("README.md").splitlines()) <= 250


def relative_links(path):
    text = re.sub(r"```.*?```", "", read(path), flags=re.S)  # links inside code blocks are not links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#")[0]


def test_readme_and_docs_relative_links_resolve():
    pages = ["README.md", "CHANGELOG.md"] + ["docs/" + n for n in sorted(os.listdir(os.path.join(ROOT, "docs")))
                                           if n.endswith(".md")]
    missing = [(page, target) for page in pages if os.path.exists(os.path.join(ROOT, page))
               for target in relative_links(page)
               if not os.path.exists(os.path.join(ROOT, os.path.dirname(page), target))]
    assert not missing, missing


def test_readme_prune_snippet_is_the_tested_one():
    """The README's one-call snippet is the first block of docs/keras_pipeline.md, which
    tests/test_api.py::test_keras_pipeline_doc_snippets_run executes: the front door cannot rot apart."""
    readme = python_block_after("README.md", "## Prune your own Keras model")
    assert readme == python_block_after("docs/keras_pipeline.md", "## Prune your own Keras CNN in one call")
    assert "tfprune.prune(" in readme
