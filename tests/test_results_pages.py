"""The results pages' comparison tables are generated from the committed CSVs, never hand-typed
(tfprune/studies/results_pages.py)."""

import os

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
