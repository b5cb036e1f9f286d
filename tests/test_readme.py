"""The README is a short front door whose links resolve (tests/test_doc_snippets.py runs its code)."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


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

