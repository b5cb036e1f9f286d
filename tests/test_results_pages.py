"""The results pages' comparison tables are generated from the committed CSVs, never hand-typed
(tfprune/studies/results_pages.py): a committed page or plot that differs from its regeneration fails, so
does a table of numbers on docs/results.md or under docs/results/ that is not a generated page, and a
decimal quoted in docs/results.md's prose or README's results section that no generated table holds."""

import glob
import json
import os
import re

import pytest

from tfprune.studies import results_pages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("folder", results_pages.studies(os.path.join(ROOT, results_pages.PAGES)))
def test_committed_pages_are_their_result_files_regenerated(folder):
    for name, text in results_pages.pages(folder).items():
        with open(os.path.join(folder, name)) as f:
            committed = f.read()
        assert text == committed, (
            f"{folder}/{name} is not what its result files give: regenerate it with "
            "`python -m tfprune.studies.results_pages` (never edit a table by hand)")


def test_a_written_comparison_round_trips_and_a_hand_edit_is_caught(tmp_path):
    from test_compare import _fake_rows
    from tfprune.studies.compare import write_tables

    folder = tmp_path / "results" / "study"
    rows = _fake_rows()
    rows[0]["seconds"] = float("nan")  # a run without its wall time
    write_tables(rows, ["agent", "uniform", "l1"], [0, 1], str(folder), ["a.gin"], command="python x.py")
    assert results_pages.studies(str(tmp_path / "results")) == [str(folder)]
    assert results_pages.retabulate(str(folder)) == (folder / "comparison.md").read_text()
    edited = (folder / "comparison.md").read_text().replace("| agent | +2.00 |", "| agent | +2.50 |")
    (folder / "comparison.md").write_text(edited)
    assert results_pages.retabulate(str(folder)) != edited
    results_pages.main([str(tmp_path / "results")])
    assert "| agent | +2.00 |" in (folder / "comparison.md").read_text()


def test_a_search_trajectory_is_rendered_from_the_committed_histories(tmp_path):
    import json

    folder = tmp_path / "study"
    (folder / "histories").mkdir(parents=True)
    history = [{"epoch": 3, "best_kept": {"a": 10, "b": 4}, "target_reward": 0.141},
               {"epoch": 4, "best_kept": {"a": 7, "b": 12}, "target_reward": 0.5}]
    (folder / "histories" / "agent_seed0.json").write_text(json.dumps(history))
    text = results_pages.trajectory(str(folder))
    assert "## agent_seed0" in text and "| 3 | 10/4 | 14.1 |" in text and "| 4 | 7/12 | 50.0 |" in text
    assert results_pages.trajectory(str(tmp_path)) is None


# Item 4 of issue 34: every measured number on the results pages comes from a committed result file.
RESULTS_PAGES = ["docs/results.md"]  # and every page under docs/results/
QUOTING = {"docs/results.md": None, "README.md": "## Results",  # page: the section whose prose is checked (None: all)
           "docs/deploy.md": "## Hardware-friendly channel counts (`round_to`)"}
DECIMAL = re.compile(r"(?<![\w.])[-+−]?(\d+\.\d+)(?![\w.]*\d)")


def _prose(text):
    """``text`` without fenced code, inline code and link targets: what a reader takes as the page's words."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.sub(r"\]\([^)\s]*\)", "]", text)


def tables(text):
    """[(first line number, [body rows as lists of cells])] of the Markdown tables outside code fences."""
    found, rows, start, fenced = [], None, 0, False
    for number, line in enumerate(text.splitlines() + [""], 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is not None and not fenced:
            if rows is None:
                rows, start = [], number
            rows.append(cells)
        elif rows is not None:
            body = [r for r in rows[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r)]
            found.append((start, body))
            rows = None
    return found


def hand_typed_tables(root, pages, generated):
    """'page:line' of every table holding a number (a body cell with a digit) on ``pages`` (paths
    relative to ``root``) that is not one of the ``generated`` pages."""
    generated = {os.path.abspath(path) for path in generated}
    return [f"{page}:{line}" for page in pages if os.path.abspath(os.path.join(root, page)) not in generated
            for line, body in tables(open(os.path.join(root, page), encoding="utf-8").read())
            if any(re.search(r"\d", cell) for row in body for cell in row)]


def unsourced_numbers(text, sources):
    """The decimal numbers of ``text``'s prose that appear in none of ``sources`` (texts), signs ignored."""
    known = {m.group(1) for source in sources for m in DECIMAL.finditer(source)}
    return [m.group(0) for m in DECIMAL.finditer(_prose(text)) if m.group(1) not in known]


def _section(text, heading):
    if heading is None:
        return text
    after = text.split("\n" + heading + "\n", 1)[1]
    return re.split(r"\n## ", after, maxsplit=1)[0]


def _results_pages(root):
    under = os.path.join(root, results_pages.PAGES)
    return RESULTS_PAGES + sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(under, "**", "*.md"),
                                                                              recursive=True))


