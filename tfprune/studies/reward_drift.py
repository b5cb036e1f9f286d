"""The reward's drift and whether the dynamics model predicts it, from a study's committed run histories.

The paper's dynamics model exists because the reward moves while the weights train: a sub-network scored
at epoch 4 is not the same sub-network at epoch 8. Two questions decide whether that piece earns its cost
(issue 36), and both are answered from the histories a study commits (``histories/<method>_seed<N>.json``,
copies of the runs' history.json), so the page is regenerated with the study's other tables:

1. **How far does the reward of a fixed sub-network move?** A run with a fixed structure (uniform, a
   hand-made profile) scores the same sub-network at every agent step, so its reward sequence *is* the
   drift: no search noise in it.
2. **Does the dynamics model forecast the rewards?** Each agent step, before the model sees that step's
   rewards, it predicts them (``dynamics_forecast_mse``: the mean squared error over the step's episodes).
   Two constant forecasts that need no model set the bar: *persistence*, the previous step's mean reward
   (its error is the step's reward variance plus the squared change of the mean), and the *step mean*, this
   step's own mean reward (its error is the variance alone; no constant does better, so a forecast below it
   tells which sub-networks score higher).
"""

import glob
import json
import math
import os
import statistics

TITLE = "# Reward drift and the dynamics model's forecast: "
HISTORIES = "histories"  # a study's folder of <method>_seed<N>.json, copies of its runs' history.json


def histories(folder):
    """{"<method>_seed<N>": history list} of the JSON files under ``folder/HISTORIES``, in name order (what
    this page and `results_pages.trajectory` read)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, HISTORIES, "*.json"))):
        with open(path) as f:
            out[os.path.splitext(os.path.basename(path))[0]] = json.load(f)
    return out


def is_fixed(history):
    """True when every agent step scored one sub-network (a fixed structure: no spread of rewards)."""
    return bool(history) and all(entry.get("reward_std", 0.0) == 0.0 and entry.get("episodes", 1) <= 1
                                 for entry in history)


def drift(history):
    """A fixed structure's rewards: {rewards, change: last - first, mean_step: mean |step-to-step change|}."""
    rewards = [entry["reward_mean"] for entry in history]
    steps = [abs(b - a) for a, b in zip(rewards, rewards[1:])]
    return {"rewards": rewards, "change": rewards[-1] - rewards[0],
            "mean_step": sum(steps) / len(steps) if steps else float("nan")}


def forecast_errors(history):
    """Per agent step after the first (the model has seen one before it forecasts): the dynamics model's
    forecast MSE and the two constant forecasts' errors; None for a run without forecasts."""
    rows = []
    for before, entry in zip(history, history[1:]):
        forecast = entry.get("dynamics_forecast_mse")
        if forecast is None or not math.isfinite(forecast):
            continue
        variance = entry.get("reward_std", 0.0) ** 2
        rows.append({"epoch": entry["epoch"], "forecast": forecast,
                     "persistence": variance + (entry["reward_mean"] - before["reward_mean"]) ** 2,
                     "step_mean": variance})
    return rows or None


def markdown(folder):
    """The page, or None when ``folder`` has no history with a fixed structure or a forecast."""
    runs = histories(folder)
    fixed = {name: drift(h) for name, h in runs.items() if is_fixed(h)}
    forecasts = {name: rows for name, h in runs.items() if not is_fixed(h)
                 for rows in [forecast_errors(h)] if rows}
    if not fixed and not forecasts:
        return None
    lines = [TITLE + os.path.basename(folder), "",
             "Generated from `histories/<method>_seed<N>.json` (copies of the runs' history.json) by "
             "`python -m tfprune.studies.results_pages`; rewards are held-out training accuracies (%). "
             "`tfprune/studies/reward_drift.py` says what each column means.", ""]
    if fixed:
        lines += ["## How far a fixed sub-network's reward moves", "",
                  "Each agent step's reward of the run's one sub-network (its structure never changes).", "",
                  "| run | rewards by agent step | last - first (pp) | mean step change (pp) |", "|---|---|---|---|"]
        lines += [f"| {name} | {' / '.join(f'{100 * r:.1f}' for r in d['rewards'])} | {100 * d['change']:+.1f} | "
                  f"{100 * d['mean_step']:.1f} |" for name, d in fixed.items()]
        lines.append("")
    if forecasts:
        lines += ["## Does the dynamics model forecast the rewards?", "",
                  "Mean squared error (pp², over each agent step's episodes, then over the run's steps after the "
                  "first) of the dynamics model's forecast made before it saw the step's rewards, against "
                  "persistence (the previous step's mean reward) and the step's own mean reward (the best "
                  "constant). Below the step mean: the model tells which sub-networks score higher.", "",
                  "| run | steps | dynamics forecast | persistence | step mean | forecast / persistence |",
                  "|---|---|---|---|---|---|"]
        for name, rows in forecasts.items():
            f, p, s = (statistics.fmean(1e4 * r[k] for r in rows) for k in ("forecast", "persistence", "step_mean"))
            lines.append(f"| {name} | {len(rows)} | {f:.1f} | {p:.1f} | {s:.1f} | {f / p:.2f} |")
        lines.append("")
    return "\n".join(lines)
