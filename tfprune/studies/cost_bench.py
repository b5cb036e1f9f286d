"""The cost benches of issue 37, run by ``tfprune bench --only fit,scaling``.

1. fit (`bench_fit`): images/s of tfprune's training loop (`WeightTrainer.train_epoch` on the gated model
   with the alignment penalty: what the joint phase runs) against Keras' own ``model.fit`` on the same
   network without gates (same weights, batch, optimizer, loss), and against tfprune's loop on that
   gate-free network (what the gates cost apart from the loop). One process, the variants timed in
   interleaved rounds on the same in-memory batch (the input pipeline is `bench_data`'s business).
2. scaling (`bench_agent_scaling`): one agent step's time and peak memory against the number of groups
   (models), held-out images and episodes per step, each configuration in a fresh subprocess (peak RSS
   is per process); a least-squares fit of time against episodes x images x the model's cost and the
   prediction for the shipped ImageNet ResNet-50 config (`predict_share`).
"""

import json
import math
import os
import statistics
import subprocess
import sys
import time

TITLE = "# Speed benchmarks: "  # the performance page's first line, before the command that measured it

# --------------------------------------------------------------------------------------------- fit

FIT_VARIANTS = ("model.fit (plain)", "tfprune loop (plain)", "tfprune loop (gated+alignment)")


