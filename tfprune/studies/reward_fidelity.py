"""Reward fidelity (issue 36, item 4): does the agent's reward rank sub-networks by what they become?

The agent learns from one number per sub-network: its accuracy on held-out training images with today's
weights (`tfprune.search.scoring`). No search can do better than that number's ranking of sub-networks
by what they are worth once cut and fine-tuned. This study measures the ranking, as EagleEye (Li et al.,
ECCV 2020) measured its candidates' evaluation:

1. The config's gated model is trained dense (every gate open, no agent, no alignment, so that no
   sub-network is favoured) on the config's joint schedule. Its weights are kept at the end of the
   warm-up (what the first agent step sees) and after the last joint epoch (what the final selection sees).
2. At each of those epochs, sub-networks at the config's budget, every one projected onto it as the
   agent's actions are (`FlopsBudget.masks`): the rules (uniform, global magnitude, the config's profile
   and its mirror, the head protected) and random ratio vectors, half spread over [0, max_ratio], half
   near uniform's (as the agent explores around its centre).
3. For each sub-network, the rewards the agent could use (`PROXIES`) and the **truth**: the sub-network
   cut, its BatchNorm recalibrated and fine-tuned as a run fine-tunes it (`run.finetune_epochs` at
   `run.finetune_learning_rate`), then scored on ``truth_images`` held-out training images that no
   reward sees. Never the validation split: what this study finds may be used to choose settings.
4. Spearman's rank correlation of each reward with the truth (a bootstrap interval over the
   sub-networks), the truth lost by trusting each reward's best, and the ceiling: the fine-tuned models
   scored on the reward's own images (no reward on those images can rank better than that, apart from
   chance).

Resumable: each sub-network's numbers are appended to WORKDIR/rows.json as they are measured, and the
dense weights are kept per epoch; the same command skips what is done. The committed result file
(``--json DIR/fidelity.json``) is rendered by `markdown` into ``fidelity.md`` by
``python -m tfprune.studies.results_pages``.

    python -m tfprune.studies.reward_fidelity --config configs/compare_fashion_mnv2_tight.gin \\
        --workdir runs/fidelity --json docs/results/reward_fidelity/fidelity.json
"""

import argparse
import json
import os
import sys
import time

import numpy as np

TITLE = "# Reward fidelity: "
JSON = "fidelity.json"  # the study's committed result file
MARKDOWN = "fidelity.md"  # the page results_pages renders from it
ROWS = "rows.json"  # in the workdir: every measured sub-network, appended as it is measured
PROXIES = {  # name: what it is (the page's legend); every one scored on the reward's held-out images
    "episode": "one agent episode's reward: the current weights, the sub-network's own batch statistics, "
               "`JointPruner.episode_images` of the held-out images (mean over draws of that many)",
    "held_out": "the same on every held-out image (the finalists' rescoring)",
    "moving_bn": "every held-out image, the full network's BatchNorm averages (`JointPruner.reward_bn = 'moving'`)",
    "refit_head": "every held-out image, each sub-network's classifier refitted (`SubnetScorer.reward_head = 'refit'`)",
    "short_finetune": "the sub-network cut and fine-tuned for the first `short_steps` steps of the truth's "
                      "fine-tuning, then scored with its own batch statistics",
    "ceiling": "the truth's fine-tuned model scored on the held-out images instead of the truth's images",
}


# ------------------------------------------------------------------------------------- the study

def run_study(workdir, *, seed=0, subnets=32, truth_images=2048, episode_draws=8, short_steps=20, stages=None,
              log=print):
    """Measures every stage's sub-networks (resuming from ``workdir``); returns the study (its ``rows``,
    ``reward_images`` and ``episode_images``)."""
    from tfprune.infra import determinism

    settings = run_settings()
    if settings["deterministic"]:
        determinism.enable()
    study = _Study(workdir, settings, seed, truth_images, log)
    stages = stages or (settings["warmup_epochs"], settings["epochs"])
    study.train_dense(stages)
    for epoch in stages:
        study.measure(epoch, subnets, episode_draws, short_steps)
    return study


def run_settings():
    """The config's schedule, as `tfprune.training.trainer.run` will read it (`run_header.setting`)."""
    from tfprune.cli.run_header import setting

    names = ("model_name", "width_multiplier", "epochs", "warmup_epochs", "finetune_epochs",
             "finetune_learning_rate", "deterministic")
    return {name: setting("run", name) for name in names}


