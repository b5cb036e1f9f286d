"""docs/config_reference.md is what `tfprune.cli.config_reference` generates from the code, every parameter
on it has a meaning, gin binds every one of them, and every binding of a shipped config is on it."""

import importlib
import pathlib
import re

import gin
import pytest

from tfprune.cli import config_reference

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "config_reference.md"

pytestmark = pytest.mark.usefixtures("clean_gin")


def test_committed_page_is_the_generated_one():
    assert PAGE.read_text(encoding="utf-8") == config_reference.markdown(config_reference.configurables()), (
        f"docs/config_reference.md differs from the code: regenerate it with `{config_reference.COMMAND}`")


def test_every_parameter_has_a_meaning():
    items = config_reference.configurables()
    missing = [f"{item.name}.{p.name}" for item in items for p in item.parameters
               if p.meaning in (config_reference.MISSING, "")]
    missing += [f"{item.name}(**kwargs)" for item in items
                if item.extra_keywords == config_reference.MISSING]
    assert not missing, f"write their meaning into the docstring's Args section: {missing}"
    stale = {item.name: item.stale for item in items if item.stale}
    assert not stale, f"the docstrings explain parameters their signatures do not have: {stale}"


def test_gin_binds_every_listed_parameter():
    """The static reading agrees with gin: each listed parameter exists and passes the allow/deny lists."""
    items = config_reference.configurables()
    assert {"run", "build_datasets", "JointPruner", "make_optimizer", "EpisodicPolicy", "FixedPolicy"} <= {
        item.name for item in items}
    for item in items:
        importlib.import_module(item.module)  # registers it with gin
        for p in item.parameters:
            gin.bind_parameter(f"{item.name}.{p.name}", None)
    with pytest.raises(ValueError):  # and a name gin refuses is refused: the loop above can fail
        gin.bind_parameter("EpisodicPolicy.seed", 1)  # allowlist=["center"]


def _shipped_bindings():
    for path in sorted((ROOT / "tfprune" / "configs").rglob("*.gin")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"(\w+)\.(\w+)\s*=", line)
            if match:
                yield path.name, match.group(1), match.group(2)


def test_every_shipped_binding_is_on_the_page():
    items = {item.name: item for item in config_reference.configurables()}
    bindings = list(_shipped_bindings())
    assert len(bindings) > 50
    absent = [f"{config}: {name}.{parameter}" for config, name, parameter in bindings
              if name not in items or not (items[name].extra_keywords
                                           or parameter in {p.name for p in items[name].parameters})]
    assert not absent, absent


def test_args_section_reads_shared_entries_and_stops_at_the_next_heading():
    doc = """Summary.

    Args:
        a / b (gin): meaning of a / meaning of b,
        continued at the entry's indent (no colon: not an entry).
        c: plain.

    Returns:
        d: not a parameter.
    """
    assert config_reference.args_section(doc) == {
        "a": ("meaning of a / meaning of b, continued at the entry's indent (no colon: not an entry).", ("a", "b")),
        "b": ("meaning of a / meaning of b, continued at the entry's indent (no colon: not an entry).", ("a", "b")),
        "c": ("plain.", ("c",))}


def test_docs_name_only_existing_gin_parameters():
    """Every `Configurable.name` the README and docs mention, as a binding or in backticks, is one of its
    parameters (or, for a class, one of its attributes: `SubnetScorer.score_many` is a method)."""
    items = {item.name: item for item in config_reference.configurables()}
    pages = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").rglob("*.md") if p != PAGE)
    wrong, seen = [], 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for name, attribute in re.findall(r"\b(\w+)\.(\w+)\s*=", text) + re.findall(r"`(\w+)\.(\w+)`", text):
            item = items.get(name)
            if item is None:
                continue
            seen += 1
            known = {p.name for p in item.parameters} | ({attribute} if item.extra_keywords else set())
            owner = getattr(importlib.import_module(item.module), name)
            if attribute not in known and not (isinstance(owner, type) and hasattr(owner, attribute)):
                wrong.append(f"{page.relative_to(ROOT)}: {name}.{attribute}")
    assert seen > 100, seen
    assert not wrong, f"no such gin parameter (docs/config_reference.md lists them): {wrong}"