def test_every_table_of_measured_numbers_on_the_results_pages_is_generated():
    generated = results_pages.generated(os.path.join(ROOT, results_pages.PAGES))
    assert generated, "no generated results page: docs/results/<study>/comparison.csv is missing"
    hand = hand_typed_tables(ROOT, _results_pages(ROOT), generated)
    assert not hand, (f"hand-typed tables of numbers on the results pages: {hand}. Commit the run's result files "
                      "under docs/results/<study>/ and generate the table (`python -m tfprune.studies.results_pages`), "
                      "or move a study without result files to CHANGELOG.md as history")


def test_every_decimal_quoted_on_the_results_page_and_in_the_readme_results_is_in_a_generated_table():
    sources = [open(path, encoding="utf-8").read()
               for path in results_pages.generated(os.path.join(ROOT, results_pages.PAGES))]
    for page, heading in QUOTING.items():
        text = _section(open(os.path.join(ROOT, page), encoding="utf-8").read(), heading)
        missing = unsourced_numbers(text, sources)
        assert not missing, (f"{page} quotes {missing}, which no generated results table holds: quote the "
                             "generated tables (docs/results/<study>/), or move the number to CHANGELOG.md as history")


@pytest.mark.parametrize("folder, name", [(folder, name)
                                          for folder in results_pages.studies(os.path.join(ROOT, results_pages.PAGES))
                                          for name in results_pages.plot_names(folder)])
def test_committed_plots_are_their_result_files_redrawn(folder, name, tmp_path):
    drawn = results_pages.plot(folder, str(tmp_path / name), name)
    with open(drawn, "rb") as f, open(os.path.join(folder, name), "rb") as g:
        assert f.read() == g.read(), (f"{folder}/{name} is not what its CSV draws (with the locked matplotlib): "
                                      "regenerate it with `python -m tfprune.studies.results_pages`")


def test_the_checks_catch_a_hand_typed_table_and_an_unsourced_number(tmp_path):
    (tmp_path / "docs" / "results" / "study").mkdir(parents=True)
    generated = tmp_path / "docs" / "results" / "study" / "comparison.md"
    generated.write_text("# t\n\n| method | acc |\n|---|---|\n| agent | 81.67 |\n")
    page = tmp_path / "docs" / "results.md"
    page.write_text("Prose quoting 81.67% and commit `3.1.4`.\n\n| regime | agent |\n|---|---|\n| ResNet | 84.55% |\n\n"
                    "```text\n| 1.5 | in a code block |\n```\n\n| method | note |\n|---|---|\n| agent | the method |\n")
    pages = ["docs/results.md", "docs/results/study/comparison.md"]
    assert hand_typed_tables(str(tmp_path), pages, [str(generated)]) == ["docs/results.md:3"]
    assert hand_typed_tables(str(tmp_path), pages, [str(generated), str(page)]) == []
    sources = [generated.read_text()]
    assert unsourced_numbers(page.read_text(), sources) == ["84.55"]
    assert unsourced_numbers("gains −38.05 pp and +81.67 pp, 0.75 of it", ["-38.05 | 81.67"]) == ["0.75"]


def changelog_anchors():
    """GitHub's anchors of CHANGELOG.md's headings."""
    text = open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8").read()
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_into_the_changelog_name_its_headings():
    """The history moved from docs/results.md to CHANGELOG.md (docs/changelog.md on the site); links to its
    sections must keep resolving (mkdocs checks the site's, this the README's too)."""
    anchors = changelog_anchors()
    pages = ["README.md", "CHANGELOG.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(
        os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
    broken = [(page, anchor) for page in pages
              for anchor in re.findall(r"(?i)changelog\.md#([\w\-]+)", open(os.path.join(ROOT, page), encoding="utf-8").read())
              if anchor not in anchors]
    assert not broken, broken


def test_a_deployment_bench_json_gives_its_tables(tmp_path):
    """`tfprune bench --only rounding --json DIR/bench.json` committed under docs/results/<study>/: its page
    holds the bench's report rows, so docs/deploy.md can quote generated numbers."""
    results = {"command": "tfprune bench --only rounding --json x/bench.json", "commit": "abc1234",
               "machine": {"cpu": "test CPU", "cpu_count": 2, "gpus": 0, "tensorflow": "2.21.0"},
               "rounding": {"rows": [
                   {"model": "resnet56", "variant": "full", "flops_ratio": 1.0, "params": 850000, "size_bytes": 3400000,
                    "latency_ms": {"1": 2.0}, "latency_ratio": {"1": 1.0}},
                   {"model": "resnet56", "variant": "round_to=16", "flops_ratio": 0.497, "params": 420000,
                    "size_bytes": 1700000, "latency_ms": {"1": 1.046}, "latency_ratio": {"1": 0.523}},
                   {"model": "tiny", "variant": "round_to=16", "refused": "BudgetError: out of reach"}]}}
    (tmp_path / "bench.json").write_text(json.dumps(results))
    page = results_pages.bench_page(str(tmp_path))
    assert page.startswith("# Speed benchmarks: tfprune bench --only rounding") and "abc1234" in page
    assert "## Whole models pruned at each `round_to`" in page
    assert "| resnet56 round_to=16 | FLOPs 0.497 | 0.420 M params, 1.70 MB; 1 thr 1.046 ms (0.523x) |" in page
    assert "| tiny round_to=16 | refused | BudgetError: out of reach |" in page
