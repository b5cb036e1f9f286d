"""Speed benchmarks of tfprune's overheads behind ``tools/bench.py``; every ratio is measured within one
process run.

1. gating (`bench_gating`): training-step time of the gated zoo model vs the same architecture without
   gates (`tfprune.structure.surgery.compact_model(model)` with all-ones masks: same weights, no ChannelGate),
   and of the gated model with the alignment penalty on (what the joint phase trains). Target <= 1.15x.
   Variants are timed in interleaved rounds; the median per-step time of each is reported.
2. agent (`bench_agent`): one `JointPruner.agent_step` (default num_samples / dynamics_steps unless
   given, held-out set of ``held_out`` images) vs one CIFAR-10 epoch = ceil(50,000 / batch) training
   steps at the measured gated+alignment step time. Target <= 5% of the epoch. The first agent step
   (tracing) is reported separately and excluded.
3. tflite (`bench_tflite`): TFLite float latency (batch 1, ``threads`` threads) of the full model
   (gate-free) vs a compact model at ``target_flops`` (uniform ratios projected onto the budget),
   beside the FLOPs ratio.
4. data (`bench_data`): input-pipeline throughput (images/s of `build_datasets(...).train`, several
   epochs, first batch excluded) for the synthetic and digits sources vs the training step's images/s.
5. channels (on request; `tfprune.studies.channel_bench.bench_channels`): LiteRT latency of a 3x3 conv, a 1x1
   conv and a depthwise conv at channel counts 8k-7 .. 8k+7 vs 8k, interleaved in one process.
6. rounding (on request; `tfprune.studies.channel_bench.bench_rounding`): ResNet-56 and MobileNetV2 (CIFAR)
   full vs their uniform sub-network at ``target_flops`` for each ``round_to``, at each thread count.
7. latency (on request; `tfprune.studies.latency_bench.bench_latency`): ResNet-56 (32x32), MobileNetV2 (32x32 and
   224x224) full vs sub-networks at ``target_flops`` of the FLOPs and of the predicted latency, at each
   ``round_to``: measured and predicted LiteRT latency at each thread count, FLOPs, params, file size.
8. fit and scaling (on request; `tfprune.studies.cost_bench`): the training loop's images/s against Keras'
   ``model.fit`` of the same network (``--fit_steps`` steps per round), and the agent step's time and peak
   memory against the number of groups, held-out images and episodes, with its fitted growth.
9. zoo (on request; `tfprune.studies.zoo.bench_zoo`): every keras.applications constructor and KerasHub CNN
   backbone gated, pruned to ``target_flops``, compacted (masked == compact) and exported to TFLite, written
   as docs/zoo.md and docs/zoo.json (``--zoo_models kerashub``: KerasHub's rows alone, the others kept).

Each bench is a function with plain arguments that returns its results as a dict, so that a user can
measure the overheads on their own machine and model size from Python (and assert on them);
`run_benchmarks` runs a selection the way the command does and `format_table` prints them. `main(argv)`
is the command line (`tools/bench.py` only calls it). Timings share the machine with whatever else
runs: compare ratios, not absolute numbers, across machines.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

from tfprune.studies import channel_bench, cost_bench

from tfprune.studies import latency_bench
from tfprune.errors import TfpruneError

BENCHES = ("gating", "agent", "tflite", "data", "channels", "rounding", "latency", "fit", "scaling", "zoo")
DEFAULT_BENCHES = ("gating", "agent", "tflite", "data")  # the others on request
CIFAR_TRAIN = 50_000


class BenchError(TfpruneError, ValueError):
    """A benchmark that does not exist was asked for."""


def _model(model, image_size, width_multiplier):
    from tfprune.models import build_model

    return build_model(model, num_classes=10, input_shape=(image_size, image_size, 3),
                       width_multiplier=width_multiplier)


def _batch(n, image_size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    return x, y


# ------------------------------------------------------------------------------------------ gating


def bench_gating(model="resnet56", *, width_multiplier=1.0, image_size=32, batch_size=128, steps=5, rounds=3):
    """Training-step time of plain / gated / gated+alignment variants of zoo ``model``.

    Returns a dict with ``step_seconds`` (median per variant), ``round_step_seconds``, the ratios
    ``gated_over_plain`` / ``gated_alignment_over_plain`` and the 1.15 target.
    """
    import tensorflow as tf

    from tfprune.structure.surgery import compact_model
    from tfprune.training.weight_trainer import WeightTrainer, make_optimizer

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0" if not tf.config.list_logical_devices("GPU") else "/gpu:0")
    with strategy.scope():
        gated = _model(model, image_size, width_multiplier)
        plain = compact_model(gated)  # gates' masks are all ones: same architecture and weights, no gates
        alignment = half_mask_alignment(gated)
        optimizers = [make_optimizer(1000) for _ in range(3)]
    # the alignment variant trains the same gated model object, only adding the regulariser
    variants = {
        "plain": WeightTrainer(strategy, plain, optimizers[0], batch_size),
        "gated": WeightTrainer(strategy, gated, optimizers[1], batch_size),
        "gated+alignment": WeightTrainer(strategy, gated, optimizers[2], batch_size, regularizer=alignment.penalty),
    }
    x, y = _batch(batch_size, image_size)
    batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, y)))))
    times = _time_train_steps(variants, batch, steps, rounds)
    step = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": model, "batch_size": batch_size, "image_size": image_size,
        "step_seconds": step, "round_step_seconds": times,
        "gated_over_plain": step["gated"] / step["plain"],
        "gated_alignment_over_plain": step["gated+alignment"] / step["plain"],
        "target": 1.15,
    }


def half_mask_alignment(gated):
    """The alignment penalty of ``gated`` toward an arbitrary half mask per group, at a non-zero strength:
    what the joint phase's training steps compute, for the speed benches."""
    from tfprune.pruning.alignment import GroupLassoAlignment
    from tfprune.structure.graph import ChannelGraph

    graph = ChannelGraph(gated, warn=False)
    alignment = GroupLassoAlignment(graph)
    alignment.set_targets({g.name: [i % 2 == 0 for i in range(g.size)] for g in graph.gated_groups})
    alignment.strength.assign(1e-3)
    return alignment


