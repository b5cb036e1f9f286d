"""Predicted LiteRT latency of sub-networks: a per-layer latency table and `LatencyModel`.

FLOPs are a proxy: XNNPACK's kernels pad output channels to their vector tiles, and a narrow layer pays
a fixed cost per invoke, so half the FLOPs can be 0.7x the latency (`tfprune.studies.channel_bench`). A latency
budget (``JointPruner.budget = "latency"``) needs the latency of any sub-network in microseconds, as
thousands are asked per agent step, so it is predicted as a sum over layers of measured latencies:

* **The table** (`LatencyTable`): the median LiteRT latency (batch 1, fixed threads) of one layer
  shape at given channel counts, measured as a tiny single-op TFLite model (conv + bias + ReLU, a
  depthwise conv, a fully connected layer, or a residual add), converted from a ``tf.function`` (10x
  faster than converting a Keras model). Measurements are cached as JSON, one file per (runtime
  version, threads, CPU model): a table is measured once per machine, and later builds only measure
  shapes not seen before. Each batch of measurements is interleaved with one reference layer and
  stored relative to it, so that the changing load of a shared machine cancels between batches. An empty
  model's latency (the invoke overhead every single-op model pays) is measured too, subtracted from each
  layer and counted once per model.
* **Which counts are measured** (`LatencyModel`): each conv / depthwise / dense layer (and residual add)
  of the model is one term whose input and output channel counts are affine in the kept counts of the
  gated groups (`CostModel.channel_factor`: the same layouts the FLOPs use). Along each channel axis
  the counts measured are the ones the channel grid allows (`tfprune.cost.channel_grid.ChannelGrid`, i.e. the
  multiples of ``round_to``), all of them when there are at most ``max_points``, else ``max_points`` of
  them evenly spread; a 2-D layer (a ResNet conv whose input and output groups are both pruned) is
  measured on the product of its two axes. Between measured counts the latency is interpolated linearly
  (bilinearly in 2-D), and toward 0 below the smallest (a layer with no channels does no work); each
  layer's measurements are made non-decreasing in the channel counts first, so that measurement noise
  never tells the budget that more channels are faster. This is what makes the table affordable
  (ResNet-56: about 250 single-op models, MobileNetV2: about 300, a few seconds to a minute each
  table). Interpolation would smooth away the kernels' tiles: XNNPACK computes output channels in tiles
  (16 floats on this machine), and 17 channels cost about what 32 do. So a layer's output count is
  charged as the next multiple of ``LatencyModel.tile``, and the counts measured along an output axis
  are those multiples: with ``round_to`` below the tile the prediction has the runtime's steps.

Ops the table does not model (pooling, pads, reshapes, softmax) are left out: the prediction is meant
for the ratio of a sub-network to the full model; `tools/bench.py --only latency` measures how close
the predicted milliseconds are.
"""

import dataclasses
import hashlib
import json
import os

import gin
import numpy as np

from tfprune.structure import registry

from tfprune.infra import safe_write
from tfprune.cost.budget import BudgetError
from tfprune.cost.channel_grid import ChannelGrid
from tfprune.infra.environment import cpu_model
from tfprune.cost.calibration import calibrate

BUDGETS = ("flops", "latency")
KINDS = ("conv", "depthwise", "dense", "add")


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """What a layer's latency depends on besides its channel counts."""

    kind: str  # one of KINDS
    hw: tuple  # input (height, width); (1, 1) for a dense layer on a vector
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: str = "SAME"

    def key(self, cin, cout):
        """The table's key of this shape at (cin, cout) channels."""
        return (f"{self.kind}/{self.hw[0]}x{self.hw[1]}/k{self.kernel[0]}x{self.kernel[1]}/"
                f"s{self.stride[0]}x{self.stride[1]}/{self.padding}/{int(cin)}x{int(cout)}")


REFERENCE = (LayerShape("conv", (16, 16), (3, 3)), 32, 32)  # timed with every batch of measurements


def default_cache_dir():
    """``$TFPRUNE_CACHE_DIR`` or ``~/.cache/tfprune``."""
    return os.environ.get("TFPRUNE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tfprune")


