"""The reward fidelity study (tfprune/studies/reward_fidelity.py): its statistics on known orders, its
sub-network draws, and (slow) a test-sized study that writes, resumes and renders its page."""

import json
import os

import gin
import numpy as np
import pytest

from tfprune.studies import reward_fidelity as fidelity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")


def test_spearman_reads_ranks_not_values():
    truth = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert fidelity.spearman([1, 2, 3, 4, 50], truth) == pytest.approx(1.0)
    assert fidelity.spearman([5, 4, 3, 2, 1], truth) == pytest.approx(-1.0)
    assert np.isnan(fidelity.spearman([1, 1, 1, 1, 1], truth))  # a reward that ranks nothing


def test_regret_is_the_truth_lost_by_the_rewards_best():
    assert fidelity.regret([0.9, 0.1, 0.5], [0.70, 0.80, 0.75]) == pytest.approx(10.0)
    assert fidelity.regret([0.1, 0.9, 0.5], [0.70, 0.80, 0.75]) == 0.0


def test_a_reward_with_draws_is_judged_one_draw_at_a_time():
    truth = np.linspace(0.5, 0.9, 12)
    rows = [{"truth": t, **{p: t for p in fidelity.PROXIES}} for t in truth]
    for i, row in enumerate(rows):  # draw 0 ranks perfectly, draw 1 backwards: each alone, not their mean
        row["episode"] = [truth[i], -truth[i]]
    stats = fidelity.stage_stats(rows)
    assert stats["episode"]["rho"] == pytest.approx(0.0)
    assert stats["held_out"]["rho"] == pytest.approx(1.0)
    assert stats["held_out"]["low"] == pytest.approx(1.0) and stats["held_out"]["regret"] == 0.0
    assert stats["episode"]["regret"] == pytest.approx(100 * (truth[-1] - truth[0]) / 2)


def test_the_bootstrap_interval_widens_with_noise():
    rng = np.random.default_rng(0)
    truth = rng.uniform(size=40)
    tight = fidelity.bootstrap_interval(truth + rng.normal(0, 0.01, 40), truth)
    loose = fidelity.bootstrap_interval(truth + rng.normal(0, 0.5, 40), truth)
    assert tight[0] <= tight[1] and loose[0] <= loose[1]
    assert tight[1] - tight[0] < loose[1] - loose[0]
    assert loose[0] < fidelity.spearman(truth + rng.normal(0, 0.5, 40), truth) + 0.5


def test_candidate_ratios_are_the_rules_then_wide_and_local_draws_within_range():
    profile = [0.0, 0.1, 0.3]
    out = fidelity.candidate_ratios(3, 0.9, 10, profile, np.random.default_rng(0))
    names = [name for name, _, _ in out]
    assert names[:3] == ["uniform", "profile", "profile_mirror"]
    assert len(out) == 9  # + global magnitude, derived from the weights by the study = 10
    assert {family for _, family, _ in out[3:]} == {"wide", "local"}
    assert np.allclose(out[2][2], [0.3, 0.2, 0.0])
    for _, _, ratios in out:
        assert np.all((ratios >= 0) & (ratios <= 0.9))
    assert len(fidelity.candidate_ratios(3, 0.9, 10, None, np.random.default_rng(0))) == 9


@pytest.mark.slow
def test_a_test_sized_study_writes_resumes_and_renders(tmp_path, capsys):
    from tfprune.studies import results_pages

    workdir, out = tmp_path / "study", tmp_path / "page" / fidelity.JSON
    argv = ["--config", SMOKE, "--gin_param", "run.epochs = 2", "--gin_param", "run.warmup_epochs = 1",
            "--gin_param", "run.finetune_epochs = 1", "--gin_param", "build_datasets.held_out_examples = 128",
            "--workdir", str(workdir), "--json", str(out), "--subnets", "5", "--truth_images", "256",
            "--episode_draws", "2", "--short_steps", "2"]
    gin.clear_config()
    try:
        fidelity.main(argv)
        results = json.loads(out.read_text())
        rows = results["rows"]
        assert {r["epoch"] for r in rows} == {1, 2}
        assert {"uniform", "global_magnitude"} <= {r["name"] for r in rows}
        for row in rows:
            assert len(row["episode"]) == 2
            assert all(0.0 <= row[key] <= 1.0 for key in ("held_out", "moving_bn", "refit_head", "short_finetune",
                                                            "truth", "ceiling"))
            assert abs(row["flops_ratio"] - 0.5) < 0.05
        assert sorted(os.listdir(workdir)) == ["dense_epoch1.weights.h5", "dense_epoch2.weights.h5", fidelity.ROWS]
        capsys.readouterr()
        gin.clear_config()
        fidelity.main(argv)  # resumes: nothing left to train or measure
        printed = capsys.readouterr().out
        assert "dense epoch" not in printed and "truth 0." not in printed
        assert json.loads(out.read_text())["rows"] == rows
        page = results_pages.pages(str(out.parent))[fidelity.MARKDOWN]
        assert "## Weights after the warm-up (epoch 1)" in page and "## Weights after the last joint epoch (epoch 2)" in page
        assert all(f"| `{proxy}` |" in page for proxy in fidelity.PROXIES)
    finally:
        gin.clear_config()
