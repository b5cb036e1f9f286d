#!/usr/bin/env python
"""Speed benchmarks of tfprune's overheads; every ratio is measured within one process run.

    python tools/bench.py --json bench.json                  # all four, ResNet-56 on 32x32 inputs
    python tools/bench.py --only gating,tflite --model resnet20 --batch_size 32

1. gating: training-step time of the gated zoo model vs the same architecture without gates
   (`tfprune.surgery.compact_model(model)` with all-ones masks: same weights, no ChannelGate), and of
   the gated model with the alignment penalty on (what the joint phase trains). Target <= 1.15x.
   Variants are timed in interleaved rounds; the median per-step time of each is reported.
2. agent: one `JointPruner.agent_step` (default num_samples / dynamics_steps unless given, held-out
   set of --held_out images) vs one CIFAR-10 epoch = ceil(50,000 / batch) training steps at the
   measured gated+alignment step time. Target <= 5% of the epoch. The first agent step (tracing)
   is reported separately and excluded.
3. tflite: TFLite float latency (batch 1, --threads threads) of the full model (gate-free) vs a
   compact model at --target_flops (uniform ratios projected onto the budget), beside the FLOPs ratio.
4. data: input-pipeline throughput (images/s of `build_datasets(...).train`, several epochs, first
   batch excluded) for the synthetic and digits sources vs the training step's images/s.

Prints a table and writes --json. Timings share the machine with whatever else runs: compare ratios,
not absolute numbers, across machines.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfprune  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

BENCHES = ("gating", "agent", "tflite", "data")
CIFAR_TRAIN = 50_000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}")
    p.add_argument("--model", default="resnet56")
    p.add_argument("--width_multiplier", type=float, default=1.0)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=128, help="training batch (CIFAR recipe: 128)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per variant per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--held_out", type=int, default=512, help="held-out images scored by the agent")
    p.add_argument("--num_samples", type=int, default=None, help="JointPruner.num_samples (default: its default)")
    p.add_argument("--dynamics_steps", type=int, default=None, help="JointPruner.dynamics_steps (default: its default)")
    p.add_argument("--agent_steps", type=int, default=2, help="timed agent steps (after one untimed)")
    p.add_argument("--target_flops", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    p.add_argument("--latency_runs", type=int, default=100)
    p.add_argument("--data_epochs", type=int, default=3)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    bad = [b for b in args.only if b not in BENCHES]
    if bad:
        p.error(f"unknown benchmark(s) {bad}; choose from {', '.join(BENCHES)}")
    return args


def _model(args):
    from tfprune.models import build_model

    return build_model(args.model, num_classes=10, input_shape=(args.image_size, args.image_size, 3),
                       width_multiplier=args.width_multiplier)


def _batch(args, n=None, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    n = n or args.batch_size
    x = rng.standard_normal((n, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    return x, y


def bench_gating(args, results):
    import tensorflow as tf

    from tfprune.alignment import GroupLassoAlignment
    from tfprune.graph import ChannelGraph
    from tfprune.surgery import compact_model
    from tfprune.trainer import WeightTrainer, make_optimizer

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0" if not tf.config.list_logical_devices("GPU") else "/gpu:0")
    with strategy.scope():
        gated = _model(args)
        plain = compact_model(gated)  # gates' masks are all ones: same architecture and weights, no gates
        graph = ChannelGraph(gated, warn=False)
        alignment = GroupLassoAlignment(graph)
        # an arbitrary half mask per group and a non-zero strength, so the penalty is computed for real
        alignment.set_targets({g.name: [i % 2 == 0 for i in range(g.size)] for g in graph.gated_groups})
        alignment.strength.assign(1e-3)
        optimizers = [make_optimizer(1000) for _ in range(3)]
    # the alignment variant trains the same gated model object, only adding the regulariser
    variants = {
        "plain": WeightTrainer(strategy, plain, optimizers[0], args.batch_size),
        "gated": WeightTrainer(strategy, gated, optimizers[1], args.batch_size),
        "gated+alignment": WeightTrainer(strategy, gated, optimizers[2], args.batch_size,
                                         regularizer=alignment.penalty),
    }
    x, y = _batch(args)
    batch = next(iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((x, y)))))
    for trainer in variants.values():  # trace + warm up
        for _ in range(2):
            float(trainer._train_step(batch)[0])
    times = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, trainer in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                out = trainer._train_step(batch)
            float(out[0])
            times[name].append((time.perf_counter() - start) / args.steps)
    step = {k: statistics.median(v) for k, v in times.items()}
    results["gating"] = {
        "model": args.model, "batch_size": args.batch_size, "image_size": args.image_size,
        "step_seconds": step, "round_step_seconds": times,
        "gated_over_plain": step["gated"] / step["plain"],
        "gated_alignment_over_plain": step["gated+alignment"] / step["plain"],
        "target": 1.15,
    }
    return step


def bench_agent(args, results, step_seconds):
    from tfprune.pruner import JointPruner

    model = _model(args)
    kwargs = {}
    if args.num_samples is not None:
        kwargs["num_samples"] = args.num_samples
    if args.dynamics_steps is not None:
        kwargs["dynamics_steps"] = args.dynamics_steps
    held_out = _batch(args, args.held_out, seed=1)
    pruner = JointPruner(model, held_out, target_flops_ratio=args.target_flops, max_epochs=200, **kwargs)
    parts = _time_parts(pruner)
    start = time.perf_counter()
    pruner.agent_step(0)
    first = time.perf_counter() - start
    for key in parts:
        parts[key] = 0.0
    timed = []
    for e in range(1, 1 + args.agent_steps):
        start = time.perf_counter()
        pruner.agent_step(e)
        timed.append(time.perf_counter() - start)
    breakdown = {k: v / len(timed) for k, v in parts.items()}
    breakdown["other (importance, alignment targets, bookkeeping)"] = sum(timed) / len(timed) - sum(breakdown.values())
    agent = statistics.median(timed)
    steps_per_epoch = math.ceil(CIFAR_TRAIN / args.batch_size)
    epoch = step_seconds * steps_per_epoch
    results["agent"] = {
        "num_samples": pruner.num_samples, "dynamics_steps": pruner.dynamics_steps, "held_out": args.held_out,
        "first_agent_step_seconds": first, "agent_step_seconds": agent, "agent_step_seconds_all": timed,
        "agent_step_breakdown_seconds": breakdown,
        "train_step_seconds": step_seconds, "steps_per_cifar_epoch": steps_per_epoch,
        "cifar_epoch_weight_seconds": epoch, "agent_fraction_of_epoch": agent / (epoch + agent),
        "target": 0.05,
    }


def _time_parts(pruner):
    """Wraps the agent step's parts (instance attributes shadow the methods) to accumulate their time."""
    parts = {}

    def wrap(owner, name, label):
        original = getattr(owner, name)
        parts[label] = 0.0

        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                parts[label] += time.perf_counter() - start

        setattr(owner, name, timed)

    wrap(pruner, "evaluate", "score sub-networks on held-out (evaluate)")
    wrap(pruner, "masks_for_action", "budget projection + masks (masks_for_action)")
    wrap(pruner.agent, "propose", "PPO sample actions (agent.propose)")
    wrap(pruner.agent, "update", "PPO update (agent.update)")
    wrap(pruner.dynamics, "train", "dynamics model training (dynamics.train)")
    wrap(pruner.dynamics, "representation", "dynamics representation")
    wrap(pruner.dynamics, "predict", "dynamics predict (stats)")
    return parts


