"""Where a `--config` comes from: a file path, else a gin config shipped inside the package.

Users type `--config imagenet_resnet50.gin` (a bare name) or `configs/imagenet_resnet50.gin` (the
repository's folder) from whatever directory they are in, and a pip-installed tfprune has no
`configs/` folder beside them. So a config that is not a file path is looked up among the shipped
ones (`tfprune/configs/`, which in a source checkout is the repository's `configs/` folder itself).
A file path always wins: a user's own `smoke.gin` is never shadowed.
"""

import os

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
    """One `name  first comment line` row per shipped config, for --list-configs."""
    rows = []
    for name in shipped():
        with open(os.path.join(SHIPPED_DIR, name)) as f:
            first = f.readline().strip()
        rows.append((name, first.lstrip("# ") if first.startswith("#") else ""))
    width = max((len(n) for n, _ in rows), default=0)
    return [f"{n.ljust(width)}  {d}" for n, d in rows]