def bench_fit(model="resnet20", *, width_multiplier=0.5, image_size=16, batch_size=64, steps=50, rounds=5,
              jit_compile=False):
    """Images/s of each of `FIT_VARIANTS`, the median over ``rounds`` interleaved rounds of ``steps`` steps.

    ``jit_compile`` is handed to ``model.compile`` (Keras' default "auto" uses XLA where it can, which was
    slower than graph mode on this project's CPUs); the tfprune loop runs in graph mode. Returns a dict with
    ``images_per_second`` per variant, every round's, and ``loop_over_fit`` (target >= 0.98)."""
    import keras
    import tensorflow as tf

    from tfprune.studies.bench import _batch, _model, half_mask_alignment
    from tfprune.structure.surgery import compact_model
    from tfprune.training.weight_trainer import WeightTrainer, make_optimizer

    strategy = tf.distribute.get_strategy()
    gated = _model(model, image_size, width_multiplier)
    plain, fitted = compact_model(gated), compact_model(gated)  # all masks open: same network, no gates
    fitted.compile(optimizer=make_optimizer(1000), jit_compile=jit_compile, metrics=["accuracy"],
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    alignment = half_mask_alignment(gated)
    loops = {FIT_VARIANTS[1]: WeightTrainer(strategy, plain, make_optimizer(1000), batch_size),
             FIT_VARIANTS[2]: WeightTrainer(strategy, gated, make_optimizer(1000), batch_size,
                                            regularizer=alignment.penalty)}
    data = tf.data.Dataset.from_tensors(_batch(batch_size, image_size)).repeat()

    def run(name):
        if name == FIT_VARIANTS[0]:
            fitted.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        else:
            loops[name].train_epoch(data.take(steps), steps, name)

    for name in FIT_VARIANTS:  # trace and warm up
        run(name)
    rounds_ips = {name: [] for name in FIT_VARIANTS}
    for _ in range(rounds):
        for name in FIT_VARIANTS:
            start = time.perf_counter()
            run(name)
            rounds_ips[name].append(steps * batch_size / (time.perf_counter() - start))
    ips = {name: statistics.median(v) for name, v in rounds_ips.items()}
    return {"model": model, "width_multiplier": width_multiplier, "image_size": image_size,
            "batch_size": batch_size, "steps": steps, "jit_compile": jit_compile,
            "images_per_second": ips, "round_images_per_second": rounds_ips,
            "loop_over_fit": ips[FIT_VARIANTS[2]] / ips[FIT_VARIANTS[0]],
            "plain_loop_over_fit": ips[FIT_VARIANTS[1]] / ips[FIT_VARIANTS[0]], "target": 0.98}


def fit_rows(result):
    """`bench_fit`'s rows for `tfprune.studies.bench.format_table`."""
    ips = result["images_per_second"]
    rows = [(f"training throughput, {name}", f"{ips[name]:.0f} img/s", "") for name in FIT_VARIANTS]
    rows[1] = rows[1][:2] + (f"{result['plain_loop_over_fit']:.3f}x model.fit",)
    rows[2] = rows[2][:2] + (f"{result['loop_over_fit']:.3f}x model.fit (target >= 0.98x)",)
    return rows


# ----------------------------------------------------------------------------------------- scaling

SCALING_MODELS = (("resnet20", 32), ("resnet56", 32), ("resnet110", 32), ("mobilenetv2_cifar", 32),
                  ("resnet50", 224))
TRAIN_BATCH = {32: 128, 224: 32}  # batch of the training-speed timing, by input size (CPU memory and time)
EPOCH_IMAGES = {32: 50_000, 224: 1_281_167}  # the real data set's epoch at that input size: CIFAR-10, ImageNet


def scaling_grid(models=SCALING_MODELS, held_out=(64, 256), num_samples=(16, 64), episode_images=32,
                 dynamics_steps=200):
    """The configurations `bench_agent_scaling` times: for each model, each held-out size at the first
    episode count and each further episode count at the first held-out size (one factor at a time)."""
    grid = []
    for model, size in models:
        for n in held_out:
            grid.append({"model": model, "image_size": size, "held_out": n, "num_samples": num_samples[0],
                         "episode_images": episode_images, "dynamics_steps": dynamics_steps})
        grid[-len(held_out)]["train_batch"] = TRAIN_BATCH[size]  # the model's training speed, timed once
        for k in num_samples[1:]:
            grid.append({"model": model, "image_size": size, "held_out": held_out[0], "num_samples": k,
                         "episode_images": episode_images, "dynamics_steps": dynamics_steps})
    return grid


def bench_agent_scaling(grid=None, *, agent_steps=1, timeout=1800, log=print):
    """Times one agent step (after an untimed first) and the peak memory of each configuration of ``grid``
    (`scaling_grid()` by default) in a fresh subprocess; returns {"rows": [...], "fit": `fit_growth`}."""
    rows = []
    for config in grid or scaling_grid():
        log(f"agent step: {config}")
        cmd = [sys.executable, "-m", "tfprune.studies.cost_bench", json.dumps(dict(config, agent_steps=agent_steps))]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            rows.append(dict(config, error=out.stderr.strip().splitlines()[-1:]))
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return derived(rows)


def derived(rows):
    """{"rows", and what they give: "fit" (`fit_growth`), "shares" (`epoch_shares`), "shipped"
    (`predict_shipped`)}: computed from the rows wherever they are shown, so a page never shows a stale fit."""
    fit = fit_growth([r for r in rows if "error" not in r])
    return {"rows": rows, "fit": fit, "shares": epoch_shares(rows), "shipped": predict_shipped(fit, rows)}


def epoch_shares(rows):
    """Each timed configuration's agent step as a share of an epoch of its model's real data set
    (`EPOCH_IMAGES`) at the model's measured training speed (timed once per model)."""
    speed = {r["model"]: r["train_images_per_second"] for r in rows if r.get("train_images_per_second")}
    shares = []
    for r in rows:
        if "error" not in r and r["model"] in speed:
            epoch = EPOCH_IMAGES[r["image_size"]] / speed[r["model"]]
            shares.append({"model": r["model"], "held_out": r["held_out"], "num_samples": r["num_samples"],
                           "epoch_seconds": epoch, "share": r["agent_step_seconds"] / (epoch + r["agent_step_seconds"])})
    return shares


SHIPPED = ("imagenet_resnet50.gin", "resnet50")  # the shipped config whose agent share the fit predicts


def predict_shipped(fit, rows, config=SHIPPED[0], model=SHIPPED[1]):
    """The fit's prediction for the shipped config's agent step (its episodes, images per episode,
    finalists and held-out images read from the config) and its share of an ImageNet epoch at the model's
    training speed measured here; None without a fit or a timed row of that model."""
    timed = [r for r in rows if r.get("model") == model and r.get("train_images_per_second")]
    if fit is None or not timed:
        return None
    settings = shipped_settings(config)
    prediction = predict_share(fit, groups=timed[0]["groups"], gflops=timed[0]["gflops"],
                               epoch_images=EPOCH_IMAGES[timed[0]["image_size"]],
                               train_images_per_second=timed[0]["train_images_per_second"], **settings)
    return {"config": config, **settings, **prediction}


def shipped_settings(config):
    """The agent-step settings of a shipped gin config (gin parses it, its includes too). Clears gin's
    configuration afterwards: for a bench process, not for one that is about to train."""
    import logging

    import gin

    import tfprune
    import tfprune.data  # noqa: F401  (registers build_datasets)
    import tfprune.pruning.pruner  # noqa: F401  (registers JointPruner)

    folder = os.path.join(os.path.dirname(tfprune.__file__), "configs")
    root = logging.getLogger()
    level, root.level = root.level, logging.CRITICAL  # gin logs each include's tries of its search path
    try:
        gin.add_config_file_search_path(folder)
        gin.parse_config_files_and_bindings([os.path.join(folder, config)], [], skip_unknown=True)
        values = {key: gin.query_parameter(name) for key, name in (
            ("num_samples", "JointPruner.num_samples"), ("episode_images", "JointPruner.episode_images"),
            ("finalists", "JointPruner.finalists"), ("held_out", "build_datasets.held_out_examples"))}
    finally:
        root.level = level
        gin.clear_config()
    return values


def scaling_rows(result):
    """`bench_agent_scaling`'s rows for `tfprune.studies.bench.format_table`."""
    rows = []
    for r in result["rows"]:
        name = (f"agent step, {r['model']} {r['image_size']}px, {r.get('groups', '?')} groups, "
                f"{r['num_samples']} episodes, {r['held_out']} held-out")
        if "error" in r:
            rows.append((name, "failed", " ".join(r["error"])))
        else:
            rows.append((name, f"{r['agent_step_seconds']:.2f} s", f"peak RSS {r['peak_rss_mb']:.0f} MB"))
    fit = result.get("fit")
    if fit:
        worst = max(abs(e) for e in fit["relative_errors"])
        rows.append(("agent step fit: s per GFLOP of episodes / of finalists", f"{fit['seconds_per_episode_gflop']:.5f}",
                     f"{fit['seconds_per_finalist_gflop']:.5f}; per group x episode {fit['seconds_per_group_episode']:.2e} s;"
                     f" constant {fit['constant_seconds']:.2f} s; worst relative error {100 * worst:.0f}%"))
    return rows


def _one_configuration(config):
    """In the subprocess: one model's agent step, timed; its groups, FLOPs and the process's peak memory."""
    import resource

    from tfprune.cost.flops import CostModel
    from tfprune.structure.graph import ChannelGraph
    from tfprune.studies.bench import _model, bench_agent

    rss_before = _peak_rss_mb(resource)
    result = bench_agent(0.0, config["model"], image_size=config["image_size"], held_out=config["held_out"],
                         num_samples=config["num_samples"], episode_images=config.get("episode_images"),
                         dynamics_steps=config.get("dynamics_steps"), agent_steps=config.get("agent_steps", 1))
    model = _model(config["model"], config["image_size"], 1.0)
    if config.get("train_batch"):
        config = dict(config, train_images_per_second=_train_images_per_second(model, config["train_batch"]))
    return dict(config, groups=len(ChannelGraph(model, warn=False).gated_groups),
                gflops=CostModel(model).full.flops / 1e9, agent_step_seconds=result["agent_step_seconds"],
                first_agent_step_seconds=result["first_agent_step_seconds"],
                episode_images_used=result["episode_images"], finalists=result["finalists"],
                peak_rss_mb=_peak_rss_mb(resource), rss_before_mb=rss_before)


def _train_images_per_second(gated, batch_size, steps=3):
    """Images/s of the joint phase's training step (gated, alignment on) on ``gated``, timed as
    `bench_gating` times its steps (`bench._time_train_steps`: warmed up first)."""
    import tensorflow as tf

    from tfprune.studies.bench import _batch, _time_train_steps, half_mask_alignment
    from tfprune.training.weight_trainer import WeightTrainer, make_optimizer

    trainer = WeightTrainer(tf.distribute.get_strategy(), gated, make_optimizer(1000), batch_size,
                            regularizer=half_mask_alignment(gated).penalty)
    (seconds,) = _time_train_steps({"step": trainer}, _batch(batch_size, gated.input_shape[1]), steps, 1)["step"]
    return batch_size / seconds


def _peak_rss_mb(resource):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def fit_growth(rows):
    """Least squares, in relative error (the times span two orders of magnitude), of agent-step seconds
    on what the step does: a * episodes x images per episode x GFLOPs per image (the episodes' rewards,
    K sub-networks per batched pass) + a2 * finalists x held-out images x GFLOPs (the finalists' rescoring)
    + b * groups x episodes (layer-by-layer rollouts: one policy call per group) + c (PPO update, dynamics
    model). Returns the coefficients and each row's relative error; None for fewer rows than terms."""
    import numpy as np

    if len(rows) < len(FIT_TERMS):
        return None
    X = np.array([_terms(r) for r in rows])
    y = np.array([r["agent_step_seconds"] for r in rows])
    coef, *_ = np.linalg.lstsq(X / y[:, None], np.ones_like(y), rcond=None)
    return {**dict(zip(FIT_TERMS, (float(c) for c in coef))), "relative_errors": list((X @ coef - y) / y)}


FIT_TERMS = ("seconds_per_episode_gflop", "seconds_per_finalist_gflop", "seconds_per_group_episode",
             "constant_seconds")


def _terms(row):
    return [row["num_samples"] * row["episode_images_used"] * row["gflops"],
            row["finalists"] * row["held_out"] * row["gflops"], row["groups"] * row["num_samples"], 1.0]


def predict_share(fit, *, groups, num_samples, episode_images, finalists, held_out, gflops, epoch_images,
                  train_images_per_second):
    """Predicted agent-step seconds for a config (from `fit_growth`'s coefficients) and its share of an
    epoch of ``epoch_images`` trained at ``train_images_per_second``."""
    row = {"num_samples": num_samples, "episode_images_used": episode_images, "finalists": finalists,
           "held_out": held_out, "gflops": gflops, "groups": groups}
    seconds = sum(fit[name] * term for name, term in zip(FIT_TERMS, _terms(row)))
    epoch = epoch_images / train_images_per_second
    return {"agent_step_seconds": seconds, "epoch_seconds": epoch, "share": seconds / (epoch + seconds)}


# ------------------------------------------------------------------------------------------ the page


def markdown(results, command, provenance):
    """The performance page's tables from the results of ``tfprune bench --only fit,scaling --json FILE``."""
    lines = [f"{TITLE}{command}", "", provenance, ""]
    if "fit" in results:
        lines += _fit_section(results["fit"])
    if "scaling" in results:
        lines += _scaling_section(derived(results["scaling"]["rows"]))
    return "\n".join(lines) + "\n"


def _fit_section(fit):
    lines = ["## Training loop vs `model.fit`", "",
             f"{fit['model']} (width {fit['width_multiplier']}), {fit['image_size']}x{fit['image_size']}, batch "
             f"{fit['batch_size']}; {fit['steps']} steps per variant per round, {len(fit['round_images_per_second'][FIT_VARIANTS[0]])} "
             f"interleaved rounds, median; `model.fit` with `jit_compile={fit['jit_compile']}`.", "",
             "| variant | images/s (median) | / model.fit | / model.fit, median of the rounds' | / model.fit, best "
             "rounds | rounds (images/s) |", "|---|---|---|---|---|---|"]
    base = fit["images_per_second"][FIT_VARIANTS[0]]
    base_rounds = fit["round_images_per_second"][FIT_VARIANTS[0]]
    for name in FIT_VARIANTS:
        ips, rounds = fit["images_per_second"][name], fit["round_images_per_second"][name]
        paired = statistics.median(v / b for v, b in zip(rounds, base_rounds))  # a slow phase hits both alike
        best = max(rounds) / max(base_rounds)  # each at its fastest: what a throttled round cannot lower
        lines.append(f"| {name} | {ips:.0f} | {ips / base:.3f} | {paired:.3f} | {best:.3f} | "
                     f"{', '.join(f'{v:.0f}' for v in rounds)} |")
    return lines + [""]


def _scaling_section(scaling):
    lines = ["## The agent step's cost", "",
             "| model | input | groups | GFLOPs/image (MACs) | held-out | episodes | agent step (s) | first step (s) | "
             "peak RSS (MB) | train images/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in scaling["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['image_size']} | - | - | {r['held_out']} | {r['num_samples']} | failed: "
                         f"{' '.join(r['error'])} | - | - | - |")
            continue
        ips = r.get("train_images_per_second")
        lines.append(f"| {r['model']} | {r['image_size']} | {r['groups']} | {r['gflops']:.3f} | {r['held_out']} | "
                     f"{r['num_samples']} | {r['agent_step_seconds']:.2f} | {r['first_agent_step_seconds']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | " + ("-" if not ips else f"{ips:.1f}") + " |")
    lines += ["", "Share of an epoch of the real data set (CIFAR-10 50,000 images at 32 px, ImageNet 1,281,167 at 224 "
              "px) at the training speed measured here:", "", "| model | held-out | episodes | epoch (s) | agent share |",
              "|---|---|---|---|---|"]
    lines += [f"| {s['model']} | {s['held_out']} | {s['num_samples']} | {s['epoch_seconds']:.0f} | "
              f"{100 * s['share']:.2f}% |" for s in scaling["shares"]]
    fit, shipped = scaling.get("fit"), scaling.get("shipped")
    if fit:
        worst = max(abs(e) for e in fit["relative_errors"])
        lines += ["", f"Fit (least squares in relative error): agent step = {fit['seconds_per_episode_gflop']:.5f} s "
                  f"per GFLOP of the episodes' scoring (episodes x images per episode x GFLOPs per image) + "
                  f"{fit['seconds_per_finalist_gflop']:.5f} s per GFLOP of the finalists' (finalists x held-out "
                  f"images x GFLOPs) + {fit['seconds_per_group_episode']:.2e} s per group x episode (the "
                  f"layer-by-layer rollouts) + {fit['constant_seconds']:.2f} s; worst relative error "
                  f"{100 * worst:.0f}% over {len(fit['relative_errors'])} configurations."]
    if shipped:
        lines += ["", f"Predicted for `{shipped['config']}` ({shipped['num_samples']} episodes x "
                  f"{shipped['episode_images']} images, {shipped['finalists']} finalists x {shipped['held_out']}): "
                  f"agent step {shipped['agent_step_seconds']:.0f} s against a {shipped['epoch_seconds']:.0f} s epoch "
                  f"here: **{100 * shipped['share']:.2f}% of an epoch**."]
    return lines + [""]


if __name__ == "__main__":  # one configuration of bench_agent_scaling, in its own process
    print(json.dumps(_one_configuration(json.loads(sys.argv[1]))))
