"""Where a `--config` comes from: a file path, else a gin config shipped inside the package.

Users type `--config imagenet_resnet50.gin` (a bare name) or `configs/imagenet_resnet50.gin` (the
repository's folder) from whatever directory they are in, and a pip-installed tfprune has no
`configs/` folder beside them. So a config that is not a file path is looked up among the shipped
ones (`tfprune/configs/`, which in a source checkout is the repository's `configs/` folder itself).
A file path always wins: a user's own `smoke.gin` is never shadowed.
"""

import os
import re
import textwrap

from tfprune.errors import TfpruneError

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
_REPO_PREFIX = "configs" + os.sep


class ConfigNotFound(TfpruneError, FileNotFoundError):
    """Neither a file nor a shipped config of that name."""


def resolve(name):
    """The path of config `name`: the file itself when it exists, else the shipped config of that name
    (a leading `configs/` is allowed, as the README's commands spell them)."""
    if os.path.isfile(name):
        return name
    relative = name[len(_REPO_PREFIX):] if name.startswith(_REPO_PREFIX) else name
    for candidate in (relative, relative + ".gin"):
        path = os.path.join(SHIPPED_DIR, candidate)
        if not os.path.isabs(candidate) and os.path.isfile(path):
            return path
    raise ConfigNotFound(f"config file {name!r} does not exist and is not a shipped config; shipped: "
                         f"{', '.join(shipped())} (`tfprune train --list-configs` describes them).")


def shipped():
    """Names of the shipped top-level configs (the `base/` parts are included by them, not run alone)."""
    if not os.path.isdir(SHIPPED_DIR):
        return []
    return sorted(n for n in os.listdir(SHIPPED_DIR) if n.endswith(".gin"))


def describe():
    """One row per shipped config: its name and the first sentence of its leading comment block (whole,
    however many lines it spans), for --list-configs. Long sentences wrap under the description column."""
    rows = [(name, first_sentence(_leading_comment(os.path.join(SHIPPED_DIR, name)))) for name in shipped()]
    width = max((len(n) for n, _ in rows), default=0)
    lines = []
    for name, text in rows:
        wrapped = textwrap.wrap(text, width=max(40, 110 - width), break_on_hyphens=False) or [""]
        lines.append(f"{name.ljust(width)}  {wrapped[0]}".rstrip())
        lines += [" " * (width + 2) + more for more in wrapped[1:]]
    return lines


def _leading_comment(path):
    """The prose of a config's leading `#` lines, joined (indented command lines, `#   python ...`, end it)."""
    words = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("#") or line.startswith("#   "):
                break
            words.append(line.lstrip("#").strip())
    return " ".join(w for w in words if w)


def first_sentence(text):
    """`text` up to and including its first full stop followed by a space (or all of it)."""
    match = re.search(r"(?<=[.!?])\s", text)
    return text[:match.start()] if match else text