class _Study:
    """One config, one seed: the dense model, its data and the rows measured so far."""

    def __init__(self, workdir, settings, seed, truth_images, log):
        import gin
        import tensorflow as tf

        from tfprune.cli.run_header import setting
        from tfprune.data import build_datasets
        from tfprune.pruning.pruner import JointPruner
        from tfprune.training.start import build_run_model, seed_everything

        os.makedirs(workdir, exist_ok=True)
        self.workdir, self.settings, self.seed, self.log = workdir, settings, int(seed), log
        seed_everything(seed)
        self.reward_images = setting("build_datasets", "held_out_examples")
        self.data = build_datasets(seed=seed, held_out_examples=self.reward_images + truth_images)
        self.reward_set, self.truth_set = _split_held_out(self.data.held_out, self.reward_images, seed)
        self.strategy = tf.distribute.get_strategy()
        self.model = build_run_model(self.strategy, settings["model_name"], self.data.info,
                                     settings["width_multiplier"])
        # the agent's own reward object, its budget and importance; "uniform": no agent to build
        self.pruner = JointPruner(self.model, self.reward_set, max_epochs=settings["epochs"],
                                  warmup_epochs=settings["warmup_epochs"], seed=seed, policy="uniform")
        self.episode_images = int(self.pruner.episode_images or self.reward_images)
        self.profile = _profile()
        self.rows = _read_rows(os.path.join(workdir, ROWS))
        self.config = gin.config_str()

    def weights_path(self, epoch):
        return os.path.join(self.workdir, f"dense_epoch{epoch}.weights.h5")

    def train_dense(self, stages):
        """Trains the gated model with every gate open for the joint epochs, keeping the weights after each
        epoch in ``stages``; skipped when every stage's weights are already kept."""
        from tfprune.training.weight_trainer import WeightTrainer, make_optimizer

        if all(os.path.exists(self.weights_path(e)) for e in stages):
            return
        data, epochs = self.data, self.settings["epochs"]
        with self.strategy.scope():
            optimizer = make_optimizer(total_steps=epochs * data.steps_per_epoch)
        trainer = WeightTrainer(self.strategy, self.model, optimizer, data.batch_size)
        if 0 in stages:
            self.model.save_weights(self.weights_path(0))
        for epoch in range(max(stages)):
            stats = trainer.train_epoch(data.train_epoch(epoch), data.steps_per_epoch, f"dense {epoch + 1}/{epochs}")
            self.log(f"dense epoch {epoch + 1}/{epochs}: loss {stats['loss']:.4f} train acc {stats['accuracy']:.4f}")
            if epoch + 1 in stages:
                self.model.save_weights(self.weights_path(epoch + 1))

    def measure(self, epoch, subnets, episode_draws, short_steps):
        """Every sub-network of stage ``epoch`` not measured yet: the masked rewards of all of them in
        batched passes, then each one's cut, fine-tuning and truth."""
        self.model.load_weights(self.weights_path(epoch))
        done = {row["name"] for row in self.rows if row["epoch"] == epoch}
        todo = [c for c in self.candidates(epoch, subnets) if c["name"] not in done]
        if not todo:
            return
        masked = self.masked_rewards([c["masks"] for c in todo], episode_draws, epoch)
        for i, candidate in enumerate(todo):
            t0 = time.time()
            tuned = self.finetuned(candidate["masks"], short_steps)
            row = {"epoch": epoch, "name": candidate["name"], "family": candidate["family"],
                   "flops_ratio": candidate["flops_ratio"], "kept": candidate["kept"],
                   **{k: np.asarray(v[i]).tolist() for k, v in masked.items()}, **tuned,
                   "seconds": time.time() - t0}
            self.rows.append(row)
            _write_rows(os.path.join(self.workdir, ROWS), self.rows)
            self.log(f"epoch {epoch} {candidate['name']} (FLOPs {candidate['flops_ratio']:.3f}): episode "
                     f"{np.mean(row['episode']):.4f} held-out "
                     f"{row['held_out']:.4f} short {row['short_finetune']:.4f} truth {row['truth']:.4f}")

    def candidates(self, epoch, subnets):
        """The stage's sub-networks (`candidate_ratios`), each projected onto the budget with today's
        importance; duplicates (the same kept counts) dropped."""
        from tfprune.cost.budget import global_magnitude_ratios
        from tfprune.structure.masks import kept_counts

        budget = self.pruner.budget
        importance = budget.importance()
        ratios = candidate_ratios(len(self.pruner.group_names), budget.max_ratio, subnets, self.profile,
                                  np.random.default_rng(self.seed * 1000 + epoch))
        ratios.insert(1, ("global_magnitude", "rule", global_magnitude_ratios(importance, budget)))
        out, seen = [], set()
        for name, family, r in ratios:
            masks, achieved = budget.masks(np.asarray(r, np.float64), importance)
            kept = {group: count for group, (count, _) in kept_counts(masks).items()}
            key = tuple(kept[g] for g in self.pruner.group_names)
            if key not in seen:
                seen.add(key)
                out.append({"name": name, "family": family, "masks": masks, "kept": kept,
                            "flops_ratio": float(achieved)})
        return out

    def masked_rewards(self, mask_sets, draws, epoch):
        """{proxy: [N] (the episode reward: [N, draws])} of the rewards read off the gated model with each
        sub-network's masks."""
        from tfprune.search.scoring import SubnetScorer

        scorer, graph = self.pruner.scorer, self.pruner.graph
        n = len(scorer.labels)
        rng = np.random.default_rng(self.seed * 7919 + epoch)
        episodes = [scorer.score_many(mask_sets, np.sort(rng.choice(n, self.episode_images, replace=False)))
                    for _ in range(draws)]
        moving = SubnetScorer(self.model, graph, self.reward_set, reward_bn="moving", batch_size=scorer.batch_size)
        refit = SubnetScorer(self.model, graph, self.reward_set, batch_size=scorer.batch_size, reward_head="refit")
        return {"episode": np.stack(episodes, axis=1), "held_out": scorer.score_many(mask_sets),
                "moving_bn": moving.score_many(mask_sets), "refit_head": refit.score_many(mask_sets)}

    def finetuned(self, masks, short_steps):
        """{short_finetune, truth, ceiling} of one sub-network: cut, BatchNorm recalibrated and fine-tuned
        as `tfprune.training.finetune` does (the data epochs after the joint phase's), scored after its
        first ``short_steps`` steps and at the end."""
        from tfprune.structure.surgery import compact_model
        from tfprune.training.weight_trainer import WeightTrainer, make_optimizer

        data, s = self.data, self.settings
        epochs, steps = int(s["finetune_epochs"]), data.steps_per_epoch
        with self.strategy.scope():
            compact = compact_model(self.model, masks)
            optimizer = make_optimizer(total_steps=max(1, epochs * steps), learning_rate=s["finetune_learning_rate"])
        trainer = WeightTrainer(self.strategy, compact, optimizer, data.batch_size)
        first = s["epochs"] + 1  # as `run` hands `finetune` its first data epoch
        trainer.recalibrate_batchnorm(data.train_epoch(s["epochs"]))
        short = min(short_steps, steps)
        trainer.train_epoch(data.train_epoch(first).take(short), short, "short fine-tune")
        out = {"short_finetune": _batch_statistics_accuracy(compact, self.reward_set)}
        trainer.train_epoch(data.train_epoch(first), steps, "fine-tune 1", start_step=short)
        for e in range(1, epochs):
            trainer.train_epoch(data.train_epoch(first + e), steps, f"fine-tune {e + 1}")
        out["truth"] = _accuracy(trainer, self.truth_set, data.batch_size)
        out["ceiling"] = _accuracy(trainer, self.reward_set, data.batch_size)
        return out


