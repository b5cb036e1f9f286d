"""The structure rules of tfprune/, checked on the source so a change that breaks them fails CI.

- no class longer than 150 lines, no function longer than 60 lines: one job per unit;
- no attribute first assigned outside `__init__`: a reader sees an object's whole state in one place
  (Keras layers creating weights in `build()` are the one exception, as Keras prescribes);
- the run directory's file names are spelled only in `tfprune/infra/workdir.py`.
"""

import ast
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tfprune"
MAX_CLASS_LINES = 150
MAX_FUNCTION_LINES = 60
KERAS_BUILD_WEIGHTS = {("ChannelGate", "mask")}  # created in Layer.build(), the Keras convention


def _modules():
    return {path: ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


def _lines(node):
    return node.end_lineno - node.lineno + 1


def test_no_long_classes_or_functions():
    too_long = []
    for path, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and _lines(node) > MAX_CLASS_LINES:
                too_long.append(f"class {path.name}:{node.name} ({_lines(node)} lines)")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _lines(node) > MAX_FUNCTION_LINES:
                too_long.append(f"function {path.name}:{node.name} ({_lines(node)} lines)")
    assert not too_long, too_long


def _self_attributes_assigned(function):
    for node in ast.walk(function):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if not isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            continue
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                    yield sub.attr


def test_no_attribute_created_outside_init():
    late = []
    for path, tree in _modules().items():
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            methods = [f for f in cls.body if isinstance(f, ast.FunctionDef)]
            in_init = {a for f in methods if f.name == "__init__" for a in _self_attributes_assigned(f)}
            for f in methods:
                for attr in _self_attributes_assigned(f):
                    if f.name != "__init__" and attr not in in_init and (cls.name, attr) not in KERAS_BUILD_WEIGHTS:
                        late.append(f"{path.name}:{cls.name}.{attr} (first set in {f.name})")
    assert not late, sorted(set(late))


def test_run_directory_names_live_in_workdir_module():
    names = ["summary.json", "selection.json", "history.json", "gated_model.keras", "compact_model.keras",
             "ckpt_joint", "ckpt_finetune", "pruner_state-", "config.gin"]
    # a string that *is* such a name (a path being built), not a message that mentions one
    pattern = re.compile("(" + "|".join(re.escape(n) for n in names) + r")(\{.*\}|\d+)?(\.json)?")
    offenders = []
    for path, tree in _modules().items():
        if path.name == "workdir.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.fullmatch(node.value):
                offenders.append(f"{path.relative_to(PACKAGE)}: {node.value!r}")
    assert not offenders, offenders



# Bottom to top. A module may import its own part and the parts before it, never one after it.
# `errors` and `metrics` are the two shared leaf modules at the package's top level.
LAYERS = ["errors", "metrics", "infra", "data", "structure", "models", "deploy", "cost", "search", "pruning",
          "training", "cli", "studies"]
# The command line's subcommands `bench`, `compare`, `chaos` and `export` run the studies: the one way up.
STUDY_DISPATCH = PACKAGE / "cli" / "commands.py"


def _part(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return None if parts[0] in ("__init__", "__main__") else parts[0]


def _imports(tree):
    """(line, imported module's part, names, alias->part) of every tfprune import in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tfprune":
            bits = node.module.split(".")
            for alias in node.names:
                part = bits[1] if len(bits) > 1 else alias.name
                yield node.lineno, part, bits[1:] + [alias.name], alias.asname or alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bits = alias.name.split(".")
                if bits[0] == "tfprune" and len(bits) > 1:
                    yield node.lineno, bits[1], bits[1:], alias.asname


def test_every_module_belongs_to_a_layer():
    parts = {_part(path) for path in _modules()} - {None}
    assert parts <= set(LAYERS), f"parts missing from LAYERS: {sorted(parts - set(LAYERS))}"


def test_imports_point_down_the_layers():
    upward = []
    for path, tree in _modules().items():
        me = _part(path)
        if me is None:
            continue
        for line, part, _, _ in _imports(tree):
            if part in LAYERS and LAYERS.index(part) > LAYERS.index(me):
                if part == "studies" and path == STUDY_DISPATCH:
                    continue
                upward.append(f"{path.relative_to(PACKAGE)}:{line} ({me}) imports tfprune.{part}")
    assert not upward, upward


def test_no_private_name_crosses_parts():
    crossing = []
    for path, tree in _modules().items():
        me = _part(path)
        if me is None:
            continue
        aliases = {}
        for line, part, names, alias in _imports(tree):
            if part == me or part not in LAYERS:
                continue
            crossing += [f"{path.relative_to(PACKAGE)}:{line} imports {'.'.join(names)}" for n in names
                         if n.startswith("_")]
            if alias:
                aliases[alias] = part
        for node in ast.walk(tree):  # `module._private` reached through an imported module
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in aliases):
                crossing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not crossing, crossing