def _time_train_steps(variants, batch, steps, rounds):
    """{variant: [seconds per step, one per round]}: traced and warmed up first, then timed in
    interleaved rounds so that a slow phase of the machine hits every variant alike."""
    for trainer in variants.values():  # trace + warm up
        for _ in range(2):
            float(trainer.train_step(batch)[0])
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for name, trainer in variants.items():
            start = time.perf_counter()
            for _ in range(steps):
                out = trainer.train_step(batch)
            float(out[0])
            times[name].append((time.perf_counter() - start) / steps)
    return times


# ------------------------------------------------------------------------------------------- agent


def bench_agent(step_seconds, model="resnet56", *, width_multiplier=1.0, image_size=32, batch_size=128,
                held_out=512, num_samples=None, dynamics_steps=None, agent_steps=2, target_flops=0.5,
                episode_images=None):
    """Time of one `JointPruner.agent_step` against a CIFAR-10 epoch of training steps of
    ``step_seconds`` each (`bench_gating`'s gated+alignment time), with a breakdown of the step.

    Returns a dict with ``agent_step_seconds`` (median of ``agent_steps`` timed steps after an untimed
    one), ``first_agent_step_seconds``, ``agent_fraction_of_epoch`` (target 0.05) and the breakdown.
    """
    from tfprune.pruning.pruner import JointPruner

    kwargs = {}
    if num_samples is not None:
        kwargs["num_samples"] = num_samples
    if dynamics_steps is not None:
        kwargs["dynamics_steps"] = dynamics_steps
    if episode_images is not None:
        kwargs["episode_images"] = episode_images
    images = _batch(held_out, image_size, seed=1)
    pruner = JointPruner(_model(model, image_size, width_multiplier), images, target_flops_ratio=target_flops,
                         max_epochs=200, **kwargs)
    parts = _time_parts(pruner)
    start = time.perf_counter()
    pruner.agent_step(0)
    first = time.perf_counter() - start
    for key in parts:
        parts[key] = 0.0
    timed = []
    for e in range(1, 1 + agent_steps):
        start = time.perf_counter()
        pruner.agent_step(e)
        timed.append(time.perf_counter() - start)
    breakdown = {k: v / len(timed) for k, v in parts.items()}
    breakdown["other (importance, alignment targets, bookkeeping)"] = sum(timed) / len(timed) - sum(breakdown.values())
    agent = statistics.median(timed)
    steps_per_epoch = math.ceil(CIFAR_TRAIN / batch_size)
    epoch = step_seconds * steps_per_epoch
    return {
        "num_samples": pruner.num_samples, "dynamics_steps": pruner.policy.dynamics_steps, "held_out": held_out,
        "episode_images": pruner.history[-1]["images_per_episode"], "finalists": pruner.finalists,
        "reward_std": pruner.history[-1]["reward_std"],
        "reward_standard_error": pruner.history[-1]["reward_standard_error"],
        "first_agent_step_seconds": first, "agent_step_seconds": agent, "agent_step_seconds_all": timed,
        "agent_step_breakdown_seconds": breakdown,
        "train_step_seconds": step_seconds, "steps_per_cifar_epoch": steps_per_epoch,
        "cifar_epoch_weight_seconds": epoch, "agent_fraction_of_epoch": agent / (epoch + agent),
        "target": 0.05,
    }


