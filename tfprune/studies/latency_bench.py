"""Does a latency budget deliver the latency it promises? (``tools/bench.py --only latency``)

Per zoo model: the full model, its sub-networks at ``target`` of the FLOPs and at ``target`` of the
predicted latency (`tfprune.cost.latency.LatencyModel`, the table measured at the first thread count and
calibrated on whole models as a latency budget is, `tfprune.cost.calibration`), each at every
``round_to``. At the first thread count every row's prediction is the calibrated one: for the
latency-budget rows the calibration measured (nearly) that sub-network, for the FLOPs rows it did not, so
those test the corrected prediction away from its measured points. The sub-networks are the uniform
rule projected onto the budget with L1 importance on the untrained model (no training: latency does not
depend on the weights). For each: FLOPs, params, TFLite file size, the measured LiteRT latency (batch 1,
median of ``runs`` invokes, every variant interleaved round by round in one process, at each thread
count) and the latency model's prediction at that thread count. `latency_rows` also states whether the
issue's target holds: at a latency budget the measured latency within ±5% of ``target`` x the full
model's, and the predicted ratio to the full model within 10% of the measured ratio. Ratios, because
timings are only comparable within one process on a shared machine: the prediction in milliseconds also
carries the drift of the machine's speed between the calibration (at the budget's creation) and the
bench's timing, reported beside it.
"""

import numpy as np

from tfprune.deploy import timing

MODELS = (("resnet56", 32), ("mobilenetv2_cifar", 32), ("mobilenetv2", 224))


def bench_latency(models=MODELS, *, target=0.5, round_to=(1, 8, 16), threads=(1, 4), runs=60, max_points=8,
                  cache_dir=None, log=print):
    """Returns {"rows": [{model, image_size, variant, budget, round_to, flops_ratio, params, size_bytes,
    latency_ms {threads: ms}, predicted_ms {threads: ms}, predicted_ratio {threads: x full, by the same
    predictor}}], "runtime", "runs", "target", "threads"}."""
    from tfprune.deploy.interpreter import interpreter_runtime

    rows = []
    for name, size in models:
        log(f"latency bench: {name} {size}x{size}: tables and sub-networks...")
        variants, predictors = _variants(name, size, target, round_to, threads, max_points, cache_dir)
        for count in threads:
            interpreters = {key: timing.ready_interpreter(v["tflite"], count) for key, v in variants.items()}
            measured = timing.time_interleaved(interpreters, runs)
            for key, variant in variants.items():
                predictor = predictors[(count, variant["round_to"] or 1)]
                variant.setdefault("latency_ms", {})[count] = measured[key]
                variant.setdefault("predicted_ms", {})[count] = predictor.predict_ms(variant["masks"])
                predicted = variant["predicted_ms"][count] / predictor.predict_ms()
                variant.setdefault("predicted_ratio", {})[count] = predicted
        rows += [dict({k: v for k, v in variant.items() if k not in ("tflite", "masks")}, model=name,
                      image_size=size, variant=key) for key, variant in variants.items()]
    return {"rows": rows, "runtime": interpreter_runtime()[1], "runs": runs, "target": target,
            "threads": list(threads)}


def _variants(name, size, target, round_to, threads, max_points, cache_dir):
    """({"full" | "<budget> round_to=N": {budget, round_to, masks, flops_ratio, params, size_bytes, tflite}},
    {(threads, round_to): LatencyModel})."""
    from tfprune.cost.budget import BudgetError, FlopsBudget
    from tfprune.deploy.export import convert_tflite
    from tfprune.cost.flops import CostModel
    from tfprune.structure.graph import ChannelGraph
    from tfprune.cost.latency import LatencyModel
    from tfprune.cost.calibration import calibrate
    from tfprune.models import build_model
    from tfprune.structure.surgery import compact_model

    gated = build_model(name, num_classes=1000 if size >= 224 else 10, input_shape=(size, size, 3))
    graph = ChannelGraph(gated, warn=False)
    cost = CostModel(gated, graph)
    predictors = {(t, n): LatencyModel(cost, n, threads=t, max_points=max_points, cache_dir=cache_dir)
                  for t in threads for n in round_to}
    for n in round_to:  # the latency budget's whole-model calibration (`tfprune.cost.calibration`)
        try:
            predictors[(threads[0], n)] = calibrate(predictors[(threads[0], n)], target, round_to=n)
        except BudgetError as exc:
            print(f"  latency round_to={n}: not calibrated ({str(exc)[:120]})")
    variants = {"full": {"budget": None, "round_to": None, "masks": None}}
    for budget, n in [(b, n) for b in ("flops", "latency") for n in round_to]:
        budget_cost = cost if budget == "flops" else predictors[(threads[0], n)]
        try:
            masks, _ = FlopsBudget(budget_cost, graph, target, round_to=n).masks(np.zeros(len(cost.group_names)))
        except BudgetError as exc:  # a rounding too coarse for the budget: reported, not timed
            print(f"  {budget} round_to={n}: refused ({str(exc)[:120]})")
            continue
        variants[f"{budget} round_to={n}"] = {"budget": budget, "round_to": n, "masks": masks}
    for variant in variants.values():
        blob = convert_tflite(compact_model(gated, variant["masks"], graph=graph), "float")
        c = cost.cost(variant["masks"])
        variant.update(flops_ratio=c.flops / cost.full.flops, params=c.params, size_bytes=len(blob), tflite=blob)
    return variants, predictors


def latency_rows(result):
    """(measurement, value, note) rows for `tfprune.studies.bench.format_table`, one per model variant, with the
    verdict on the latency-budget target."""
    rows, target = [], result["target"]
    full = {(r["model"], r["image_size"]): r for r in result["rows"] if r["variant"] == "full"}
    for row in result["rows"]:
        ref = full[(row["model"], row["image_size"])]
        parts = []
        for t, ms in row["latency_ms"].items():
            ratio, error = ms / ref["latency_ms"][t], row["predicted_ms"][t] / ms - 1.0
            predicted_ratio = row["predicted_ratio"][t]  # by this row's own predictor (its round_to)
            parts.append(f"{t} thr {ms:.3f} ms ({ratio:.3f}x; predicted {row['predicted_ms'][t]:.3f} ms, {error:+.1%}, "
                         f"{predicted_ratio:.3f}x)")
        verdict = ""
        if row["budget"] == "latency":
            t = result["threads"][0]
            ratio = row["latency_ms"][t] / ref["latency_ms"][t]
            error = abs(row["predicted_ms"][t] / row["latency_ms"][t] - 1.0)
            ratio_error = abs(row["predicted_ratio"][t] / ratio - 1.0)
            met = abs(ratio / target - 1.0) <= 0.05 and ratio_error <= 0.10
            verdict = (f"; target (ratio {target} ±5%, predicted ratio ±10%) {'met' if met else 'NOT met'}: "
                       f"predicted ratio {ratio_error:.1%} from the measured one; in ms {error:.1%}, which adds the "
                       "machine's drift between the calibration's and this timing of the full model")
        rows.append((f"{row['model']} {row['image_size']}x{row['image_size']} {row['variant']}",
                     f"FLOPs {row['flops_ratio']:.3f}",
                     f"{row['params'] / 1e6:.3f} M params, {row['size_bytes'] / 1e6:.2f} MB; " + "; ".join(parts)
                     + verdict))
    return rows