def candidate_ratios(num_groups, max_ratio, subnets, profile, rng):
    """[(name, family, per-group ratios)]: uniform, the profile and its mirror (when the config has one),
    then random vectors up to ``subnets`` in all: alternately "wide" (each ratio uniform over
    [0, max_ratio]) and "local" (uniform's plus a normal step of 0.1 x max_ratio, the agent's starting
    exploration), before the budget's projection shifts them onto it together."""
    out = [("uniform", "rule", np.zeros(num_groups))]
    if profile is not None:
        profile = np.asarray(profile, np.float64)
        out += [("profile", "rule", profile), ("profile_mirror", "rule", profile.max() - profile)]
    for i in range(max(0, subnets - len(out) - 1)):  # - 1: global magnitude, added from today's weights
        if i % 2 == 0:
            out.append((f"wide_{i // 2}", "wide", rng.uniform(0.0, max_ratio, num_groups)))
        else:
            out.append((f"local_{i // 2}", "local",
                        np.clip(rng.normal(0.0, 0.1 * max_ratio, num_groups), 0.0, max_ratio)))
    return out


def _profile():
    """The config's `FixedPolicy.profile` (None when it has none)."""
    import gin

    try:
        return gin.query_parameter("FixedPolicy.profile")
    except ValueError:
        return None