def _time_parts(pruner):
    """Wraps the agent step's parts (instance attributes shadow the methods) to accumulate their time."""
    parts, running = {}, set()

    def wrap(owner, name, label):
        original = getattr(owner, name)
        parts[label] = 0.0

        def timed(*a, **k):
            if label in running:  # a part calling itself (score_many one mask at a time): counted once
                return original(*a, **k)
            running.add(label)
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                parts[label] += time.perf_counter() - start
                running.discard(label)

        setattr(owner, name, timed)

    scoring = "score sub-networks on held-out (scorer.score_many / score)"
    wrap(pruner.scorer, "score", scoring)
    wrap(pruner.scorer, "score_many", scoring)
    wrap(pruner.budget, "masks", "budget projection + masks (budget.masks)")
    agent, dynamics = pruner.policy.agent, pruner.policy.dynamics
    if hasattr(pruner.policy, "space"):  # the episodic agent: episodes rolled out step by step
        wrap(pruner.policy.space, "rollout", "episode rollouts: bounds + PPO sampling (space.rollout)")
    else:
        wrap(agent, "propose", "PPO sample actions (agent.propose)")
    wrap(agent, "update", "PPO update (agent.update)")
    wrap(dynamics, "train", "dynamics model training (dynamics.train)")
    wrap(dynamics, "representation", "dynamics representation")
    wrap(dynamics, "predict", "dynamics predict (stats)")
    return parts


# ------------------------------------------------------------------------------------------ tflite


def bench_tflite(model="resnet56", *, width_multiplier=1.0, image_size=32, target_flops=0.5, threads=1,
                 latency_runs=100):
    """TFLite float latency (batch 1) of the gate-free full model vs its compact sub-network at
    ``target_flops`` (uniform ratios projected onto the budget): does the FLOPs cut buy latency?

    Returns a dict with ``latency_ms`` / ``size_bytes`` per model, ``flops_ratio`` and ``latency_ratio``.
    """
    import numpy as np

    from tfprune.deploy.export import convert_tflite
    from tfprune.deploy.interpreter import interpreter_runtime
    from tfprune.deploy.timing import tflite_latency_ms
    from tfprune.cost.budget import FlopsBudget
    from tfprune.cost.flops import CostModel
    from tfprune.structure.graph import ChannelGraph
    from tfprune.structure.surgery import compact_model

    gated = _model(model, image_size, width_multiplier)
    graph = ChannelGraph(gated, warn=False)
    cost_model = CostModel(gated, graph)
    masks, flops_ratio = FlopsBudget(cost_model, graph, target_flops).masks(np.zeros(len(cost_model.group_names)))
    full = compact_model(gated)
    small = compact_model(gated, masks)
    cost_full, cost_small = CostModel(full).full, CostModel(small).full
    blobs = {"full": convert_tflite(full, "float"), "pruned": convert_tflite(small, "float")}
    lat = {k: [] for k in blobs}
    for _ in range(2):  # interleaved
        for k, blob in blobs.items():
            lat[k].append(tflite_latency_ms(blob, num_threads=threads, runs=latency_runs, warmup=10))
    latency = {k: min(v) for k, v in lat.items()}
    return {
        "runtime": interpreter_runtime()[1],
        "threads": threads, "batch_size": 1, "flops_full": cost_full.flops, "flops_pruned": cost_small.flops,
        "flops_ratio": cost_small.flops / cost_full.flops, "params_full": cost_full.params,
        "params_pruned": cost_small.params, "latency_ms": latency, "latency_ms_rounds": lat,
        "latency_ratio": latency["pruned"] / latency["full"],
        "size_bytes": {k: len(v) for k, v in blobs.items()}, "target_flops_ratio_asked": float(flops_ratio),
    }