class LatencyTable:
    """Measured single-layer latencies (ms) on this machine's LiteRT, cached as JSON.

    The cache file is one per (runtime version, ``threads``, CPU model) under ``cache_dir``; `lookup`
    times only keys the file does not hold and saves them. ``measured`` counts the single-op models
    timed by this instance (0 when everything came from the cache). Every batch of measurements is timed
    interleaved with one reference layer and stored relative to it (`_measure`), so that measurements
    made minutes or days apart on a shared machine stay comparable.
    """

    def __init__(self, threads=1, cache_dir=None, runs=30):
        from tfprune.deploy.interpreter import interpreter_runtime

        self.threads, self.runs = int(threads), int(runs)
        self.identity = {"runtime": interpreter_runtime()[1], "threads": self.threads, "cpu": cpu_model()}
        digest = hashlib.sha1(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:12]
        self.path = os.path.join(cache_dir or default_cache_dir(), f"latency_table_{digest}.json")
        self.reference_ms, self.entries, self.calibrations = self._load()
        self.measured = 0

    def _load(self):
        """(the reference layer's ms, {key: ms}, {calibration key: calibration}) of the cache file;
        (None, {}, {}) without one."""
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None, {}, {}
        if data.get("identity") != self.identity or "reference_ms" not in data:
            return None, {}, {}
        return float(data["reference_ms"]), dict(data.get("entries", {})), dict(data.get("calibrations", {}))

    def _save(self):
        safe_write.write_json(self.path, {"identity": self.identity, "reference_ms": self.reference_ms,
                                          "entries": self.entries, "calibrations": self.calibrations})

    def save_calibration(self, key, calibration):
        """Stores a budget's whole-model calibration (`tfprune.cost.calibration`) beside the table, so
        that a resumed run, or any later run of the same model and budget on this machine, reuses it and
        projects onto the same budget instead of re-measuring (which on a shared machine would move it)."""
        self.calibrations[key] = calibration
        self._save()

    def overhead_ms(self):
        """Latency of an (almost) empty model: what each single-op measurement pays besides its layer."""
        return self.lookup([("empty", None)])["empty"]

    def lookup(self, items):
        """{key: ms} for (key, (shape, cin, cout) or None for the empty model) items, measuring the missing."""
        missing = {key: spec for key, spec in items if key not in self.entries}
        if missing:
            measured, self.reference_ms = _measure(missing, self.threads, self.runs, self.reference_ms)
            self.entries.update(measured)
            self.measured += len(missing)
            self._save()
        return {key: self.entries[key] for key, _ in items}


def _measure(specs, threads, runs, reference_ms=None, batch=48):
    """({key: ms}, reference ms) of the single-op models of ``specs``, timed interleaved (median of ``runs``)
    in batches, each batch with the reference layer (`REFERENCE`). A layer is stored as its ratio to the
    reference in its own batch times ``reference_ms``, the reference's latency when the table was started
    (this call's first batch for a new table): the load of a shared machine, which changes from batch to
    batch, cancels out, and a later build's measurements agree with the cached ones."""
    from tfprune.deploy.timing import ready_interpreter, time_interleaved

    out, keys = {}, list(specs)
    reference = ready_interpreter(_single_op_tflite(REFERENCE), threads)
    for start in range(0, len(keys), batch):
        interpreters = {key: ready_interpreter(_single_op_tflite(specs[key]), threads) for key in keys[start:start + batch]}
        ms = time_interleaved({**interpreters, "reference": reference}, runs)
        reference_ms = reference_ms or ms["reference"]
        out.update({key: ms[key] / ms["reference"] * reference_ms for key in interpreters})
    return out, reference_ms


