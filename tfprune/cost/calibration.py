"""Whole-model calibration of a latency budget: measure the sub-network the budget picks, correct, repeat.

`tfprune.cost.latency.LatencyModel` predicts a sub-network's latency as a sum of single-op latencies. Its
*ratio* to the full model is what a budget uses, and that ratio misses by 2–18% on the zoo models
(CHANGELOG.md, earlier studies): ops outside the table (pads, pooling, reshapes), per-op dispatch inside one
interpreter, and the tile padding that interpolation between measured channel counts smooths away
(``round_to`` below the tile width). None of these is cheap to model layer by layer, but all of them
show in one whole-model measurement. So, as NetAdapt measures its proposals on the device, `calibrate`
closes the loop before training:

1. project the uniform rule onto the budget with the current prediction,
2. build that sub-network (`tfprune.structure.surgery.compact_model`, which channels does not matter for latency),
   convert it and time it interleaved with the full model in this process (the load of a shared
   machine cancels in the ratio),
3. record (predicted ratio, measured ratio), and correct the prediction by the piecewise-linear map
   through the recorded points and (1, 1) (`CalibratedLatency`),
4. repeat until the measured ratio is within the budget's tolerance of the target, or ``rounds`` times;
   a measurement whose correction leaves no sub-network on the budget's band (timing noise on a coarse
   ``round_to`` grid) is dropped with a log line instead of failing the run.

The result is stored beside the layer table (`LatencyTable.save_calibration`), keyed by the model's
layers and the budget: a resumed run must project onto the same budget, and a re-measurement on a shared
machine would move it.

The correction is a function of the predicted ratio only, so the layer table still ranks the agent's
non-uniform sub-networks; the calibration fixes the level at the budget, where it is measured.
"""

import hashlib
import json

import gin
import numpy as np

from tfprune.cost.budget import BudgetError, project_to_budget


class CalibratedLatency:
    """A `LatencyModel` whose ratio is corrected by whole-model measurements, with the same interface
    (`ratio`, `ratio_batch`, `predict_ms`, `full_ms`, `group_names`, `group_sizes`).

    ``points``: (predicted ratio, measured ratio) pairs; with (1, 1) they define a non-decreasing
    piecewise-linear map, extended past the lowest point along its first segment. ``full_ms``: the full
    model's measured latency (ms), so that `predict_ms` is in measured milliseconds.
    """

    def __init__(self, latency_model, points, full_ms):
        self.latency_model = latency_model
        self.budget_name, self.budget_setting = latency_model.budget_name, latency_model.budget_setting
        self.group_names, self.group_sizes = latency_model.group_names, latency_model.group_sizes
        self.table = latency_model.table
        self.points = [(float(p), float(m)) for p, m in points]
        pairs = sorted(self.points + [(1.0, 1.0)])
        xs, ys = np.array([p for p, _ in pairs]), np.maximum.accumulate([m for _, m in pairs])
        keep = np.concatenate([np.diff(xs) > 1e-9, [True]])  # one point per predicted ratio
        self._xs, self._ys = xs[keep], ys[keep]
        self.full_ms = float(full_ms)

    def ratio_batch(self, kept):
        predicted = self.latency_model.ratio_batch(kept)
        xs, ys = self._xs, self._ys
        if xs.size == 1:
            return predicted
        low_slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        return np.where(predicted < xs[0], ys[0] + (predicted - xs[0]) * low_slope, np.interp(predicted, xs, ys))

    def ratio(self, kept):
        return float(self.ratio_batch(np.asarray(kept, np.float64)[None])[0])

    def predict_ms(self, masks=None):
        """Predicted latency (ms): the full model's measured latency times the corrected ratio."""
        if masks is None:
            return self.full_ms
        return self.full_ms * self.ratio(self.latency_model.cost_model.kept_from_masks(masks))


