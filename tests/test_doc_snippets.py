"""Every fenced code block of README.md and docs/**/*.md is executed, checked, or explicitly exempted:
snippets rot unless something runs them.

Conventions (a page's author reads these):

- Every fence names its language: ``python`` (run), ``bash`` (checked), ``text`` (output, trees) or
  ``bibtex``. A bare fence fails.
- The ``python`` blocks of one page run in order, in one namespace, in a fresh Python process whose
  working directory is an empty temporary folder: a block may use what an earlier block of the page
  defined. Tracebacks name the page and its line.
- A comment on the line before a ``python`` fence changes that block:
  ``<!-- snippet: skip (REASON) -->``: not run, for a block that cannot run here (the ImageNet tars, a
  GPU, a placeholder such as ``fit(...)``); the reason is required and says why.
  ``<!-- snippet: slow -->``: the page's run belongs to the slow suite (``pytest -m slow``).
  ``<!-- snippet: copy of PAGE -->``: the block must equal a block that runs on PAGE, and is not run twice.
  Any other ``snippet:`` comment fails.
- A slow page may be run smaller than written (`SHRINK`: fewer epochs and episodes), each replacement
  matching the page's text, so that a changed snippet fails instead of silently running at full size;
  `CHECKS` adds assertions on the namespace after a page's blocks.
- ``bash`` blocks are not run; each ``tfprune COMMAND``, ``python tools/X.py`` and ``python -m tfprune``
  line must name an existing command or tool, every ``--flag`` must be in its ``--help``, every
  ``--config`` must resolve, every ``--gin_bindings 'name.parameter = ...'`` must name a parameter of
  the configuration reference (`tfprune.cli.config_reference`), and the ``--methods`` of compare and the
  ``--only`` of bench must be theirs (`CHOICES`).
"""

import contextlib
import dataclasses
import functools
import io
import json
import os
import pathlib
import re
import runpy
import shlex
import subprocess
import sys
import textwrap

import pytest

