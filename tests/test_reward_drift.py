"""The reward-drift page's arithmetic on hand-made histories (`tfprune.studies.reward_drift`)."""

import json

import pytest

from tfprune.studies import reward_drift


def _entry(epoch, mean, std=0.0, forecast=float("nan"), episodes=1):
    return {"epoch": epoch, "reward_mean": mean, "reward_std": std, "dynamics_forecast_mse": forecast,
            "episodes": episodes}


def test_a_fixed_structure_is_told_from_a_search_by_its_one_scored_sub_network():
    assert reward_drift.is_fixed([_entry(2, 0.1), _entry(3, 0.3)])
    assert not reward_drift.is_fixed([_entry(2, 0.1, std=0.05, episodes=128)])
    assert not reward_drift.is_fixed([])


def test_drift_and_the_constant_forecasts():
    d = reward_drift.drift([_entry(2, 0.10), _entry(3, 0.40), _entry(4, 0.30)])
    assert d["change"] == pytest.approx(0.20) and d["mean_step"] == pytest.approx(0.20)  # (0.3 + 0.1) / 2
    rows = reward_drift.forecast_errors([_entry(2, 0.2, 0.1, forecast=0.5, episodes=8),
                                         _entry(3, 0.5, 0.1, forecast=0.02, episodes=8)])
    assert len(rows) == 1  # the first step has no forecast worth judging: the model had seen nothing
    assert rows[0]["step_mean"] == pytest.approx(0.01) and rows[0]["persistence"] == pytest.approx(0.01 + 0.09)
    assert reward_drift.forecast_errors([_entry(2, 0.2), _entry(3, 0.3)]) is None  # no dynamics model


def test_the_page_has_both_sections_and_none_without_histories(tmp_path):
    assert reward_drift.markdown(str(tmp_path)) is None
    (tmp_path / "histories").mkdir()
    (tmp_path / "histories" / "uniform_seed0.json").write_text(json.dumps([_entry(2, 0.1), _entry(3, 0.5)]))
    (tmp_path / "histories" / "agent_seed0.json").write_text(json.dumps(
        [_entry(2, 0.2, 0.1, 0.5, 8), _entry(3, 0.5, 0.1, 0.02, 8)]))
    text = reward_drift.markdown(str(tmp_path))
    assert "| uniform_seed0 | 10.0 / 50.0 | +40.0 | 40.0 |" in text
    assert "| agent_seed0 | 1 | 200.0 | 1000.0 | 100.0 | 0.20 |" in text