def _split_held_out(held_out, reward_images, seed):
    """The held-out images split at random into the reward's ``reward_images`` and the truth's rest."""
    from tfprune.search.scoring import as_arrays

    images, labels = as_arrays(held_out)
    order = np.random.default_rng(seed).permutation(len(labels))
    reward, truth = order[:reward_images], order[reward_images:]
    if len(truth) == 0:
        raise ValueError("reward_fidelity: no held-out image is left for the truth; raise truth_images.")
    return (images[reward], labels[reward]), (images[truth], labels[truth])


def _accuracy(trainer, arrays, batch_size):
    import tensorflow as tf

    return trainer.evaluate(tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size))


def _batch_statistics_accuracy(model, arrays, batch_size=256):
    """Accuracy with BatchNorm on each batch's own statistics (as the masked rewards score), without
    moving the model's averages: the short fine-tuning's averages still hold much of the full network's."""
    import tensorflow as tf

    from tfprune.metrics import count_correct

    moving = [v for layer in model.layers for v in getattr(layer, "non_trainable_variables", [])]
    saved = [v.numpy() for v in moving]
    images, labels = arrays
    correct = sum(float(count_correct(model(tf.constant(images[i:i + batch_size]), training=True),
                                      tf.constant(labels[i:i + batch_size])))
                  for i in range(0, len(labels), batch_size))
    for v, value in zip(moving, saved):
        v.assign(value)
    return correct / len(labels)


def _read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def _write_rows(path, rows):
    from tfprune.infra.safe_write import write_json

    write_json(path, rows)


# -------------------------------------------------------------------------------- the statistics

def spearman(x, y):
    """Spearman's rank correlation (ties get their mean rank)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def bootstrap_interval(x, y, resamples=2000, confidence=0.95, seed=0):
    """The percentile bootstrap interval of `spearman` over resampled sub-networks; ``x`` [N] or
    [draws, N] (then of the mean over draws)."""
    x, y = np.atleast_2d(np.asarray(x, np.float64)), np.asarray(y, np.float64)
    rng = np.random.default_rng(seed)
    samples = (rng.integers(0, len(y), len(y)) for _ in range(resamples))
    values = [np.mean([spearman(row[i], y[i]) for row in x]) for i in samples]
    values = np.asarray([v for v in values if np.isfinite(v)])
    tail = (1 - confidence) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def regret(proxy, truth):
    """The truth given up by keeping the proxy's best sub-network instead of the truly best (pp)."""
    proxy, truth = np.asarray(proxy), np.asarray(truth)
    return 100.0 * float(truth.max() - truth[int(np.argmax(proxy))])


def draws(rows, proxy):
    """[draws, N]: a proxy's values over the rows, one line per independent draw (the episode reward has
    several, each one episode's subset of images; the others one)."""
    return np.asarray([np.atleast_1d(r[proxy]) for r in rows], np.float64).T


def stage_stats(rows):
    """{proxy: {rho, low, high, regret}} of one stage's rows against their truth; a proxy with several
    draws gets the mean over draws of each (what one draw, one agent step's reward, is worth on average)."""
    truth = np.asarray([r["truth"] for r in rows])
    out = {}
    for proxy in PROXIES:
        values = draws(rows, proxy)
        rho = float(np.mean([spearman(v, truth) for v in values]))
        low, high = bootstrap_interval(values, truth)
        out[proxy] = {"rho": rho, "low": low, "high": high,
                      "regret": float(np.mean([regret(v, truth) for v in values]))}
    return out


# ----------------------------------------------------------------------------------------- the page

def markdown(results):
    """The page of a committed fidelity.json: command, commit and machine, then per stage the proxies'
    rank correlations with the truth and the sub-networks' spread."""
    lines = [f"{TITLE}{', '.join(results['config_files'])}", "", f"Command: `{results['command']}`", "",
             results["provenance"], "", _settings_line(results), ""]
    for epoch in sorted({r["epoch"] for r in results["rows"]}):
        lines += _stage_section(epoch, [r for r in results["rows"] if r["epoch"] == epoch], results)
    lines += ["## The rewards", ""] + [f"- `{name}`: {text}." for name, text in PROXIES.items()] + [""]
    return "\n".join(lines)