def _single_op_tflite(spec):
    """A float TFLite flatbuffer computing one layer of ``spec`` = (shape, cin, cout) on random weights,
    or a one-element add for ``None`` (the empty model)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    const = lambda *s: tf.constant(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    if spec is None:
        shape, layer = [1, 1], lambda x: x + 1.0
    else:
        (s, cin, cout), (h, w) = spec, spec[0].hw
        shape = [1, cin] if s.kind == "dense" and (h, w) == (1, 1) else [1, h, w, cin]
        layer = _layer_fn(s, cin, cout, const)
    function = tf.function(layer, input_signature=[tf.TensorSpec(shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    return converter.convert()


def _layer_fn(shape, cin, cout, const):
    """The TensorFlow function of one layer (bias and ReLU fuse into the op, as in a converted model)."""
    import tensorflow as tf

    (kh, kw), strides = shape.kernel, [1, *shape.stride, 1]
    if shape.kind == "conv":
        kernel, bias = const(kh, kw, cin, cout), const(cout)
        return lambda x: tf.nn.relu(tf.nn.conv2d(x, kernel, strides, shape.padding) + bias)
    if shape.kind == "depthwise":
        kernel, bias = const(kh, kw, cout, 1), const(cout)
        return lambda x: tf.nn.relu(tf.nn.depthwise_conv2d(x, kernel, strides, shape.padding) + bias)
    if shape.kind == "dense":
        kernel, bias = const(cin, cout), const(cout)
        return lambda x: tf.matmul(tf.reshape(x, [-1, cin]), kernel) + bias
    other = const(1, *shape.hw, cout)
    return lambda x: tf.nn.relu(x + other)


@dataclasses.dataclass
class _Term:
    """One layer call: its latency over a grid of channel counts along one or two axes, each axis's
    count affine in the kept counts (``const + coeffs @ kept``)."""

    shape: LayerShape
    axes: list  # [(const, coeffs)], one per axis: (cin, cout), or (channels,) for depthwise and add
    counts: list  # [1-D int array] measured counts per axis
    tiles: list  # per axis: the kernels' channel tile (counts are charged as the next multiple), 1 = none
    values: np.ndarray = None  # ms over the product of `counts`, overhead removed

    def points(self):
        """(key, (shape, cin, cout)) of every grid point, in `values` order."""
        grid = np.stack(np.meshgrid(*self.counts, indexing="ij"), -1).reshape(-1, len(self.counts))
        pairs = [(int(p[0]), int(p[-1])) for p in grid]
        return [(self.shape.key(cin, cout), (self.shape, cin, cout)) for cin, cout in pairs]

    def evaluate(self, kept):
        """Latency (ms) of this layer for each row of ``kept`` [M, T]: multilinear interpolation, with a
        zero-latency point at zero channels below the smallest measured count."""
        counts, values = list(self.counts), self.values
        for a, (const, coeffs) in enumerate(self.axes):
            if np.any(coeffs) and counts[a][0] > 0:
                counts[a] = np.concatenate([[0], counts[a]])
                values = np.concatenate([np.zeros_like(np.take(values, [0], axis=a)), values], axis=a)
        brackets = [_bracket(c, _tiled(const + kept @ coeffs, tile, c[-1]))
                    for c, (const, coeffs), tile in zip(counts, self.axes, self.tiles)]
        total = 0.0
        for corner in np.ndindex(*(2,) * len(counts)):
            weight, index = 1.0, []
            for bit, (low, frac), c in zip(corner, brackets, counts):
                weight = weight * (frac if bit else 1.0 - frac)
                index.append(np.minimum(low + bit, c.size - 1))
            total = total + weight * values[tuple(index)]
        return total


def _tiled(x, tile, largest):
    """Channel counts ``x`` charged as the next multiple of ``tile`` (at most ``largest``, zero stays zero):
    XNNPACK computes output channels in tiles, so 17 channels cost what 32 do (`tfprune.studies.channel_bench`)."""
    if tile <= 1:
        return x
    return np.where(x > 0, np.minimum(np.ceil(x / tile) * tile, largest), x)


def _bracket(counts, x):
    """(index of the measured count at or below x, fraction of the way to the next one), clamped."""
    if counts.size == 1:
        return np.zeros(x.shape, np.int64), np.zeros(x.shape)
    low = np.clip(np.searchsorted(counts, x, side="right") - 1, 0, counts.size - 2)
    return low, np.clip((x - counts[low]) / (counts[low + 1] - counts[low]), 0.0, 1.0)


def _axis_counts(factor, grid, max_points, tile=1):
    """The channel counts measured along an axis whose count is ``const + coeffs @ kept``: the counts the
    grid allows (one group), or evenly spread ones (several), moved up to multiples of ``tile`` (the
    counts `_tiled` charges), at most ``max_points`` of them."""
    const, coeffs = factor
    groups = np.flatnonzero(coeffs)
    if groups.size == 0:
        return np.array([int(round(const))])
    if groups.size == 1:
        counts = const + coeffs[groups[0]] * grid.allowed[groups[0]]
    else:
        counts = np.linspace(const + coeffs @ grid.floor, const + coeffs @ grid.sizes, max_points)
    counts = np.round(counts)
    counts = np.unique(_tiled(counts, tile, counts.max()).astype(np.int64))
    if counts.size > max_points:
        counts = counts[np.unique(np.round(np.linspace(0, counts.size - 1, max_points)).astype(np.int64))]
    return counts


def _layer_terms(info, cost_model, grid, max_points, tile=1):
    """The `_Term`s of one layer call of the graph (none for layers outside the latency model)."""
    rule = registry.cost_rule(info.layer)
    op = rule.latency_op if rule is not None else None
    if op is None:
        return []
    layer, cout = info.layer, cost_model.channel_factor(info.out_layout)
    cin = cout if op == "add" else cost_model.channel_factor(info.in_layout)
    shape = info.out_shape if op == "add" else info.in_shape
    hw = tuple(int(d) for d in shape[1:3]) if len(shape) == 4 else (1, 1)
    if op in ("dense", "add"):
        shapes = [(LayerShape(op, hw), [cin, cout] if op == "dense" else [cout])]
    else:
        kernel, stride = tuple(layer.kernel_size), tuple(layer.strides)
        spatial = LayerShape("depthwise" if op != "conv" else "conv", hw, kernel, stride, layer.padding.upper())
        shapes = [(spatial, [cin, cout] if op == "conv" else [cin])]
        if op == "separable":
            out_hw = tuple(int(d) for d in info.out_shape[1:3])
            shapes.append((LayerShape("conv", out_hw), [cin, cout]))
    terms = []
    for s, axes in shapes:  # the tile is on the output channels (the last axis): 1 for a conv's inputs
        tiles = [1] * (len(axes) - 1) + [tile]
        terms.append(_Term(s, axes, [_axis_counts(a, grid, max_points, t) for a, t in zip(axes, tiles)], tiles))
    return terms


@gin.configurable
class LatencyModel:
    """Predicted LiteRT latency (batch 1, ``threads`` threads) of sub-networks of a gated model, with the
    interface a budget asks of its cost (`tfprune.cost.flops.CostModel`'s class docstring): ``ratio(kept)``
    and ``ratio_batch(kept)`` are predicted latency as a fraction of the full model's.

    Args:
        cost_model: the model's `CostModel` (its graph, groups and channel layouts).
        round_to / max_ratio: the channel grid whose counts are measured (`JointPruner.round_to`, `.max_ratio`).
        threads: interpreter threads the table is measured at.
        max_points: most counts measured along one channel axis of a layer (module docstring).
        tile: the CPU kernels' output-channel tile: a layer's output count is charged as the next multiple
            (16: measured on this machine's AVX-512 XNNPACK, `tools/bench.py --only channels`; an ARM or
            AVX2 CPU may tile by 8, not measured here; 1 interpolates between measured counts).
        cache_dir: where the table's JSON lives (default `default_cache_dir()`).
        runs: timed invokes per measured layer (median).
        table: a `LatencyTable` to use instead of opening one from ``threads`` / ``cache_dir`` / ``runs``.
    """

    budget_name, budget_setting = "latency", "JointPruner.target_latency_ratio"

    def __init__(self, cost_model, round_to=1, max_ratio=0.9, threads=1, max_points=8, cache_dir=None, runs=30,
                 table=None, tile=16):
        self.cost_model = cost_model
        self.group_names, self.group_sizes = cost_model.group_names, cost_model.group_sizes
        self.table = table if table is not None else LatencyTable(threads, cache_dir, runs)
        grid = ChannelGrid(self.group_sizes, max_ratio, round_to)
        self.terms = [t for info in cost_model.graph.nodes
                      for t in _layer_terms(info, cost_model, grid, max_points, int(tile))]
        self.overhead_ms = self.table.overhead_ms()
        for term in self.terms:
            measured = self.table.lookup(term.points())
            values = np.array([measured[key] for key, _ in term.points()]).reshape([c.size for c in term.counts])
            term.values = _non_decreasing(np.maximum(values - self.overhead_ms, 0.0))
        self.full_ms = float(self.predict_ms_batch(self.group_sizes[None].astype(np.float64))[0])

    def predict_ms_batch(self, kept):
        """Predicted latency (ms) of each row of ``kept`` [M, T]: invoke overhead + the layers' latencies."""
        kept = np.asarray(kept, np.float64)
        if kept.ndim != 2 or kept.shape[1] != len(self.group_names):
            raise ValueError(f"Expected kept counts [M, {len(self.group_names)}], got {kept.shape}.")
        return self.overhead_ms + sum(term.evaluate(kept) for term in self.terms)

    def predict_ms(self, masks=None):
        """Predicted latency (ms) of the full model (masks=None) or of the sub-network a mask dict selects."""
        if masks is None:
            return self.full_ms
        return float(self.predict_ms_batch(self.cost_model.kept_from_masks(masks)[None])[0])

    def ratio_batch(self, kept):
        return self.predict_ms_batch(kept) / self.full_ms

    def ratio(self, kept):
        return float(self.ratio_batch(np.asarray(kept, np.float64)[None])[0])


def _non_decreasing(values):
    """``values`` made non-decreasing along every axis (more channels never predicted faster)."""
    for axis in range(values.ndim):
        values = np.maximum.accumulate(values, axis=axis)
    return values


def budget_cost(cost_model, budget="flops", target_flops_ratio=0.5, target_latency_ratio=None, round_to=1,
                max_ratio=0.9, tolerance=0.02, broadcast=None):
    """(the cost model a budget projects onto, its target ratio) for ``JointPruner.budget``: the FLOPs
    `CostModel` and ``target_flops_ratio``, or a `LatencyModel` calibrated on whole-model measurements at
    ``target_latency_ratio`` (`tfprune.cost.calibration`) and that ratio; a misconfiguration is a
    one-line `BudgetError` naming the setting to change."""
    if budget not in BUDGETS:
        raise BudgetError(f"JointPruner.budget must be one of {', '.join(map(repr, BUDGETS))}, got {budget!r}.")
    if budget == "flops":
        if target_latency_ratio is not None:
            raise BudgetError(f"JointPruner.target_latency_ratio = {target_latency_ratio!r} needs "
                              "JointPruner.budget = 'latency' (the budget is 'flops').")
        return cost_model, target_flops_ratio
    number = isinstance(target_latency_ratio, (int, float)) and not isinstance(target_latency_ratio, bool)
    if not number or not 0.0 < float(target_latency_ratio) <= 1.0:
        raise BudgetError(f"JointPruner.budget = 'latency' needs JointPruner.target_latency_ratio in (0, 1] "
                          f"(0.5 = half the full model's latency), got {target_latency_ratio!r}.")
    target = float(target_latency_ratio)
    latency = LatencyModel(cost_model, round_to, max_ratio)
    return calibrate(latency, target, tolerance, max_ratio, round_to, broadcast=broadcast), target


def predicted_latency_ms(cost_model, masks):
    """(full model ms, sub-network ms) that a latency budget's model (`LatencyModel`, `CalibratedLatency`)
    predicts for the sub-network of ``masks``; None for a budget of another kind (FLOPs). What
    `tfprune.deploy.latency_report.summary_latency` reports beside the measured latency."""
    if getattr(cost_model, "budget_name", None) != "latency":
        return None
    return cost_model.full_ms, cost_model.predict_ms(masks)
