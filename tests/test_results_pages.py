"""The results pages' comparison tables are generated from the committed CSVs, never hand-typed
(tfprune/studies/results_pages.py)."""

import os

import pytest

from tfprune.studies import results_pages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("folder", results_pages.studies(os.path.join(ROOT, results_pages.PAGES)))
def test_committed_table_is_its_csv_regenerated(folder):
    with open(os.path.join(folder, results_pages.MARKDOWN)) as f:
        committed = f.read()
    assert results_pages.retabulate(folder) == committed, (
        f"{folder}/comparison.md is not what its comparison.csv gives: regenerate it with "
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