def bench_tflite(args, results):
    import numpy as np

    from tfprune.export import convert_tflite, tflite_latency_ms
    from tfprune.flops import CostModel
    from tfprune.pruner import JointPruner
    from tfprune.surgery import compact_model

    model = _model(args)
    pruner = JointPruner(model, _batch(args, 8), target_flops_ratio=args.target_flops, max_epochs=2)
    masks, flops_ratio = pruner.masks_for_action(np.zeros(len(pruner.group_names)))
    full = compact_model(model)
    small = compact_model(model, masks)
    cost_full, cost_small = CostModel(full).full, CostModel(small).full
    blobs = {"full": convert_tflite(full, "float"), "pruned": convert_tflite(small, "float")}
    lat = {k: [] for k in blobs}
    for _ in range(2):  # interleaved
        for k, blob in blobs.items():
            lat[k].append(tflite_latency_ms(blob, num_threads=args.threads, runs=args.latency_runs, warmup=10))
    latency = {k: min(v) for k, v in lat.items()}
    results["tflite"] = {
        "threads": args.threads, "batch_size": 1, "flops_full": cost_full.flops, "flops_pruned": cost_small.flops,
        "flops_ratio": cost_small.flops / cost_full.flops, "params_full": cost_full.params,
        "params_pruned": cost_small.params, "latency_ms": latency, "latency_ms_rounds": lat,
        "latency_ratio": latency["pruned"] / latency["full"],
        "size_bytes": {k: len(v) for k, v in blobs.items()}, "target_flops_ratio_asked": float(flops_ratio),
    }


