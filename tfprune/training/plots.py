"""PNG plots of a run and of a method comparison (matplotlib, Agg backend: no display needed).

* `plot_kept_channels(summary)`: channels per group, full vs kept (summary.json's `kept_channels`).
* `plot_rewards(history)`: held-out reward (mean / max / min of the sampled sub-networks) per agent step.
* `plot_dynamics_error(history)`: the dynamics model's reconstruction error (MSE of its predicted
  rewards, and its training loss) per agent step.
* `plot_accuracy_vs_flops(rows)`: validation accuracy of the pruned model vs FLOPs ratio per method
  (`tfprune.studies.compare`'s rows).
* `plot_group_shares(plan)`: each channel group's share of the FLOPs and params (`tfprune.cost.plan`'s
  `PruningPlan.to_dict()`), what `tfprune inspect --png` draws.
* `write_run_plots(workdir, summary, history)`: the first three into WORKDIR/plots/ (the trainer calls it).

`history` is `JointPruner.history` (a list of per-agent-step dicts; the trainer writes it to
WORKDIR/history.json). Baseline policies have NaN dynamics statistics: that plot is then skipped.
"""

import math
import os

from tfprune.infra.workdir import PLOTS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finite(values):
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plot_kept_channels(summary, path):
    """Bar chart of each group's full and kept channel counts; returns `path`."""
    kept = summary["kept_channels"]
    names = list(kept)
    if not names:
        raise ValueError("summary['kept_channels'] is empty: nothing to plot.")
    totals = [int(kept[n][1]) for n in names]
    kept_counts = [int(kept[n][0]) for n in names]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names) + 2), 4))
    xs = range(len(names))
    ax.bar(xs, totals, color="#c8c8c8", label="full")
    ax.bar(xs, kept_counts, color="#1f77b4", label="kept")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([n.replace("_gate", "") for n in names], rotation=75, fontsize=7)
    ax.set_ylabel("channels")
    title = f"{summary.get('model', '')} on {summary.get('dataset', '')}".strip()
    if "flops_ratio" in summary:
        title += f": {100 * summary['flops_ratio']:.1f}% of FLOPs kept"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _epochs(history):
    return [h.get("epoch", i) for i, h in enumerate(history)]


def plot_rewards(history, path):
    """Reward (held-out accuracy of the sampled sub-networks) mean / max / min per agent step."""
    if not history:
        raise ValueError("history is empty: no agent step ran.")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = _epochs(history)
    for key, style in (("reward_max", "-o"), ("reward_mean", "-s"), ("reward_min", ":")):
        ys = [h.get(key, float("nan")) for h in history]
        if _finite(ys):
            ax.plot(xs, ys, style, markersize=3, label=key.replace("reward_", ""))
    return _finish(fig, ax, path, "epoch", "held-out reward (accuracy)", "sub-network rewards per agent step")


def plot_dynamics_error(history, path):
    """Dynamics model: MSE of its reward forecast (before seeing the epoch's rewards), of its
    reconstruction (after training on them) and its training loss, per agent step (log y)."""
    xs = _epochs(history)
    forecast = [h.get("dynamics_forecast_mse", float("nan")) for h in history]
    mse = [h.get("dynamics_prediction_mse", float("nan")) for h in history]
    loss = [h.get("dynamics_loss", float("nan")) for h in history]
    if not _finite(mse) and not _finite(loss):
        raise ValueError("history has no dynamics-model statistics (a baseline policy has none).")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    if _finite(forecast):
        ax.plot(xs, forecast, "-^", markersize=3, label="reward forecast MSE (before training on this epoch)")
    if _finite(mse):
        ax.plot(xs, mse, "-o", markersize=3, label="reward reconstruction MSE (this epoch)")
    if _finite(loss):
        ax.plot(xs, loss, "-s", markersize=3, label="training loss")
    if all(v > 0 for v in _finite(forecast) + _finite(mse) + _finite(loss)):
        ax.set_yscale("log")
    return _finish(fig, ax, path, "epoch", "error", "dynamics model: forecast and reconstruction error")


def plot_accuracy_vs_flops(rows, path, accuracy_key="val_acc_pruned"):
    """Scatter of accuracy (after fine-tuning) vs FLOPs ratio, one colour per method, mean as a cross.

    `rows`: dicts with "method", "flops_ratio" and `accuracy_key` (tfprune.studies.compare's rows)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    _scatter_by(ax, rows, "method", "flops_ratio", accuracy_key)
    full = _finite([r.get("val_acc_full") for r in rows])
    if full:
        ax.axhline(100 * sum(full) / len(full), color="grey", ls="--", lw=1, label="full models (mean)")
    return _finish(fig, ax, path, "FLOPs ratio (pruned / full)", "val accuracy after fine-tuning (%)",
                   "accuracy vs FLOPs (x = mean over seeds)")


def plot_accuracy_vs_time(rows, path):
    """Scatter of accuracy after fine-tuning vs a pipeline's total wall time (tfprune.studies.cost's rows:
    "pipeline", "total_s", "val_acc_pruned"), one colour per pipeline, mean as a cross."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    _scatter_by(ax, [dict(r, total_min=r["total_s"] / 60) for r in rows], "pipeline", "total_min", "val_acc_pruned")
    return _finish(fig, ax, path, "total wall time (min)", "val accuracy after fine-tuning (%)",
                   "accuracy vs cost (x = mean over seeds)")


def _finish(fig, ax, path, xlabel, ylabel, title):
    """The axes' labels, title, legend and grid as every plot here sets them; saves the figure to ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _scatter_by(ax, rows, label_key, x_key, accuracy_key):
    """One colour per ``label_key`` value: every row as a dot, the mean of several as a cross."""
    if not rows:
        raise ValueError("no rows to plot.")
    colours = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for i, label in enumerate(dict.fromkeys(r[label_key] for r in rows)):
        mine = [r for r in rows if r[label_key] == label]
        xs = [r[x_key] for r in mine]
        ys = [100 * r[accuracy_key] for r in mine]
        colour = colours[i % len(colours)]
        ax.scatter(xs, ys, color=colour, alpha=0.6, s=25, label=label)
        if len(mine) > 1:
            ax.scatter([sum(xs) / len(xs)], [sum(ys) / len(ys)], color=colour, marker="x", s=80)


def write_run_plots(workdir, summary, history):
    """Writes WORKDIR/plots/{kept_channels,rewards,dynamics_error}.png (those that apply); returns paths."""
    out = os.path.join(workdir, PLOTS)
    paths = [plot_kept_channels(summary, os.path.join(out, "kept_channels.png"))]
    if history:
        paths.append(plot_rewards(history, os.path.join(out, "rewards.png")))
        if _finite([h.get("dynamics_prediction_mse", float("nan")) for h in history]):
            paths.append(plot_dynamics_error(history, os.path.join(out, "dynamics_error.png")))
    return paths


def plot_group_shares(plan, path):
    """Horizontal bars: FLOPs and params share of every prunable group of a `PruningPlan.to_dict()`."""
    plt = _pyplot()
    groups = plan["groups"]
    names = [g["name"] for g in groups]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * len(names) + 1.2)))
    y = list(range(len(names)))
    ax.barh([i - 0.2 for i in y], [100 * g["flops_share"] for g in groups], height=0.4, label="FLOPs share")
    ax.barh([i + 0.2 for i in y], [100 * g["params_share"] for g in groups], height=0.4, label="params share")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of the model's cost that scales with the group's channels")
    ax.set_title(f"{plan['model']}: {len(names)} channel groups, {len(plan['unpruned'])} barrier(s)")
    ax.legend(loc="lower right")
    return _save(fig, path)