from tfprune.cli import commands, config_files, config_reference
from tfprune.studies import bench, compare

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = sorted(["README.md"] + [str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")])
LANGUAGES = {"python", "bash", "text", "bibtex"}
MARKER = re.compile(r"<!-- snippet: (.*?) -->")
# Comma-separated values checked against the study's own list; an all-capitals value is a placeholder.
CHOICES = {("compare", "--methods"): compare.METHODS, ("bench", "--only"): bench.BENCHES}
SHRINK = {"docs/keras_pipeline.md": [("epochs=10,", "epochs=3,"), ("epochs = 6", "epochs = 2"),
                                     ("num_samples=16", "num_samples=4"), ("epochs=2)", "epochs=1)")]}
CHECKS = {
    "docs/library.md": "assert abs(achieved - 0.5) <= 0.02\n"
                       "assert compact.count_params() < model.count_params()\n",
    "docs/keras_pipeline.md": "import os\n"
                              "assert result.flops_ratio <= 0.52 and os.path.exists('pruned/model_float.tflite')\n"
                              "assert 0.6 - 0.02 - 1e-6 <= by_latency.predicted_latency_ratio <= 0.6 + 1e-6\n"
                              "assert report['tflite']['int8']['verification']['passed']\n"
                              "assert 0.47 <= achieved <= 0.5\n"
                              "assert l1_compact.count_params() < model.count_params()\n"
                              "assert len(int8_tflite) > 1000\n",
}
DRIVER = """import json, sys
namespace = {"__name__": "__main__"}
for page, code in json.load(open(sys.argv[1])):
    exec(compile(code, page, "exec"), namespace)
"""


@dataclasses.dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    code: str  # dedented
    marker: str  # the snippet comment's text before the fence, "" when none

    @property
    def where(self):
        return f"{self.page}:{self.line}"


def blocks(page):
    """The fenced blocks of a page (indented ones in lists too), in order."""
    text = (ROOT / page).read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^( *)```(\S*)[^\n]*\n(.*?)^\1```[ \t]*$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        before = [s for s in text[:match.start()].splitlines() if s.strip()][-1:] or [""]
        marker = MARKER.fullmatch(before[0].strip())
        found.append(Block(page, line, match.group(2), textwrap.dedent(match.group(3)),
                           marker.group(1) if marker else ""))
    return found


def _kind(block):
    """"run", "slow", "skip" or "copy" for a python block; raises on a marker that means nothing."""
    if not block.marker:
        return "run"
    if block.marker == "slow":
        return "slow"
    if re.fullmatch(r"skip \(.*\S.*\)", block.marker):
        return "skip"
    if block.marker.startswith("copy of "):
        return "copy"
    raise ValueError(f"{block.where}: unknown snippet marker {block.marker!r}")


def test_every_fence_is_declared_and_every_python_block_runs_or_is_exempted():
    problems = []
    for page in PAGES:
        fences = re.findall(r"^ *```", (ROOT / page).read_text(encoding="utf-8"), re.M)
        if len(fences) != 2 * len(blocks(page)):  # an unclosed or misindented fence hides blocks
            problems.append(f"{page}: {len(fences)} fence lines for {len(blocks(page))} blocks")
        for block in blocks(page):
            if block.language not in LANGUAGES:
                problems.append(f"{block.where}: fence language {block.language!r}, not one of {sorted(LANGUAGES)}")
            elif block.marker and block.language != "python":
                problems.append(f"{block.where}: a snippet marker on a {block.language} block means nothing")
            elif block.language == "python":
                try:
                    _kind(block)
                except ValueError as e:
                    problems.append(str(e))
    assert not problems, problems


def test_markers_mean_what_the_conventions_say():
    def kind(marker):
        return _kind(Block("page.md", 1, "python", "pass\n", marker))

    assert [kind(m) for m in ("", "slow", "skip (needs the ImageNet tars)", "copy of docs/x.md")] == [
        "run", "slow", "skip", "copy"]
    for meaningless in ("skip", "skip ( )", "slwo", "skip: needs a GPU"):
        with pytest.raises(ValueError, match="unknown snippet marker"):
            kind(meaningless)


def test_a_copied_block_equals_a_block_that_runs_there():
    copies = [b for page in PAGES for b in blocks(page) if b.language == "python" and b.marker.startswith("copy of")]
    assert copies, "README.md's one-call snippet is marked as a copy of docs/keras_pipeline.md's"
    for block in copies:
        source = block.marker.removeprefix("copy of ").strip()
        running = [b.code for b in blocks(source) if b.language == "python" and _kind(b) in ("run", "slow")]
        assert block.code in running, f"{block.where} differs from every running block of {source}"


def _runnable_pages():
    for page in PAGES:
        kinds = [_kind(b) for b in blocks(page) if b.language == "python"]
        if "run" in kinds or "slow" in kinds:
            yield pytest.param(page, id=page, marks=[pytest.mark.slow] if "slow" in kinds else [])


def _page_program(page):
    """[(page, code)] of the page's running blocks, each padded to its line in the page, then CHECKS."""
    program = [(page, "\n" * b.line + b.code) for b in blocks(page)
               if b.language == "python" and _kind(b) in ("run", "slow")]
    text = "".join(code for _, code in program)
    for old, new in SHRINK.get(page, []):
        assert old in text, f"{page}: SHRINK's {old!r} is gone from the page: update SHRINK"
        program = [(p, code.replace(old, new)) for p, code in program]
    return program + [(f"{page} (CHECKS of tests/test_doc_snippets.py)", CHECKS.get(page, ""))]


@pytest.mark.parametrize("page", list(_runnable_pages()))
def test_page_snippets_run(page, tmp_path):
    (tmp_path / "program.json").write_text(json.dumps(_page_program(page)))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-c", DRIVER, "program.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{page}'s snippets failed:\n{done.stderr[-4000:]}"


# ---- bash blocks: named commands, tools, flags, configs and gin parameters exist ----------------------

def shell_commands(code):
    """Each simple command of a bash block as a token list, without leading VAR=value and `nice -n N`."""
    code = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", code.replace("\\\n", " "))
    for line in code.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        command = []
        for token in list(lexer) + [";"]:
            if token in (";", "&&", "||", "|", "&"):
                while command and (re.match(r"\w+=", command[0]) or command[0] == "nice"):
                    command = command[3:] if command[0] == "nice" and command[1:2] == ["-n"] else command[1:]
                if command:
                    yield command
                command = []
            else:
                command.append(token)


def _target(command):
    """("tfprune", subcommand) / ("tool", path) / ("file", path) a command runs, or None when not ours."""
    program, args = os.path.basename(command[0]), command[1:]
    if program == "tfprune":
        return "tfprune", args[0] if args else ""
    if re.fullmatch(r"python(3(\.\d+)?)?", program) and args:
        if args[0] == "-m" and args[1:2] == ["tfprune"]:
            return "tfprune", args[2] if len(args) > 2 else ""
        if args[0] == "-m" and args[1:2] and args[1].startswith("tfprune."):
            return "module", args[1]
        if args[0].startswith("tools/"):
            return "tool", args[0]
    if program in ("bash", "sh") and args and not args[0].startswith("-"):
        return "file", args[0]
    return None


@functools.lru_cache(maxsize=None)
def help_text(kind, name):
    """What `--help` prints for a tfprune subcommand or a tools/ script, run in this process."""
    out = io.StringIO()
    argv = sys.argv
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            if kind == "tfprune":
                commands.main([name, "--help"])
            else:
                sys.argv = [name, "--help"]
                runpy.run_path(str(ROOT / name), run_name="__main__")
    finally:
        sys.argv = argv
    return out.getvalue()


def _command_problems(command, parameters):
    target = _target(command)
    if target is None:
        return []
    kind, name = target
    if kind == "tfprune" and name not in commands.COMMANDS:
        return [f"no subcommand {name!r}"]
    if kind in ("tool", "file") and not (ROOT / name).is_file():
        return [f"no file {name}"]
    if kind == "module":
        return [] if (ROOT / (name.replace(".", "/") + ".py")).is_file() else [f"no module {name}"]
    if kind == "file":
        return []
    helptext, problems = help_text(kind, name), []
    for i, token in enumerate(command):
        flag = token.split("=")[0]
        if flag.startswith("--") and not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helptext):
            problems.append(f"{flag} is not in `{name} --help`")
        value = command[i + 1] if i + 1 < len(command) else ""
        if token == "--config" and value:
            try:
                config_files.resolve(value)
            except config_files.ConfigNotFound as e:
                problems.append(str(e))
        choices = CHOICES.get((os.path.basename(name).removesuffix(".py"), token))
        if choices is not None and not re.fullmatch(r"[A-Z]+", value):
            problems += [f"{token} {v}: not one of {', '.join(choices)}" for v in value.split(",") if v not in choices]
        if token == "--gin_bindings" and value:
            binding = re.match(r"\s*(\w+)\.(\w+)\s*=", value)
            if binding and binding.groups() not in parameters and (binding.group(1), "**") not in parameters:
                problems.append(f"no gin parameter {binding.group(1)}.{binding.group(2)}")
    return problems


def _gin_parameters():
    items = config_reference.configurables()
    return ({(item.name, p.name) for item in items for p in item.parameters}
            | {(item.name, "**") for item in items if item.extra_keywords})


def test_bash_blocks_name_existing_commands_flags_configs_and_parameters():
    parameters, problems, checked = _gin_parameters(), [], 0
    for page in PAGES:
        for block in (b for b in blocks(page) if b.language == "bash"):
            for command in shell_commands(block.code):
                checked += _target(command) is not None
                problems += [f"{block.where}: {' '.join(command)[:80]}: {p}"
                             for p in _command_problems(command, parameters)]
    assert checked > 20, checked  # the docs' command lines were found (24 once docs/results.md kept only generated studies)
    assert not problems, "\n".join(problems)


def test_the_bash_check_catches_a_wrong_flag_a_missing_tool_and_an_unknown_parameter():
    parameters = _gin_parameters()
    code = ("tfprune train --config smoke.gin --no_such_flag 1\n"
            "TF_CONFIG='{}' python tools/nothing.py --help\n"
            "nice -n 10 python tools/train.py --config smoke.gin --gin_bindings 'run.no_such = 1' && tfprune nope\n"
            "tfprune compare --config smoke.gin --methods agent,no_such --seeds S\n")
    problems = [p for command in shell_commands(code) for p in _command_problems(command, parameters)]
    assert problems == ["--no_such_flag is not in `train --help`", "no file tools/nothing.py",
                        "no gin parameter run.no_such", "no subcommand 'nope'",
                        f"--methods no_such: not one of {', '.join(compare.METHODS)}"]
