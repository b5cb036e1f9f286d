"""Does a channel count that is not a multiple of 8 (or 16) cost latency on XNNPACK? The measurements
behind `JointPruner.round_to` (``tools/bench.py --only channels,rounding``).

XNNPACK's float GEMM and convolution kernels work on tiles of output channels (8 or 16 floats wide,
depending on the CPU's vector width) and pad the last tile. If that padding costs, a layer with ``8k - 1``
channels runs as slowly as one with ``8k``, and pruning that channel buys nothing. This bench times single
layers at every channel count ``c = 8k + d`` (``d`` in -7..7) on the LiteRT interpreter (batch 1, fixed
threads) and reports ``latency(c) / latency(8k)`` beside the MACs ratio, all models built and timed in one
process, invocations interleaved round by round so that a busy phase of a shared CPU hits every count
alike. Layers, each with ``c`` input and ``c`` output channels (pruning a group changes both the producer's
outputs and the consumer's inputs): a 3x3 conv (ResNet's inner convs), a 1x1 conv (MobileNetV2's expand
and project) and a 3x3 depthwise conv.

`bench_rounding` asks the same of whole models: the full model vs its compact sub-network at a FLOPs
target (the uniform rule through `FlopsBudget`) at each ``round_to``: FLOPs, params, file size and
latency at each thread count, every variant timed interleaved in one process.
"""

import numpy as np

from tfprune.deploy import timing

LAYERS = ("conv3x3", "conv1x1", "depthwise3x3")


def _layer_model(kind, channels, spatial):
    import keras

    inputs = keras.Input((spatial, spatial, channels))
    if kind == "depthwise3x3":
        layer = keras.layers.DepthwiseConv2D(3, padding="same")
    else:
        layer = keras.layers.Conv2D(channels, 3 if kind == "conv3x3" else 1, padding="same")
    return keras.Model(inputs, layer(inputs))


def _macs(kind, channels, spatial):
    per_pixel = {"conv3x3": 9 * channels * channels, "conv1x1": channels * channels, "depthwise3x3": 9 * channels}
    return float(per_pixel[kind] * spatial * spatial)


def _interpreter(kind, channels, spatial, threads):
    from tfprune.deploy.export import convert_tflite

    return timing.ready_interpreter(convert_tflite(_layer_model(kind, channels, spatial), "float"), threads)


def bench_channels(bases=(16, 24, 32, 40, 64), spatial=(32, 16, 16, 16, 8), layers=LAYERS, offsets=range(-7, 8),
                   threads=1, runs=60):
    """Per layer kind and base ``8k`` (at the matching spatial size, as in a CIFAR ResNet's stages; 24 and 40
    are multiples of 8 but not of 16, where 16-wide vector tiles would not end): the median latency at
    each count ``8k + d`` and its ratios to ``8k``'s latency and MACs.

    Returns {"rows": [{layer, base, spatial, channels, latency_ms, latency_ratio, macs_ratio,
    latency_per_mac_ratio}], "runtime", "threads", "runs"}; ``latency_per_mac_ratio`` > 1 means that
    count wastes time relative to the multiple of 8 (rounding to 8 would pay).
    """
    from tfprune.deploy.interpreter import interpreter_runtime

    cases = [(kind, base, size, base + d) for kind in layers for base, size in zip(bases, spatial)
             for d in offsets if base + d >= 1]
    interpreters = {case: _interpreter(case[0], case[3], case[2], threads) for case in cases}
    latency = timing.time_interleaved(interpreters, runs)
    rows = []
    for kind, base, size, channels in cases:
        ms, ref = latency[(kind, base, size, channels)], latency[(kind, base, size, base)]
        macs = _macs(kind, channels, size) / _macs(kind, base, size)
        rows.append({"layer": kind, "base": base, "spatial": size, "channels": channels, "latency_ms": ms,
                     "latency_ratio": ms / ref, "macs_ratio": macs, "latency_per_mac_ratio": ms / ref / macs})
    return {"rows": rows, "runtime": interpreter_runtime()[1], "threads": threads, "runs": runs}