# -------------------------------------------------------------------------------------------- data


def bench_data(step_seconds=None, *, image_size=32, batch_size=128, data_epochs=3, sources=("synthetic", "digits")):
    """Input-pipeline throughput (images/s of `build_datasets(...).train`, first batch excluded) of each
    of ``sources``, and its ratio to the training step's images/s (``batch_size / step_seconds``; NaN
    without ``step_seconds``): a pipeline slower than training starves the accelerator.
    """
    from tfprune.data import build_datasets

    out = {}
    for source in sources:
        kwargs = {"num_train": 8192} if source == "synthetic" else {}
        data = build_datasets(source=source, image_size=image_size, batch_size=batch_size,
                              held_out_examples=256, **kwargs)
        images, start = 0, None
        for _ in range(data_epochs):
            for x, _ in data.train:
                if start is None:  # exclude the first batch (pipeline start-up, tracing)
                    start = time.perf_counter()
                    continue
                images += int(x.shape[0])
        seconds = time.perf_counter() - start
        out[source] = {"images_per_second": images / seconds, "images": images, "seconds": seconds}
    train_ips = batch_size / step_seconds if step_seconds else float("nan")
    return {"sources": out, "train_step_images_per_second": train_ips,
            "pipeline_over_train": {s: v["images_per_second"] / train_ips for s, v in out.items()}}


# ------------------------------------------------------------------------------------------- report


def format_table(results):
    """The results of `run_benchmarks` (any subset of its benches) as a text table."""
    rows = []
    if "gating" in results:
        rows += _gating_rows(results["gating"])
    if "agent" in results:
        rows += _agent_rows(results["agent"])
    if "tflite" in results:
        t = results["tflite"]
        rows.append((f"TFLite float latency, full ({t['threads']} thread, batch 1)",
                     f"{t['latency_ms']['full']:.3f} ms", f"{t['size_bytes']['full'] / 1e3:.0f} kB"))
        rows.append((f"TFLite float latency, pruned (FLOPs ratio {t['flops_ratio']:.3f})",
                     f"{t['latency_ms']['pruned']:.3f} ms",
                     f"latency ratio {t['latency_ratio']:.3f} vs FLOPs ratio {t['flops_ratio']:.3f}"))
    if "channels" in results:
        rows += channel_bench.channel_rows(results["channels"])
    if "rounding" in results:
        rows += channel_bench.rounding_rows(results["rounding"])
    if "latency" in results:
        rows += latency_bench.latency_rows(results["latency"])
    if "fit" in results:
        rows += cost_bench.fit_rows(results["fit"])
    if "scaling" in results:
        rows += cost_bench.scaling_rows(results["scaling"])
    if "zoo" in results:
        z = results["zoo"]
        rows.append(("keras.applications + KerasHub zoo sweep", f"{z['passed']}/{z['models']} pass",
                     f"{z['seconds']:.0f} s; failed: {', '.join(z['failed']) or 'none'}; wrote {z['markdown']}"))
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


def _gating_rows(g):
    s = g["step_seconds"]
    return [
        ("training step, plain (no gates)", f"{1e3 * s['plain']:.1f} ms", ""),
        ("training step, gated", f"{1e3 * s['gated']:.1f} ms", f"{g['gated_over_plain']:.3f}x plain (target <= 1.15x)"),
        ("training step, gated + alignment", f"{1e3 * s['gated+alignment']:.1f} ms",
         f"{g['gated_alignment_over_plain']:.3f}x plain"),
    ]