def bench_data(args, results, step_seconds):
    from tfprune.data import build_datasets

    out = {}
    for source in ("synthetic", "digits"):
        kwargs = {"num_train": 8192} if source == "synthetic" else {}
        data = build_datasets(source=source, image_size=args.image_size, batch_size=args.batch_size,
                              held_out_examples=256, **kwargs)
        images, start = 0, None
        for _ in range(args.data_epochs):
            for x, _ in data.train:
                if start is None:  # exclude the first batch (pipeline start-up, tracing)
                    start = time.perf_counter()
                    continue
                images += int(x.shape[0])
        seconds = time.perf_counter() - start
        out[source] = {"images_per_second": images / seconds, "images": images, "seconds": seconds}
    train_ips = args.batch_size / step_seconds if step_seconds else float("nan")
    results["data"] = {"sources": out, "train_step_images_per_second": train_ips,
                       "pipeline_over_train": {s: v["images_per_second"] / train_ips for s, v in out.items()}}


def table(results):
    rows = []
    if "gating" in results:
        g = results["gating"]
        s = g["step_seconds"]
        rows.append(("training step, plain (no gates)", f"{1e3 * s['plain']:.1f} ms", ""))
        rows.append(("training step, gated", f"{1e3 * s['gated']:.1f} ms",
                     f"{g['gated_over_plain']:.3f}x plain (target <= 1.15x)"))
        rows.append(("training step, gated + alignment", f"{1e3 * s['gated+alignment']:.1f} ms",
                     f"{g['gated_alignment_over_plain']:.3f}x plain"))
    if "agent" in results:
        a = results["agent"]
        rows.append((f"agent step ({a['num_samples']} samples, {a['dynamics_steps']} dynamics steps, "
                     f"{a['held_out']} held-out)", f"{a['agent_step_seconds']:.2f} s",
                     f"first (tracing) {a['first_agent_step_seconds']:.2f} s"))
        rows.append((f"CIFAR epoch of weight training ({a['steps_per_cifar_epoch']} steps)",
                     f"{a['cifar_epoch_weight_seconds']:.0f} s",
                     f"agent = {100 * a['agent_fraction_of_epoch']:.2f}% of the epoch (target <= 5%)"))
        for part, seconds in a.get("agent_step_breakdown_seconds", {}).items():
            rows.append((f"  agent step part: {part}", f"{seconds:.2f} s", ""))
    if "tflite" in results:
        t = results["tflite"]
        rows.append((f"TFLite float latency, full ({t['threads']} thread, batch 1)",
                     f"{t['latency_ms']['full']:.3f} ms", f"{t['size_bytes']['full'] / 1e3:.0f} kB"))
        rows.append((f"TFLite float latency, pruned (FLOPs ratio {t['flops_ratio']:.3f})",
                     f"{t['latency_ms']['pruned']:.3f} ms",
                     f"latency ratio {t['latency_ratio']:.3f} vs FLOPs ratio {t['flops_ratio']:.3f}"))
    if "data" in results:
        d = results["data"]
        for source, v in d["sources"].items():
            rows.append((f"input pipeline, {source}", f"{v['images_per_second']:.0f} img/s",
                         f"{d['pipeline_over_train'][source]:.1f}x the training step's "
                         f"{d['train_step_images_per_second']:.0f} img/s"))
    width = max(len(r[0]) for r in rows) if rows else 10
    lines = [f"{'measurement':<{width}} | {'value':>14} | note", "-" * (width + 40)]
    lines += [f"{a:<{width}} | {b:>14} | {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpu_count": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU")),
                           "tensorflow": tf.__version__},
               "args": {k: v for k, v in vars(args).items() if k != "json"}}
    step = None
    if "gating" in args.only or "agent" in args.only or "data" in args.only:
        print("timing training steps (plain / gated / gated+alignment)...", flush=True)
        step = bench_gating(args, results)["gated+alignment"]
    if "agent" in args.only:
        print("timing agent steps...", flush=True)
        bench_agent(args, results, step)
    if "tflite" in args.only:
        print("timing TFLite latency...", flush=True)
        bench_tflite(args, results)
    if "data" in args.only:
        print("timing input pipelines...", flush=True)
        bench_data(args, results, step)
    text = table(results)
    print(f"\n{args.model} (width {args.width_multiplier}), {args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}; {results['machine']['cpu_count']} CPUs, "
          f"{results['machine']['gpus']} GPUs, TF {results['machine']['tensorflow']}\n{text}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