def channel_rows(result):
    """(measurement, value, note) rows for `tfprune.studies.bench.format_table`: per layer kind and base, the
    latency ratio at 8k-1 and 8k+1 and the mean latency-per-MAC ratio below and above 8k."""
    rows, groups = [], {}
    for row in result["rows"]:
        groups.setdefault((row["layer"], row["base"], row["spatial"]), {})[row["channels"] - row["base"]] = row
    for (kind, base, size), by_offset in groups.items():
        below = [r["latency_per_mac_ratio"] for d, r in by_offset.items() if d < 0]
        above = [r["latency_per_mac_ratio"] for d, r in by_offset.items() if d > 0]
        minus, plus = by_offset.get(-1), by_offset.get(1)
        rows.append((f"{kind} {size}x{size}, {base} channels ({result['threads']} thread)",
                     f"{by_offset[0]['latency_ms']:.4f} ms",
                     f"latency at {base - 1}: {minus['latency_ratio']:.3f}x (MACs {minus['macs_ratio']:.3f}x), "
                     f"at {base + 1}: {plus['latency_ratio']:.3f}x (MACs {plus['macs_ratio']:.3f}x); latency/MACs "
                     f"vs {base}: {np.mean(below):.3f} below, {np.mean(above):.3f} above"
                     if minus and plus else ""))
    return rows


def bench_rounding(models=("resnet56", "mobilenetv2_cifar"), *, image_size=32, width_multiplier=1.0,
                   target_flops=0.5, round_to=(1, 8, 16), threads=(1, 4), runs=100, log=print):
    """Per zoo model: the full model and the uniform-rule sub-network at ``target_flops`` for each of
    ``round_to`` (a budget a rounding cannot reach is reported, not timed). Returns {"rows": [{model,
    variant, round_to, flops_ratio, params, size_bytes, latency_ms {threads: ms}, latency_ratio {threads:
    ratio to full}}], "runtime", "runs"}."""
    from tfprune.deploy.interpreter import interpreter_runtime

    rows = []
    for name in models:
        log(f"rounding bench: {name}...")
        variants = _rounded_variants(name, image_size, width_multiplier, target_flops, round_to)
        for count in threads:
            interpreters = {key: timing.ready_interpreter(v["tflite"], count) for key, v in variants.items() if "tflite" in v}
            latency = timing.time_interleaved(interpreters, runs)
            for key in interpreters:
                variants[key].setdefault("latency_ms", {})[count] = latency[key]
                variants[key].setdefault("latency_ratio", {})[count] = latency[key] / latency["full"]
        rows += [dict({k: v for k, v in variant.items() if k != "tflite"}, model=name, variant=key)
                 for key, variant in variants.items()]
    return {"rows": rows, "runtime": interpreter_runtime()[1], "runs": runs, "target_flops": target_flops}


def _rounded_variants(name, image_size, width_multiplier, target_flops, round_to):
    """{"full" | "round_to=N": {round_to, flops_ratio, params, size_bytes, tflite} or {round_to, refused}}."""
    from tfprune.cost.budget import BudgetError, FlopsBudget
    from tfprune.deploy.export import convert_tflite
    from tfprune.cost.flops import CostModel
    from tfprune.structure.graph import ChannelGraph
    from tfprune.models import build_model
    from tfprune.structure.surgery import compact_model

    gated = build_model(name, num_classes=10, input_shape=(image_size, image_size, 3), width_multiplier=width_multiplier)
    graph = ChannelGraph(gated, warn=False)
    cost = CostModel(gated, graph)
    variants = {"full": {"round_to": None, "masks": None}}
    for n in round_to:
        try:
            masks, _ = FlopsBudget(cost, graph, target_flops, round_to=n).masks(np.zeros(len(cost.group_names)))
            variants[f"round_to={n}"] = {"round_to": n, "masks": masks}
        except BudgetError as exc:
            variants[f"round_to={n}"] = {"round_to": n, "refused": str(exc)}
    for variant in variants.values():
        if "refused" not in variant:
            masks = variant.pop("masks")
            blob = convert_tflite(compact_model(gated, masks, graph=graph), "float")
            variant.update(flops_ratio=cost.cost(masks).flops / cost.full.flops, params=cost.cost(masks).params,
                           size_bytes=len(blob), tflite=blob)
    return variants


def rounding_rows(result):
    """(measurement, value, note) rows for `tfprune.studies.bench.format_table`, one per model variant."""
    rows = []
    for row in result["rows"]:
        label = f"{row['model']} {row['variant']}"
        if "refused" in row:
            rows.append((label, "refused", row["refused"][:100]))
            continue
        latency = ", ".join(f"{t} thr {ms:.3f} ms ({row['latency_ratio'][t]:.3f}x)" for t, ms in row["latency_ms"].items())
        rows.append((label, f"FLOPs {row['flops_ratio']:.3f}",
                     f"{row['params'] / 1e6:.3f} M params, {row['size_bytes'] / 1e6:.2f} MB; {latency}"))
    return rows
