"""The structure rules of tfprune/, checked on the source so a change that breaks them fails CI.

- no class longer than 150 lines, no function longer than 60 lines: one job per unit;
- no attribute first assigned outside `__init__`: a reader sees an object's whole state in one place
  (Keras layers creating weights in `build()` are the one exception, as Keras prescribes);
- the run directory's file names are spelled only in `tfprune/workdir.py`.
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

