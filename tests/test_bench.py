"""tfprune.studies.bench (behind tools/bench.py): the data-pipeline bench on a tiny input, the table, the arguments."""

import math
import os
import subprocess
import sys

import pytest

from tfprune.studies import bench

from test_latency import use_steady_timings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_data_counts_every_image_but_the_first_batch():
    from tfprune.data import build_datasets

    result = bench.bench_data(step_seconds=0.5, image_size=8, batch_size=32, data_epochs=2, sources=("digits",))
    batches = [int(x.shape[0]) for x, _ in build_datasets(source="digits", image_size=8, batch_size=32,
                                                           held_out_examples=256).train]
    digits = result["sources"]["digits"]
    assert digits["images"] == 2 * sum(batches) - batches[0]
    assert digits["seconds"] > 0
    assert digits["images_per_second"] == pytest.approx(digits["images"] / digits["seconds"])
    assert result["train_step_images_per_second"] == 64.0
    assert result["pipeline_over_train"]["digits"] == pytest.approx(digits["images_per_second"] / 64.0)
    no_step = bench.bench_data(image_size=8, batch_size=64, data_epochs=1, sources=("digits",))
    assert math.isnan(no_step["train_step_images_per_second"])


def _fake_results():
    return {
        "gating": {"step_seconds": {"plain": 0.1, "gated": 0.11, "gated+alignment": 0.12},
                   "gated_over_plain": 1.1, "gated_alignment_over_plain": 1.2},
        "agent": {"num_samples": 16, "dynamics_steps": 100, "held_out": 512, "agent_step_seconds": 2.5,
                  "first_agent_step_seconds": 9.0, "steps_per_cifar_epoch": 391,
                  "cifar_epoch_weight_seconds": 46.9, "agent_fraction_of_epoch": 0.0506,
                  "agent_step_breakdown_seconds": {"score": 2.0, "other": 0.5}},
        "tflite": {"threads": 1, "latency_ms": {"full": 2.0, "pruned": 1.2}, "size_bytes": {"full": 3_400_000},
                   "flops_ratio": 0.5, "latency_ratio": 0.6},
        "data": {"sources": {"digits": {"images_per_second": 5000.0}}, "train_step_images_per_second": 1000.0,
                 "pipeline_over_train": {"digits": 5.0}},
    }


def test_format_table():
    lines = bench.format_table(_fake_results()).splitlines()
    assert [c.strip() for c in lines[0].split(" | ")] == ["measurement", "value", "note"]
    assert all(len(line.split(" | ")[1]) == 14 for line in lines[2:])  # values right-aligned in 14 columns
    rows = {line.split(" | ")[0].strip(): [c.strip() for c in line.split(" | ")[1:]] for line in lines[2:]}
    assert rows["training step, gated"] == ["110.0 ms", "1.100x plain (target <= 1.15x)"]
    assert rows["CIFAR epoch of weight training (391 steps)"][1] == "agent = 5.06% of the epoch (target <= 5%)"
    assert rows["agent step part: score"] == ["2.00 s", ""]
    assert rows["TFLite float latency, pruned (FLOPs ratio 0.500)"] == [
        "1.200 ms", "latency ratio 0.600 vs FLOPs ratio 0.500"]
    assert rows["TFLite float latency, full (1 thread, batch 1)"][1] == "3400 kB"
    assert rows["input pipeline, digits"][1] == "5.0x the training step's 1000 img/s"
    only_data = bench.format_table({"data": _fake_results()["data"]}).splitlines()
    assert len(only_data) == 3 and "input pipeline, digits" in only_data[2]


@pytest.mark.slow
def test_arguments_and_unknown_benches():
    assert bench.parse_args(["--only", "rounding", "--round_to", "1,16"]).round_to == (1, 16)
    args = bench.parse_args(["--only", "tflite, data", "--model", "resnet8", "--latency_runs", "10"])
    assert args.only == ["tflite", "data"] and args.model == "resnet8" and args.latency_runs == 10
    assert args.num_samples is None and args.batch_size == 128
    with pytest.raises(bench.BenchError, match="magic"):
        bench.run_benchmarks(["data", "magic"])
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench.py"), "--only", "data,magic"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2 and "unknown benchmark(s) ['magic']" in result.stderr


