"""The latency model and the latency budget (issue 10 item 3): the per-layer table is measured once and
reused from its JSON cache; `LatencyModel` answers the budget's calls as `CostModel` does; a latency budget
lands on its predicted target; bad settings are one-line errors naming the fix."""

import json
import os

import gin
import numpy as np
import pytest

from tfprune.cost.budget import BudgetError, FlopsBudget
from tfprune.cli.commands import train_main
from tfprune.search.episode import EpisodeSpace
from tfprune.cost.flops import CostModel
from tfprune.structure.graph import ChannelGraph
from tfprune.deploy.export import convert_tflite
from tfprune.cost.latency import LatencyModel, LatencyTable, budget_cost, predicted_latency_ms
from tfprune.deploy import timing
from tfprune.deploy.latency_report import summary_latency
from tfprune.models import build_model
from tfprune.structure.surgery import compact_model
from tfprune.pruning.pruner import JointPruner

from model_fixtures import mixed_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("clean_gin", "steady_timings")  # clean_gin: tests/conftest.py


def steady_time_interleaved(interpreters, runs, clock=None):
    """A deterministic stand-in for `tfprune.deploy.timing.time_interleaved`: each model's "latency" is
    10 us per invoke plus 1 ns per element of its tensors (weights and activations), which grows with its
    channels as a real latency does. The interpreters are real (converted, allocated, warmed); only the
    stopwatch is replaced, so tests check what is done with timings, never how fast or steady this machine is
    (real timings are `tfprune bench`'s)."""
    return {key: 0.01 + 1e-6 * sum(int(np.prod(t["shape"])) for t in interpreter.get_tensor_details())
            for key, interpreter in interpreters.items()}


def use_steady_timings(monkeypatch):
    """Replaces every latency measurement of tfprune (they all go through `timing.time_interleaved`)."""
    monkeypatch.setattr(timing, "time_interleaved", steady_time_interleaved)


@pytest.fixture(scope="module")
def steady_timings():
    with pytest.MonkeyPatch.context() as patch:  # module scope: the module's table fixture measures too
        use_steady_timings(patch)
        yield


class MacsTable:
    """A table whose "latency" of a layer is its multiply-accumulates (no timing): with it the latency
    model must reproduce the FLOPs model exactly, at any kept counts (the MACs are bilinear in the
    channel counts, which multilinear interpolation reproduces, as it does the zero point)."""

    def __init__(self):
        self.asked = set()

    def overhead_ms(self):
        return 0.0

    def lookup(self, items):
        self.asked.update(key for key, _ in items)
        return {key: _macs(*spec) for key, spec in items}