def _settings_line(results):
    s = results["settings"]
    return (f"Seed {results['seed']}; {s['model_name']} (width {s['width_multiplier']}), dense for {s['epochs']} "
            f"epochs (warm-up {s['warmup_epochs']}); truth: {s['finetune_epochs']} fine-tuning epochs at learning "
            f"rate {s['finetune_learning_rate']}, scored on {results['truth_images']} held-out training images; "
            f"rewards on {results['reward_images']} others (episodes of {results['episode_images']}, "
            f"{results['episode_draws']} draws); short fine-tuning {results['short_steps']} steps.")


def _stage_section(epoch, rows, results):
    stats = stage_stats(rows)
    truth = np.array([r["truth"] for r in rows])
    schedule = results["settings"]
    which = {schedule["warmup_epochs"]: "the warm-up", schedule["epochs"]: "the last joint epoch"}.get(epoch, "epoch")
    lines = [f"## Weights after {which} (epoch {epoch}): {len(rows)} sub-networks", "",
             f"Truth: {100 * truth.min():.2f} to {100 * truth.max():.2f}% (median {100 * np.median(truth):.2f}%); "
             f"FLOPs ratios {min(r['flops_ratio'] for r in rows):.3f} to {max(r['flops_ratio'] for r in rows):.3f}.",
             "", "| reward | Spearman ρ with the truth | 95% interval | truth lost by its best (pp) |",
             "|---|---|---|---|"]
    lines += [f"| `{p}` | {s['rho']:+.3f} | {s['low']:+.3f} .. {s['high']:+.3f} | {s['regret']:.2f} |"
              for p, s in stats.items()]
    lines += ["", "| sub-network | family | FLOPs | episode (mean of draws) | held-out | short fine-tune | truth | "
              "truth rank |",
              "|---|---|---|---|---|---|---|---|"]
    rank = {id(r): i + 1 for i, r in enumerate(sorted(rows, key=lambda r: -r["truth"]))}
    for r in sorted(rows, key=lambda r: -r["truth"]):
        lines.append(f"| {r['name']} | {r['family']} | {r['flops_ratio']:.3f} | {100 * np.mean(r['episode']):.2f} | "
                     f"{100 * r['held_out']:.2f} | {100 * r['short_finetune']:.2f} | {100 * r['truth']:.2f} | "
                     f"{rank[id(r)]} |")
    return lines + [""]


# ------------------------------------------------------------------------------------ the command

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfprune.studies.reward_fidelity",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", required=True,
                        help="gin config file or shipped name (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="extra gin binding (repeatable)")
    parser.add_argument("--workdir", required=True, help="the study's folder (resumes from it)")
    parser.add_argument("--json", help="write the result file here (e.g. docs/results/reward_fidelity/fidelity.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subnets", type=int, default=32, help="sub-networks per stage (>= 30 for the issue)")
    parser.add_argument("--truth_images", type=int, default=2048, help="held-out training images of the truth")
    parser.add_argument("--episode_draws", type=int, default=8,
                        help="episode-sized subsets of the held-out images, each one draw of the episode reward")
    parser.add_argument("--short_steps", type=int, default=20, help="steps of the short fine-tuning reward")
    parser.add_argument("--stages", help="comma-separated dense epochs to measure at (default: warm-up end, last)")
    return parser.parse_args(argv)


def main(argv=None):
    from tfprune.cli.commands import parse_gin
    from tfprune.studies.compare import command_line, this_provenance

    args = parse_args(argv)
    parse_gin(args.config, args.gin_param)
    stages = tuple(int(s) for s in args.stages.split(",")) if args.stages else None
    study = run_study(args.workdir, seed=args.seed, subnets=args.subnets, truth_images=args.truth_images,
                     episode_draws=args.episode_draws, short_steps=args.short_steps, stages=stages)
    if args.json:
        argv = sys.argv[1:] if argv is None else argv
        results = {"config_files": args.config, "provenance": this_provenance(), "seed": args.seed,
                   "command": command_line(["python", "-m", "tfprune.studies.reward_fidelity", *argv]),
                   "settings": run_settings(), "truth_images": args.truth_images,
                   "reward_images": study.reward_images, "episode_images": study.episode_images,
                   "episode_draws": args.episode_draws, "short_steps": args.short_steps, "rows": study.rows,
                   "config": study.config}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(markdown(results))


if __name__ == "__main__":
    main()