@gin.configurable(denylist=["latency_model", "target", "tolerance", "max_ratio", "round_to", "broadcast", "timer"])
def calibrate(latency_model, target, tolerance=0.02, max_ratio=0.9, round_to=1, rounds=3, runs=50, broadcast=None,
              timer=None, log=print):
    """A `CalibratedLatency` for ``latency_model`` at the budget ``target`` (module docstring), after at
    most ``rounds`` whole-model measurements of ``runs`` interleaved invokes each; ``rounds = 0`` returns
    ``latency_model`` unchanged.

    ``broadcast``: the workers' chief broadcast (`tfprune.infra.distribute.Collective`): the chief measures and
    every other worker adopts its points, so that the workers' budgets agree (and no worker's timings run
    beside the chief's). ``timer(kept) -> (full ms, sub-network ms)`` replaces the whole-model measurement
    (default: `_WholeModels`).

    Args:
        rounds: most whole-model measurements (0: no calibration, `latency_model` as it is).
        runs: interleaved invokes per measurement.
        log: where the progress lines go (a function taking a string).
    """
    if int(rounds) <= 0:
        return latency_model
    if getattr(broadcast, "index", 0) != 0:  # not the chief: nothing to measure, the chief's points arrive
        return _chiefs([], 0.0, latency_model, int(rounds), broadcast)
    key = _cache_key(latency_model, target, tolerance, max_ratio, round_to, rounds)
    cached = getattr(latency_model.table, "calibrations", {}).get(key)
    if cached is not None:
        log(f"latency calibration: reused from {latency_model.table.path} ({len(cached['points'])} point(s))")
        return _chiefs(cached["points"], cached["full_ms"], latency_model, int(rounds), broadcast)
    timer = timer or _WholeModels(latency_model.cost_model.graph, latency_model.table.threads, runs).time
    current, points, fulls = latency_model, [], []
    zeros = np.zeros(len(latency_model.group_names))
    # the table's own prediction cannot reach the target: the settings, not a measurement (raises)
    kept, _ = project_to_budget(zeros, current, target, max_ratio, tolerance, round_to)
    for _ in range(int(rounds)):
        full_ms, ms = timer(kept)
        points.append((latency_model.ratio(kept), ms / full_ms))
        fulls.append((kept, full_ms))
        log(f"latency calibration: uniform sub-network predicted {points[-1][0]:.3f} of the full model, "
            f"measured {points[-1][1]:.3f} ({ms:.3f} / {full_ms:.3f} ms)")
        corrected = _calibrated(latency_model, points, fulls)
        try:  # every correction, the last round's included, must still reach the budget
            kept, _ = project_to_budget(zeros, corrected, target, max_ratio, tolerance, round_to)
        except BudgetError as error:
            current = _without_last(latency_model, points, fulls, error, log)
            break
        current = corrected
        if abs(points[-1][1] - target) <= tolerance or any(np.array_equal(kept, seen) for seen, _ in fulls):
            break  # on the target, or the correction moved nothing (no new information)
    if hasattr(latency_model.table, "save_calibration"):
        latency_model.table.save_calibration(key, {"points": current.points, "full_ms": current.full_ms})
    return _chiefs(current.points, current.full_ms, latency_model, int(rounds), broadcast)


def _without_last(latency_model, points, fulls, error, log):
    """The calibration without its last measurement, which left no sub-network on the budget's band.

    Why: one whole-model timing on a shared machine can be off by several percent, and on a coarse
    channel grid (``round_to``) a steep correction through it can put the target between two allowed
    sub-networks. Failing the run for that would turn timing noise into a crash; the calibration before
    it did project onto the band, so that one is kept (with no point left, the table's prediction; the full
    model's timings all stay valid), and the log says so."""
    predicted, measured = points.pop()
    log(f"latency calibration: the measurement {measured:.3f} (predicted {predicted:.3f}) leaves no sub-network "
        f"on the budget ({error}); kept the calibration without it, so the measured latency may miss the target "
        "by more than the tolerance.")
    return _calibrated(latency_model, points, fulls)


def _calibrated(latency_model, points, fulls):
    """The `CalibratedLatency` of the measured ``points``; the full model's latency is the median of its
    timings ``fulls`` [(kept, ms)], one per round, as one timing on a shared machine can be off."""
    return CalibratedLatency(latency_model, points, np.median([ms for _, ms in fulls]))


def _cache_key(latency_model, target, tolerance, max_ratio, round_to, rounds):
    """What a calibration depends on besides the machine (which the table's file is already keyed by):
    the model's measured layer points, the budget and the loop's settings."""
    points = sorted(key for term in latency_model.terms for key, _ in term.points())
    text = json.dumps([points, float(target), float(tolerance), float(max_ratio), int(round_to), int(rounds)])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _chiefs(points, full_ms, latency_model, rounds, broadcast):
    """The `CalibratedLatency` of the chief's points and full-model latency (sent padded to ``rounds`` rows,
    as the collective needs one shape on every worker); this worker's own on one worker."""
    if broadcast is None:
        return CalibratedLatency(latency_model, points, full_ms)
    table = np.full((rounds + 1, 2), -1.0)  # -1: no point (ratios are positive)
    table[0, 0] = full_ms
    table[1:len(points) + 1] = np.reshape(points, (-1, 2))
    table = np.asarray(broadcast(table))
    points = [tuple(row) for row in table[1:] if row[0] > 0]
    return CalibratedLatency(latency_model, points, table[0, 0])


class _WholeModels:
    """Times compact sub-networks of a gated model against its full model, interleaved in this process."""

    def __init__(self, graph, threads, runs):
        from tfprune.deploy.timing import ready_interpreter
        from tfprune.deploy.export import convert_tflite
        from tfprune.structure.surgery import compact_model

        self.graph, self.threads, self.runs = graph, threads, int(runs)
        self.full = ready_interpreter(convert_tflite(compact_model(graph.model, graph=graph), "float"), threads)

    def time(self, kept):
        """(full model ms, sub-network ms) of the sub-network keeping ``kept`` channels per group."""
        from tfprune.deploy.timing import ready_interpreter, time_interleaved
        from tfprune.deploy.export import convert_tflite
        from tfprune.structure.masks import masks_from_kept
        from tfprune.structure.surgery import compact_model

        names = [g.name for g in self.graph.gated_groups]
        importance = {g.name: -np.arange(g.size, dtype=np.float64) for g in self.graph.gated_groups}
        masks = masks_from_kept(kept, names, importance)  # the first channels: latency ignores which
        small = ready_interpreter(convert_tflite(compact_model(self.graph.model, masks, graph=self.graph), "float"), self.threads)
        ms = time_interleaved({"full": self.full, "small": small}, self.runs)
        return ms["full"], ms["small"]