def _agent_rows(a):
    rows = [
        (f"agent step ({a['num_samples']} episodes x {a.get('episode_images', a['held_out'])} images, "
         f"{a.get('finalists', 0)} finalists x {a['held_out']}, {a['dynamics_steps']} dynamics steps)",
         f"{a['agent_step_seconds']:.2f} s", f"first (tracing) {a['first_agent_step_seconds']:.2f} s"),
        (f"CIFAR epoch of weight training ({a['steps_per_cifar_epoch']} steps)",
         f"{a['cifar_epoch_weight_seconds']:.0f} s",
         f"agent = {100 * a['agent_fraction_of_epoch']:.2f}% of the epoch (target <= 5%)"),
    ]
    if "reward_std" in a:
        rows.append(("  reward spread between episodes (std) vs one reward's standard error",
                     f"{100 * a['reward_std']:.1f} pp", f"standard error {100 * a['reward_standard_error']:.1f} pp"))
    for part, seconds in a.get("agent_step_breakdown_seconds", {}).items():
        rows.append((f"  agent step part: {part}", f"{seconds:.2f} s", ""))
    return rows


# ----------------------------------------------------------------------------------------- together


def machine_info():
    """What the numbers were measured on (`tfprune.infra.environment.environment`, plus GPUs and TensorFlow)."""
    import tensorflow as tf

    from tfprune.infra.environment import environment

    return {**environment(), "gpus": len(tf.config.list_physical_devices("GPU")), "tensorflow": tf.__version__}


def run_benchmarks(only=DEFAULT_BENCHES, *, model="resnet56", width_multiplier=1.0, image_size=32, batch_size=128,
                   steps=5, rounds=3, held_out=512, num_samples=None, dynamics_steps=None, agent_steps=2,
                   target_flops=0.5, threads=1, latency_runs=100, data_epochs=3, episode_images=None,
                   round_to=(1, 8, 16), thread_counts=(1, 4), zoo_models="all", fit_steps=50, log=print):
    """Runs the benches named in ``only`` (see `BENCHES`) as ``tools/bench.py`` does; returns
    {"machine", "args", and one entry per bench run}. gating also runs when agent or data is asked
    for: they compare against its training-step time. ``log(line)`` receives progress lines.
    """
    unknown = [b for b in only if b not in BENCHES]
    if unknown:
        raise BenchError(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}")
    arch = dict(model=model, width_multiplier=width_multiplier, image_size=image_size)
    results = {"machine": machine_info(), "args": dict(
        only=list(only), **arch, batch_size=batch_size, steps=steps, rounds=rounds, held_out=held_out,
        num_samples=num_samples, dynamics_steps=dynamics_steps, agent_steps=agent_steps, episode_images=episode_images,
        target_flops=target_flops, threads=threads, latency_runs=latency_runs, data_epochs=data_epochs,
        round_to=list(round_to), thread_counts=list(thread_counts), zoo_models=zoo_models, fit_steps=fit_steps)}
    step = None
    if "gating" in only or "agent" in only or "data" in only:
        log("timing training steps (plain / gated / gated+alignment)...")
        results["gating"] = bench_gating(**arch, batch_size=batch_size, steps=steps, rounds=rounds)
        step = results["gating"]["step_seconds"]["gated+alignment"]
    if "agent" in only:
        log("timing agent steps...")
        results["agent"] = bench_agent(step, **arch, batch_size=batch_size, held_out=held_out,
                                       num_samples=num_samples, dynamics_steps=dynamics_steps,
                                       episode_images=episode_images,
                                       agent_steps=agent_steps, target_flops=target_flops)
    if "tflite" in only:
        log("timing TFLite latency...")
        results["tflite"] = bench_tflite(**arch, target_flops=target_flops, threads=threads,
                                         latency_runs=latency_runs)
    if "data" in only:
        log("timing input pipelines...")
        results["data"] = bench_data(step, image_size=image_size, batch_size=batch_size, data_epochs=data_epochs)
    results.update(_channel_benches(only, image_size, target_flops, threads, latency_runs, round_to, thread_counts, log))
    if "fit" in only:
        log("timing the training loop against model.fit...")
        results["fit"] = cost_bench.bench_fit(**arch, batch_size=batch_size, steps=fit_steps, rounds=rounds)
    if "scaling" in only:
        results["scaling"] = cost_bench.bench_agent_scaling(log=log)
    if "zoo" in only:
        from tfprune.studies import zoo

        results["zoo"] = zoo.bench_zoo(target=target_flops, machine=machine_info(), log=log, of=zoo_models)
    return results