@pytest.mark.slow
def test_channel_and_rounding_benches_on_tiny_inputs(monkeypatch):
    """The channel-count benches behind --only channels,rounding: structure, ratios against their own
    reference, and their table rows, on steady (injected) timings: real ones are `tfprune bench`'s."""
    from tfprune.studies import channel_bench

    use_steady_timings(monkeypatch)

    layers = channel_bench.bench_channels(bases=(8,), spatial=(4,), layers=("conv3x3", "depthwise3x3"),
                                          offsets=(-1, 0, 1), runs=3)
    assert [(r["layer"], r["channels"]) for r in layers["rows"]] == [
        ("conv3x3", 7), ("conv3x3", 8), ("conv3x3", 9), ("depthwise3x3", 7), ("depthwise3x3", 8), ("depthwise3x3", 9)]
    conv = {r["channels"]: r for r in layers["rows"] if r["layer"] == "conv3x3"}
    assert conv[8]["latency_ratio"] == 1.0 and conv[7]["macs_ratio"] == pytest.approx(49 / 64)
    assert conv[9]["latency_per_mac_ratio"] == pytest.approx(conv[9]["latency_ratio"] / (81 / 64))
    models = channel_bench.bench_rounding(("resnet8",), image_size=8, round_to=(1, 16, 64), threads=(1,), runs=3,
                                          log=lambda _: None)
    rows = {r["variant"]: r for r in models["rows"]}
    assert rows["full"]["latency_ratio"][1] == 1.0 and rows["full"]["flops_ratio"] == 1.0
    assert abs(rows["round_to=1"]["flops_ratio"] - 0.5) <= 0.02 and rows["round_to=1"]["size_bytes"] > 0
    assert "round_to=64" in rows["round_to=64"]["refused"]  # no group of resnet8 (16-64 channels) can shrink
    table = bench.format_table({"channels": layers, "rounding": models})
    cells = {line.split(" | ")[0].strip(): line.split(" | ")[1].strip() for line in table.splitlines()[2:]}
    assert cells["resnet8 round_to=64"] == "refused" and cells["resnet8 round_to=1"].startswith("FLOPs 0.")
    assert cells["conv3x3 4x4, 8 channels (1 thread)"].endswith(" ms")


@pytest.mark.slow
def test_latency_bench_on_tiny_inputs(tmp_path, monkeypatch):
    """The bench behind --only latency: full, FLOPs- and latency-budget variants per rounding, measured and
    predicted latency at each thread count, the verdict row. The timings are steady (injected): with real
    ones a busy machine could move the calibration off the budget and drop the latency row."""
    from tfprune.studies import latency_bench

    use_steady_timings(monkeypatch)
    result = latency_bench.bench_latency((("resnet8", 8),), round_to=(1,), threads=(1,), runs=3, max_points=2,
                                         cache_dir=str(tmp_path), log=lambda _: None)
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"full", "flops round_to=1", "latency round_to=1"}
    assert rows["full"]["flops_ratio"] == 1.0 and abs(rows["flops round_to=1"]["flops_ratio"] - 0.5) <= 0.02
    for row in rows.values():
        assert row["latency_ms"][1] > 0 and row["predicted_ms"][1] > 0 and row["size_bytes"] > 0
    assert rows["latency round_to=1"]["predicted_ratio"][1] == pytest.approx(0.5, abs=0.02)
    assert rows["full"]["predicted_ratio"][1] == pytest.approx(1.0)
    # steady timings: the smaller sub-network measures faster, and the latency budget's is the smaller one
    assert rows["latency round_to=1"]["latency_ms"][1] < rows["flops round_to=1"]["latency_ms"][1] \
        < rows["full"]["latency_ms"][1]
    cells = {line.split(" | ")[0].strip(): line.split(" | ")[2] for line in bench.format_table(
        {"latency": result}).splitlines()[2:]}
    assert "predicted" in cells["resnet8 8x8 full"] and "target" not in cells["resnet8 8x8 full"]
    verdict = cells["resnet8 8x8 latency round_to=1"]
    latency, full = rows["latency round_to=1"], rows["full"]
    ratio = latency["latency_ms"][1] / full["latency_ms"][1]
    met = abs(ratio / 0.5 - 1) <= 0.05 and abs(latency["predicted_ratio"][1] / ratio - 1) <= 0.10
    assert f"target (ratio 0.5 ±5%, predicted ratio ±10%) {'met' if met else 'NOT met'}:" in verdict


def test_latency_verdict_from_recorded_timings():
    """`latency_rows`' verdict on recorded numbers: met within ±5% of the target and a prediction within 10%
    of the measured ratio, NOT met otherwise."""
    from tfprune.studies import latency_bench

    def result(latency_ms, predicted_ratio):
        common = dict(model="m", image_size=8, flops_ratio=0.5, params=1000, size_bytes=4000)
        return {"target": 0.5, "threads": [1], "rows": [
            dict(common, variant="full", budget=None, latency_ms={1: 2.0}, predicted_ms={1: 2.0},
                 predicted_ratio={1: 1.0}),
            dict(common, variant="latency round_to=1", budget="latency", latency_ms={1: latency_ms},
                 predicted_ms={1: 2.0 * predicted_ratio}, predicted_ratio={1: predicted_ratio})]}

    def verdict(latency_ms, predicted_ratio):
        return latency_bench.latency_rows(result(latency_ms, predicted_ratio))[1][2]

    assert ") met: predicted ratio 2.0% from the measured one" in verdict(1.0, 0.51)
    assert "NOT met" in verdict(1.2, 0.6)  # measured ratio 0.6: off the target
    assert "NOT met" in verdict(1.0, 0.6)  # on the target, but the prediction 20% off
