"""The configuration reference: every gin-configurable of tfprune, its parameters, defaults and meanings,
as the Markdown page docs/config_reference.md.

    python -m tfprune.cli.config_reference > docs/config_reference.md

The page is generated, never written by hand, so it cannot drift from the code: the names and defaults
come from the signatures, the meanings from the docstrings' ``Args:`` sections (the one source of truth:
a parameter without a meaning is fixed in its docstring, not here). The source is read with `ast`, not
imported: what a reader of the code sees is what the page says, whichever optional stacks are installed.
"""

import ast
import dataclasses
import pathlib
import re
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent
COMMAND = "python -m tfprune.cli.config_reference > docs/config_reference.md"
MISSING = "(no meaning in the docstring)"


@dataclasses.dataclass
class Parameter:
    name: str
    default: str  # source text of the default; "required" when there is none
    meaning: str
    entry: tuple = ()  # every name of the docstring entry that gives the meaning (``a / b: ...``)


@dataclasses.dataclass
class Configurable:
    name: str  # the gin name, as in `name.parameter = value`
    module: str
    summary: str  # the docstring's first paragraph
    parameters: list
    extra_keywords: str = ""  # meaning of **kwargs, when the configurable takes any keyword
    stale: tuple = ()  # names the docstring explains that the signature no longer has


def configurables(package=PACKAGE):
    """Every `@gin.configurable` function or class under `package`, sorted by gin name."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        for node in tree.body:
            decorator = _gin_decorator(node)
            if decorator is not None:
                found.append(_configurable(node, decorator, module, classes))
    return sorted(found, key=lambda c: c.name.lower())


def _gin_decorator(node):
    """The node's `gin.configurable` decorator (a name or a call), or None."""
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) == "gin.configurable":
            return decorator
    return None


def _configurable(node, decorator, module, classes):
    function, docstrings = node, [ast.get_docstring(node) or ""]
    if isinstance(node, ast.ClassDef):
        function = _init_of(node, classes)
        docstrings.append(ast.get_docstring(function) or "" if function else "")
    meanings = {}
    for doc in docstrings:
        meanings.update(prose_entries(doc))
        meanings.update(args_section(doc))
    parameters = [Parameter(name, default, *meanings.get(name, (MISSING, (name,))))
                  for name, default in _signature(function) if _exposed(name, decorator)]
    kwargs = function.args.kwarg.arg if function and function.args.kwarg else None
    summary = " ".join(docstrings[0].split("\n\n")[0].split())
    extra = meanings.get(kwargs, (MISSING,))[0] if kwargs else ""
    stale = tuple(sorted(set(meanings) - {name for name, _ in _signature(function)} - {kwargs}))
    return Configurable(node.name, module, summary, parameters, extra, stale)


def _init_of(cls, classes):
    """The class's `__init__`, else its first base's found in the same module (None: it takes nothing)."""
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            return item
    bases = [classes[b.id] for b in cls.bases if isinstance(b, ast.Name) and b.id in classes]
    return _init_of(bases[0], classes) if bases else None


def _signature(function):
    """(name, default source) of every parameter gin could bind, `self` and *args/**kwargs left out."""
    if function is None:
        return []
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    return [(arg.arg, _default_text(default)) for arg, default in pairs if arg.arg not in ("self", "cls")]


def _default_text(default):
    text = "required" if default is None else ast.unparse(default)
    return "required" if text == "gin.REQUIRED" else text


def _exposed(name, decorator):
    """Whether gin lets a config bind `name`, after the decorator's allowlist / denylist."""
    if not isinstance(decorator, ast.Call):
        return True
    lists = {kw.arg: ast.literal_eval(kw.value) for kw in decorator.keywords if kw.arg in ("allowlist", "denylist")}
    if "allowlist" in lists:
        return name in lists["allowlist"]
    return name not in lists.get("denylist", [])


def args_section(docstring):
    """{parameter: (meaning, the entry's names)} from a Google-style ``Args:`` section. An entry may name
    several parameters, ``a / b: meaning of a / meaning of b``: each of them gets the whole entry."""
    lines = docstring.expandtabs().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if start is None:
        return {}
    entries, indent = [], None
    for line in lines[start + 1:]:
        depth = len(line) - len(line.lstrip())
        if line.strip() and indent is None:
            indent = depth
        if line.strip() and depth < indent:
            break  # the section ended: the next heading ("Returns:") or prose
        # an entry opens with its name(s), "a:", "a / b", "a, b", "a (gin):"; any other line continues one
        if line.strip() and depth == indent and re.match(r"\*{0,2}\w+(:|\s*/|,|\s*\()", line.strip()):
            entries.append(line.strip())
        elif line.strip() and entries:
            entries[-1] += " " + line.strip()
    return dict(pair for entry in entries for pair in _entry(entry))


def prose_entries(docstring):
    """{parameter: (meaning, (parameter,))} from paragraphs that open with the parameter, as in
    "``center`` (gin): the rule ...": the form of a docstring whose parameters need a paragraph each."""
    found = {}
    for paragraph in docstring.split("\n\n"):
        match = re.match(r"``(\w+)``(?:\s*\([^)]*\))?:\s*(.*)", " ".join(paragraph.split()))
        if match:
            found[match.group(1)] = (match.group(2), (match.group(1),))
    return found


def _entry(entry):
    names, _, meaning = entry.partition(": ")
    names = re.sub(r"\s*\(.*?\)", "", names)  # "recentre (gin)": a note on the name, not a name
    names = [n.strip().lstrip("*") for n in re.split(r"\s*/\s*|\s*,\s*", names)]
    names = tuple(name for name in names if name.isidentifier())
    return [(name, (" ".join(meaning.split()), names)) for name in names]


def markdown(items):
    """The reference page: one section per configurable, one line per parameter."""
    out = ["# Configuration reference", "",
           "Every gin-configurable of tfprune with its parameters, defaults and meanings, as set in a config "
           "file (`JointPruner.num_samples = 64`) or on the command line (`--gin_bindings 'run.epochs = 3'`).",
           "How configs are used: [configs and operations](configs.md).", "",
           f"Generated from the source's signatures and docstrings by `{COMMAND}`; do not edit it by hand "
           "(`tests/test_config_reference.py` fails when it differs from the code).", ""]
    for item in items:
        out += [f"## {item.name}", "", f"`{item.module}.{item.name}`: {item.summary}", ""]
        out += [_line(run) for run in _runs(item.parameters)]
        if item.extra_keywords:
            out.append(f"- other keywords: {item.extra_keywords}")
        if not item.parameters and not item.extra_keywords:
            out.append(f"- no parameters to bind: a binding names it whole, `@{item.name}` (or `@{item.name}()`).")
        out.append("")
    return "\n".join(out)


def _runs(parameters):
    """Consecutive parameters that share one docstring entry, as lists: one line each."""
    runs = []
    for p in parameters:
        if runs and runs[-1][-1].entry == p.entry and len(p.entry) > 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _line(run):
    names = ", ".join(f"`{p.name}` = `{p.default}`" for p in run)
    entry = run[0].entry
    note = "" if len(run) == len(entry) else f"({' / '.join(entry)}) "  # the entry names more than this line
    return f"- {names}: {note}{run[0].meaning}"


def main(argv=None):
    """Prints the page (``> docs/config_reference.md`` writes it)."""
    del argv
    sys.stdout.write(markdown(configurables()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