def _channel_benches(only, image_size, target_flops, threads, latency_runs, round_to, thread_counts, log):
    """The channel-count benches (`tfprune.studies.channel_bench`): single layers, and ResNet-56 / MobileNetV2
    (CIFAR) at each rounding; and the latency budget's (`tfprune.studies.latency_bench`)."""
    results = {}
    if "channels" in only:
        log("timing single layers at channel counts 8k-7 .. 8k+7...")
        results["channels"] = channel_bench.bench_channels(threads=threads, runs=latency_runs)
    if "rounding" in only:
        results["rounding"] = channel_bench.bench_rounding(
            image_size=image_size, target_flops=target_flops, round_to=round_to, threads=thread_counts,
            runs=latency_runs, log=log)
    if "latency" in only:
        results["latency"] = latency_bench.bench_latency(
            target=target_flops, round_to=round_to, threads=thread_counts, runs=latency_runs, log=log)
    return results


# -------------------------------------------------------------------------------------- command line


def parse_args(argv=None):
    """Parses ``tools/bench.py``'s arguments; bad ones exit with status 2 (argparse's ``error``)."""
    p = argparse.ArgumentParser(description="Speed benchmarks of tfprune's overheads; every ratio is measured "
                                            "within one process run.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", default=",".join(DEFAULT_BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}")
    p.add_argument("--round_to", default="1,8,16", help="rounding/latency benches: JointPruner.round_to values")
    p.add_argument("--thread_counts", default="1,4", help="rounding/latency benches: interpreter threads, timed each")
    p.add_argument("--model", default="resnet56")
    p.add_argument("--width_multiplier", type=float, default=1.0)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=128, help="training batch (CIFAR recipe: 128)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per variant per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--held_out", type=int, default=512, help="held-out images scored by the agent")
    p.add_argument("--num_samples", type=int, default=None, help="JointPruner.num_samples (default: its default)")
    p.add_argument("--episode_images", type=int, default=None,
                   help="JointPruner.episode_images: held-out images per episode's reward (default: its default)")
    p.add_argument("--dynamics_steps", type=int, default=None, help="JointPruner.dynamics_steps (default: its default)")
    p.add_argument("--agent_steps", type=int, default=2, help="timed agent steps (after one untimed)")
    p.add_argument("--target_flops", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    p.add_argument("--latency_runs", type=int, default=100)
    p.add_argument("--data_epochs", type=int, default=3)
    p.add_argument("--fit_steps", type=int, default=50, help="fit bench: training steps per variant per round")
    p.add_argument("--zoo_models", default="all", choices=("all", "keras.applications", "kerashub"),
                   help="zoo bench: sweep these models only and keep the other source's rows of docs/zoo.json")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    try:
        args.round_to = tuple(int(v) for v in args.round_to.split(","))
        args.thread_counts = tuple(int(v) for v in args.thread_counts.split(","))
    except ValueError:
        p.error("--round_to and --thread_counts take comma-separated integers, e.g. 1,8,16")
    bad = [b for b in args.only if b not in BENCHES]
    if bad:
        p.error(f"unknown benchmark(s) {bad}; choose from {', '.join(BENCHES)}")
    return args


def main(argv=None):
    """``tools/bench.py``: prints the table, writes --json; exit status 0 (2 on bad arguments)."""
    args = parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    results = run_benchmarks(**settings, log=lambda line: print(line, flush=True))
    machine = results["machine"]
    print(f"\n{args.model} (width {args.width_multiplier}), {args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}; {machine['cpu_count']} CPUs, {machine['gpus']} GPUs, "
          f"TF {machine['tensorflow']}\n{format_table(results)}")
    if args.json:
        from tfprune.infra.environment import source_commit

        from tfprune.studies.compare import command_line

        results["command"] = "tfprune bench " + command_line(sys.argv[2:] if argv is None else argv)
        results["commit"] = source_commit()
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"Wrote {args.json}")
    return 0
