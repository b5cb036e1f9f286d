"""tfprune.studies.cost_bench: the agent step's growth fit and prediction (quick), the loop-vs-fit and scaling
benches on tiny sizes (slow: they time real training and agent steps)."""

import pytest

from tfprune.studies import cost_bench


def _rows(a=0.02, a2=0.005, b=1e-3, c=1.5):
    rows = []
    for groups, gflops in ((9, 0.04), (27, 0.12), (54, 0.25), (17, 0.3)):
        for num_samples, held_out in ((16, 64), (16, 256), (64, 64)):
            row = {"groups": groups, "gflops": gflops, "num_samples": num_samples, "held_out": held_out,
                   "episode_images_used": 32, "finalists": 4}
            row["agent_step_seconds"] = (a * num_samples * 32 * gflops + a2 * 4 * held_out * gflops +
                                         b * groups * num_samples + c)
            rows.append(row)
    return rows


def test_the_growth_fit_recovers_its_coefficients_and_predicts_a_share():
    fit = cost_bench.fit_growth(_rows())
    assert fit["seconds_per_episode_gflop"] == pytest.approx(0.02)
    assert fit["seconds_per_finalist_gflop"] == pytest.approx(0.005)
    assert fit["seconds_per_group_episode"] == pytest.approx(1e-3)
    assert fit["constant_seconds"] == pytest.approx(1.5)
    assert max(abs(e) for e in fit["relative_errors"]) < 1e-9
    share = cost_bench.predict_share(fit, groups=10, num_samples=100, episode_images=10, finalists=2, held_out=100,
                                     gflops=1.0, epoch_images=1000, train_images_per_second=10)
    # 0.02 * 1000 + 0.005 * 200 + 1e-3 * 1000 + 1.5 = 23.5 s against a 100 s epoch
    assert share["agent_step_seconds"] == pytest.approx(23.5)
    assert share["share"] == pytest.approx(23.5 / 123.5)


def test_too_few_rows_give_no_fit_and_the_grid_varies_one_factor_at_a_time():
    assert cost_bench.fit_growth(_rows()[:3]) is None
    grid = cost_bench.scaling_grid(models=(("resnet20", 32),), held_out=(64, 256), num_samples=(16, 64))
    assert [(g["held_out"], g["num_samples"]) for g in grid] == [(64, 16), (256, 16), (64, 64)]


@pytest.mark.slow
def test_bench_fit_times_the_three_loops():
    result = cost_bench.bench_fit("resnet8", width_multiplier=0.25, image_size=8, batch_size=16, steps=3, rounds=1)
    assert set(result["images_per_second"]) == set(cost_bench.FIT_VARIANTS)
    assert all(v > 0 for v in result["images_per_second"].values())
    assert result["loop_over_fit"] > 0
    assert len(cost_bench.fit_rows(result)) == 3


@pytest.mark.slow
def test_one_scaling_configuration_runs_in_its_own_process():
    config = {"model": "resnet8", "image_size": 16, "held_out": 32, "num_samples": 4, "episode_images": 8,
              "dynamics_steps": 5}
    result = cost_bench.bench_agent_scaling([config], agent_steps=1, log=lambda line: None)
    (row,) = result["rows"]
    assert "error" not in row, row
    assert row["groups"] > 0 and row["gflops"] > 0 and row["agent_step_seconds"] > 0
    assert row["peak_rss_mb"] >= row["rss_before_mb"] > 0
    assert result["fit"] is None  # one row: nothing to fit
    assert "failed" not in cost_bench.scaling_rows(result)[0][1]


def _scaling_result():
    rows = _rows()
    for r, model in zip(rows, ["resnet20"] * 3 + ["resnet56"] * 3 + ["resnet110"] * 3 + ["resnet50"] * 3):
        r.update(model=model, image_size=224 if model == "resnet50" else 32, first_agent_step_seconds=9.0,
                 peak_rss_mb=2000.0)
    rows[0]["train_images_per_second"] = 1000.0
    rows[9]["train_images_per_second"] = 10.0
    return cost_bench.derived(rows)


def test_shares_use_each_models_measured_speed_and_the_shipped_configs_settings():
    result = _scaling_result()
    shares = result["shares"]
    assert [s["model"] for s in shares] == ["resnet20"] * 3 + ["resnet50"] * 3  # models with a measured speed
    assert shares[0]["epoch_seconds"] == pytest.approx(50_000 / 1000.0)
    shipped = result["shipped"]
    assert (shipped["num_samples"], shipped["episode_images"], shipped["finalists"], shipped["held_out"]) == \
        (128, 32, 4, 2048)  # configs/imagenet_resnet50.gin and its includes
    assert shipped["epoch_seconds"] == pytest.approx(1_281_167 / 10.0)
    assert 0 < shipped["share"] < 1


def test_the_performance_page_is_generated_from_a_bench_json(tmp_path):
    import json

    from tfprune.studies import results_pages

    fit = {"model": "resnet20", "width_multiplier": 0.5, "image_size": 16, "batch_size": 64, "steps": 50,
           "jit_compile": False, "images_per_second": dict(zip(cost_bench.FIT_VARIANTS, (1000.0, 990.0, 900.0))),
           "round_images_per_second": dict(zip(cost_bench.FIT_VARIANTS, ([1000.0, 2000.0], [990.0, 1980.0],
                                                                          [900.0, 1600.0])))}
    results = {"machine": {"cpu": "AMD EPYC", "cpu_count": 2, "gpus": 0, "tensorflow": "2.21.0"},
               "command": "tfprune bench --only fit,scaling", "commit": "abc123", "fit": fit,
               "scaling": _scaling_result()}
    folder = tmp_path / "performance"
    folder.mkdir()
    (folder / results_pages.BENCH_JSON).write_text(json.dumps(results))
    page = results_pages.pages(str(folder))[results_pages.BENCH_MARKDOWN]
    assert page.startswith("# Speed benchmarks: tfprune bench --only fit,scaling\n\nCommit: abc123; machine: AMD EPYC")
    # rounds' ratios 0.9 and 0.8; best against best 1600 / 2000
    assert "| tfprune loop (gated+alignment) | 900 | 0.900 | 0.850 | 0.800 | 900, 1600 |" in page
    assert "Predicted for `imagenet_resnet50.gin` (128 episodes x 32 images, 4 finalists x 2048)" in page
    assert results_pages.plot_names(str(folder)) == []