def _macs(shape, cin, cout):
    (h, w), (kh, kw), (sh, sw) = shape.hw, shape.kernel, shape.stride
    pixels = -(-h // sh) * -(-w // sw)
    return {"conv": pixels * kh * kw * cin * cout, "depthwise": pixels * kh * kw * cout,
            "dense": h * w * cin * cout, "add": 0.0}[shape.kind]


def test_latency_model_answers_the_budget_like_the_cost_model():
    model = mixed_model()  # residual add, coupled depthwise, concat and flatten into dense
    graph = ChannelGraph(model)
    cost = CostModel(model, graph)
    latency = LatencyModel(cost, max_points=3, table=MacsTable(), tile=1)
    assert latency.group_names == cost.group_names and np.array_equal(latency.group_sizes, cost.group_sizes)
    rng = np.random.default_rng(0)
    kept = rng.integers(1, cost.group_sizes + 1, size=(50, len(cost.group_sizes))).astype(float)
    np.testing.assert_allclose(latency.ratio_batch(kept), cost.ratio_batch(kept), rtol=1e-9)
    assert latency.ratio(kept[3]) == pytest.approx(cost.flops_ratio(kept[3]), rel=1e-9)
    assert latency.predict_ms() == pytest.approx(cost.full.flops)
    ratios = rng.uniform(0, 0.9, len(cost.group_names))
    by_flops, by_latency = (FlopsBudget(c, graph, 0.5).project(ratios) for c in (cost, latency))
    np.testing.assert_array_equal(by_flops[0], by_latency[0])  # the same projection whichever cost it is
    assert abs(by_latency[1] - 0.5) <= 0.02


class TiledMacsTable(MacsTable):
    """MACs with the output channels rounded up to multiples of 16, as XNNPACK's tiles charge them."""

    def lookup(self, items):
        tiled = lambda shape, cin, cout: _macs(shape, cin, -(-cout // 16) * 16)  # noqa: E731
        return {key: tiled(*spec) for key, spec in items}


def test_tile_aware_prediction_has_the_runtimes_steps():
    model = mixed_model()
    graph = ChannelGraph(model)
    cost = CostModel(model, graph)
    kept = np.random.default_rng(1).integers(1, cost.group_sizes + 1, size=(100, len(cost.group_sizes)))

    def truth(rows):  # the tiled MACs of every layer, from the cost model's own channel layouts
        latency = LatencyModel(cost, max_points=64, table=TiledMacsTable(), tile=1)
        return sum(_term_truth(term, rows) for term in latency.terms)

    tiled = LatencyModel(cost, max_points=64, table=TiledMacsTable(), tile=16)
    smooth = LatencyModel(cost, max_points=64, table=TiledMacsTable(), tile=1)
    np.testing.assert_allclose(tiled.predict_ms_batch(kept), truth(kept), rtol=1e-9)
    assert np.max(np.abs(smooth.predict_ms_batch(kept) / truth(kept) - 1)) > 0.05  # interpolation smooths the steps


def _term_truth(term, kept):
    counts = [const + kept @ coeffs for const, coeffs in term.axes]
    cin, cout = (counts[0], counts[-1])
    return np.array([_macs(term.shape, i, -(-int(o) // 16) * 16) if o > 0 else 0.0 for i, o in zip(cin, cout)])


@pytest.fixture(scope="module")
def resnet8_latency(tmp_path_factory):
    """ResNet-8 (32x32: layers of tens of microseconds, above timing noise) with a real LiteRT table in a
    fresh cache folder, measured once for the module."""
    cache = tmp_path_factory.mktemp("latency_cache")
    model = build_model("resnet8", num_classes=10, input_shape=(32, 32, 3))
    graph = ChannelGraph(model, warn=False)
    cost = CostModel(model, graph)
    latency = LatencyModel(cost, round_to=16, max_points=3, cache_dir=str(cache), runs=10)
    return graph, cost, latency, cache


@pytest.mark.slow
def test_latency_table_is_measured_once_and_reused_from_its_cache(resnet8_latency):
    graph, cost, first, cache = resnet8_latency
    assert first.table.measured == len(first.table.entries) > 10  # every layer point + the empty model
    (path,) = cache.iterdir()
    stored = json.loads(path.read_text())
    assert stored["identity"]["threads"] == 1 and stored["identity"]["runtime"].startswith("litert")
    assert stored["identity"]["cpu"] and len(stored["entries"]) == first.table.measured
    again = LatencyModel(cost, round_to=16, max_points=3, cache_dir=str(cache), runs=10)
    assert again.table.measured == 0  # nothing re-measured
    assert again.full_ms == first.full_ms
    assert LatencyTable(threads=2, cache_dir=str(cache)).path != first.table.path  # keyed by threads


def test_latency_budget_lands_on_its_predicted_target(resnet8_latency):
    graph, cost, latency, _ = resnet8_latency
    assert latency.full_ms > latency.overhead_ms > 0
    budget = FlopsBudget(latency, graph, 0.7, tolerance=0.02, round_to=16)  # stage 1 (16 channels) stays whole
    kept, achieved = budget.project(np.zeros(len(cost.group_names)))
    assert abs(latency.ratio(kept) - 0.7) <= 0.02 and achieved == pytest.approx(latency.ratio(kept))
    assert all(k % 16 == 0 or k == s for k, s in zip(kept, cost.group_sizes))
    space = EpisodeSpace(latency, 0.7, 0.02, 0.9, round_to=16)  # the agent's per-step bounds
    episodes = space.rollout(lambda t, state: np.random.default_rng(t).uniform(0, 0.9, len(state)), 16)
    for ratios in episodes.ratios:  # on the coarse grid a gap is repaired by `land`, as for FLOPs (test_rounding)
        landed, achieved = budget.land(ratios)
        assert abs(latency.ratio(landed) - 0.7) <= 0.02 + 1e-9 and achieved == pytest.approx(latency.ratio(landed))


@pytest.mark.slow
def test_joint_pruner_latency_budget(resnet8_latency, monkeypatch, capsys):
    cache = resnet8_latency[3]
    monkeypatch.setenv("TFPRUNE_CACHE_DIR", str(cache))
    gin.bind_parameter("LatencyModel.max_points", 2)
    gin.bind_parameter("LatencyModel.runs", 10)
    rng = np.random.default_rng(0)
    held_out = (rng.normal(size=(16, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 16))
    model = build_model("resnet8", num_classes=10, input_shape=(32, 32, 3))
    pruner = JointPruner(model, held_out, budget="latency", target_latency_ratio=0.75, max_epochs=2, num_samples=3,
                         dynamics_steps=2, policy="uniform", round_to=16)
    calibrated = pruner.budget.cost_model  # the table's prediction corrected by whole-model measurements
    assert isinstance(calibrated.latency_model, LatencyModel) and pruner.budget.target_ratio == 0.75
    assert len(calibrated.points) <= 3 and all(0 < m < 1.2 for _, m in calibrated.points)
    log = capsys.readouterr().out
    measured = log.count("latency calibration: uniform sub-network predicted")
    dropped = log.count("leaves no sub-network on the budget")
    # steady timings: every round's measurement is kept as a point (a dropped one is
    # tests/test_latency_calibration.py's), and the loop stops on the target or after 3 rounds
    assert 1 <= measured <= 3 and dropped == 0 and len(calibrated.points) == measured
    selection = pruner.select()
    assert abs(pruner.budget.cost_model.predict_ms(selection.masks) / pruner.budget.cost_model.full_ms - 0.75) <= 0.02
    assert pruner.budget.cost_model.table.path.startswith(str(cache))  # the configured cache
    # what summary.json reports (tfprune/training: the gate-free full model, the compact float TFLite and the
    # budget's prediction): measured full and compact latency, and the prediction under this budget
    full_model = compact_model(pruner.model, graph=pruner.graph)
    compact_tflite = convert_tflite(pruner.compact_model(selection.masks), "float")
    report = summary_latency(full_model, compact_tflite, predicted_latency_ms(pruner.budget.cost_model, selection.masks),
                             runs=5)
    assert list(report) == ["latency_ms_full", "latency_ms_pruned", "latency_ratio", "latency_measured_on",
                            "latency_predicted_ms_full", "latency_predicted_ms_pruned"]  # summary.json's keys
    assert report["latency_ms_pruned"] < report["latency_ms_full"]  # steady timings: the smaller model is faster
    assert report["latency_ratio"] == pytest.approx(report["latency_ms_pruned"] / report["latency_ms_full"])
    assert report["latency_measured_on"].endswith("1 thread(s), batch 1, median of 5")
    assert report["latency_predicted_ms_pruned"] / report["latency_predicted_ms_full"] == pytest.approx(
        selection.flops_ratio)  # the selection's ratio is the budget's, here predicted latency
    # under a FLOPs budget only the measurement is reported
    assert predicted_latency_ms(CostModel(model), selection.masks) is None
    assert list(summary_latency(full_model, compact_tflite, None, runs=2)) == list(report)[:4]


@pytest.mark.parametrize("kwargs, names", [
    (dict(budget="latncy"), "JointPruner.budget must be one of 'flops', 'latency'"),
    (dict(budget="latency"), "JointPruner.target_latency_ratio in (0, 1]"),
    (dict(budget="latency", target_latency_ratio=1.5), "JointPruner.target_latency_ratio in (0, 1]"),
    (dict(budget="latency", target_latency_ratio="half"), "JointPruner.target_latency_ratio in (0, 1]"),
    (dict(target_latency_ratio=0.5), "needs JointPruner.budget = 'latency'"),
])
def test_bad_budget_settings_are_one_line_errors_naming_the_fix(kwargs, names):
    cost = CostModel(mixed_model())
    with pytest.raises(BudgetError) as error:
        budget_cost(cost, **kwargs)
    assert names in str(error.value) and "\n" not in str(error.value)


def test_bad_budget_on_the_command_line(tmp_path, capsys):
    args = ["--config", os.path.join(ROOT, "configs", "smoke.gin"), "--workdir", str(tmp_path / "run"),
            "--gin_bindings", 'JointPruner.budget = "latency"', "--gin_bindings", "JointPruner.target_latency_ratio = 2"]
    assert train_main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0] and "JointPruner.target_latency_ratio in (0, 1]" in lines[0]
    assert not (tmp_path / "run").exists()


def test_run_header_names_the_latency_budget(tmp_path):
    import tensorflow as tf

    from tfprune.cli.commands import parse_gin
    from tfprune.cli.run_header import header_lines

    parse_gin([os.path.join(ROOT, "configs", "smoke.gin")],
              ['JointPruner.budget = "latency"', "JointPruner.target_latency_ratio = 0.4"])
    (budget,) = [line for line in header_lines(str(tmp_path), tf.distribute.OneDeviceStrategy("/cpu:0"))
                 if line.startswith("budget:")]
    assert "keep 40% of the predicted LiteRT latency" in budget and "FLOPs" not in budget
