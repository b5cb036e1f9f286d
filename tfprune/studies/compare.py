"""Method comparison behind ``tools/compare.py``: the agent vs baselines at one budget, as tables.

Each (method, seed) is one training run (`python -m tfprune train` in a subprocess,
`tfprune.studies.runs.train_command`: a fresh gin config and fresh TensorFlow state every time) in
``WORKDIR/<method>/seed<seed>``, with the config's bindings, any extra bindings (for every method), the
method's bindings (`METHODS`) and ``run.seed = <seed>``, in that order (gin keeps the last binding of a
parameter, so a method stays what it says). A run whose workdir already holds summary.json is not run
again (re-running resumes; an interrupted run resumes from its own checkpoints)::

    from tfprune.studies.compare import run_comparison, write_tables

    result = run_comparison(["configs/compare_digits.gin"], ["agent", "uniform"], [0, 1], "runs/cmp")
    write_tables(result.rows, ["agent", "uniform"], [0, 1], "runs/cmp", ["configs/compare_digits.gin"])

It lives in the library so that the runs, the table rows and the tables are reachable from Python (a
notebook can re-tabulate finished runs, or plot its own figure from the rows); `main(argv)` is the
command line (`tools/compare.py` only calls it).
"""

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import NamedTuple

from tfprune.infra import workdir as files
from tfprune.infra.environment import cpu_model, environment_id, source_commit
from tfprune.errors import TfpruneError
from tfprune.studies.runs import train_command

DESCRIPTION = "Compare the joint agent-guided pruning with baselines at the same training budget and FLOPs target."
SECONDS = "seconds.txt"  # a run's wall time, written beside its files (files.LOG is the comparison's too)

# Every method keeps the schedule (epochs, warm-up, fine-tuning, budget projection, channel importance)
# of the config: only what the bindings name differs.
METHODS = {
    "agent": [],
    "uniform": ['JointPruner.policy = "uniform"', "FixedPolicy.profile = None"],
    "profile": ["JointPruner.policy = @FixedPolicy", 'FixedPolicy.kind = "profile"'],
    "l1": ['JointPruner.policy = "uniform"', "FixedPolicy.profile = None", "JointPruner.alignment_strength = 0.0"],
    "random": ['JointPruner.policy = "random"'],
    "no_dynamics": ["JointPruner.use_dynamics = False"],
    "no_alignment": ["JointPruner.alignment_strength = 0.0"],
    "global_magnitude": ['JointPruner.policy = "global_magnitude"'],
    "unpruned": ['JointPruner.policy = "uniform"', "FixedPolicy.profile = None", "JointPruner.target_flops_ratio = 1.0",
                 "JointPruner.alignment_strength = 0.0"],
    "bandit": ['JointPruner.agent_mode = "bandit"', 'JointPruner.target_rule = "best_episode"'],
}
# A structure trained from scratch: the widths of another method's run of the same seed in the same workdir
# (run that method first), freshly initialised (`tfprune.training.scratch`); `run_command` adds the path.
# The uniform bindings only keep the unused pruner cheap (no agent is built).
SCRATCH = "scratch_"
SCRATCH_OF = ("uniform", "profile", "global_magnitude", "agent", "bandit")
METHODS.update({SCRATCH + base: METHODS["uniform"] for base in SCRATCH_OF})
DESCRIPTIONS = {
    "agent": "the method: layer-wise (episodic) PPO agent + dynamics model + alignment",
    "uniform": "same ratio in every group, L1-importance channels, alignment toward that mask",
    "profile": "the config's hand-made structure (its FixedPolicy.profile ratio offsets, shifted onto the budget), "
               "held fixed like uniform's",
    "l1": "L1-norm filter pruning of the trained model with uniform ratios + fine-tuning (Li et al. 2017)",
    "random": "one random ratio per group (drawn once), L1-importance channels, alignment",
    "no_dynamics": "agent without the dynamics model's epoch representation",
    "no_alignment": "agent + dynamics model, no alignment regulariser",
    "global_magnitude": "one global threshold on mean-normalised channel importance at the FLOPs target, alignment",
    "unpruned": "the same schedule without pruning (FLOPs target 1.0, no alignment): the accuracy ceiling",
    "bandit": "the previous agent: one-step PPO bandit over the whole ratio vector, best-episode alignment target",
}
DESCRIPTIONS.update({SCRATCH + base: f"the final widths of {base}'s run of the same seed, trained from a fresh "
                     "initialisation for the joint + fine-tuning epochs, no alignment (`run.scratch_structure = "
                     f"WORKDIR/{base}/seed<N>/masks.json`)" for base in SCRATCH_OF})
COLUMNS = ["method", "seed", "flops_ratio", "params_pruned", "params_full", "val_acc_full", "val_acc_masked",
           "val_acc_pruned", "held_out_acc_pruned", "latency_float_ms", "final_reward", "seconds", "environment", "kept"]
METRICS = ["flops_ratio", "params_pruned", "val_acc_full", "val_acc_masked", "val_acc_pruned", "held_out_acc_pruned",
           "latency_float_ms"]
HEADERS = {"method": "method", "seed": "seed", "flops_ratio": "FLOPs ratio", "params_pruned": "params",
           "params_full": "params (full)", "val_acc_full": "val acc full model (%)",
           "val_acc_masked": "val acc pruned, before fine-tune (%)",
           "val_acc_pruned": "val acc pruned, after fine-tune (%)",
           "held_out_acc_pruned": "held-out train acc pruned, after fine-tune (%)", "latency_float_ms": "TFLite float latency (ms)",
           "final_reward": "last held-out reward (%)", "seconds": "wall (s)",
           "environment": "environment", "kept": "kept channels per group"}


TITLE, COMMAND = "# Method comparison: ", "Command: "  # a table's first lines (results_pages reads them back)


class ComparisonResult(NamedTuple):
    """What `run_comparison` returns (unpacks as ``rows, failed = ...``)."""

    rows: list  # one dict per finished run (keys `COLUMNS`), in method then seed order
    failed: list  # (method, seed) of each failed run; its log is WORKDIR/<method>/seed<seed>/log.txt


class ComparisonError(TfpruneError, ValueError):
    """A comparison asked for something that does not exist (an unknown method)."""


# ------------------------------------------------------------------------------------------- runs


def run_comparison(config_files, methods, seeds, workdir, bindings=(), keep_going=False, only_finished=False):
    """Runs (or resumes) every (method, seed) in ``workdir``; returns a `ComparisonResult` (rows, failed).

    Seeds are the outer loop, so a first comparison of every method is complete before the second seed
    starts. Without ``keep_going`` the first failed run stops the comparison; the rows finished so far
    are still returned. ``only_finished`` starts nothing: the rows of the finished runs, the others left
    out (a study whose methods ran on different seeds, or one tabulated while its runs go on).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ComparisonError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    os.makedirs(workdir, exist_ok=True)
    rows, failed = [], []
    total = len(methods) * len(seeds)
    start = time.time()
    for seed in seeds:
        for method in methods:
            if only_finished and not os.path.exists(os.path.join(workdir, method, f"seed{seed}", files.SUMMARY)):
                continue
            print(f"=== {len(rows) + len(failed) + 1}/{total}: {method}, seed {seed} "
                  f"({time.time() - start:.0f} s elapsed) ===", flush=True)
            summary, seconds = run_one(method, seed, config_files, workdir, bindings)
            if summary is None:
                failed.append((method, seed))
                if not keep_going:
                    break
                continue
            rows.append(row_of(method, seed, summary, seconds, workdir))
        if failed and not keep_going:
            break
    order = {m: i for i, m in enumerate(methods)}
    rows.sort(key=lambda r: (order[r["method"]], r["seed"]))
    return ComparisonResult(rows, failed)


def run_command(method, seed, config_files, run_dir, bindings=()):
    """The training command of one method/seed. The extra ``bindings`` (the user's, for every run) come
    before the method's own and the seed: gin keeps the last binding of a parameter, so a method stays
    what it says (``--gin_bindings 'JointPruner.target_flops_ratio = 0.3'`` sets the budget of every
    pruning method, and "unpruned" still keeps the whole network)."""
    return train_command(run_dir, config_files, list(bindings) + METHODS[method] + _structure(method, seed, run_dir)
                         + [f"run.seed = {seed}"])


def _structure(method, seed, run_dir):
    """A scratch method's binding to its structure: the masks.json of the base method's run beside it."""
    if not method.startswith(SCRATCH):
        return []
    workdir = os.path.dirname(os.path.dirname(os.path.abspath(run_dir)))
    return [f'run.scratch_structure = "{os.path.join(workdir, method[len(SCRATCH):], f"seed{seed}", files.MASKS)}"']


def run_one(method, seed, config_files, workdir, bindings=()):
    """Runs (or skips, when complete) one method/seed in a subprocess; returns (summary or None, seconds)."""
    run_dir = os.path.join(workdir, method, f"seed{seed}")
    cmd = run_command(method, seed, config_files, run_dir, bindings)
    return run_training(run_dir, cmd, f"{method} seed {seed}", DESCRIPTIONS[method])


def run_training(run_dir, cmd, label, description):
    """Runs (or skips, when ``run_dir`` holds summary.json) one training command ``cmd`` in a subprocess;
    returns (summary or None, seconds). Shared by the studies that start runs (compare, cost).

    The subprocess gives every run fresh gin and TensorFlow state; its output goes to the run's log.txt.
    """
    summary_path = os.path.join(run_dir, files.SUMMARY)
    if os.path.exists(summary_path):
        print(f"[{label}] done already ({summary_path}): skipped", flush=True)
        return _load(summary_path), _load_seconds(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, files.LOG)
    print(f"[{label}] running ({description}); log: {log_path}", flush=True)
    start = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
    seconds = time.time() - start
    if rc == 3 and os.path.exists(summary_path):  # finished, but its TFLite failed verification: the summary says so
        print(f"[{label}] finished with a TFLite export that failed verification (see {log_path}); its "
              "accuracies are tabulated", flush=True)
    elif rc != 0 or not os.path.exists(summary_path):
        print(f"[{label}] FAILED (exit status {rc}) after {seconds:.0f} s; last lines of {log_path}:", flush=True)
        print(_tail(log_path), flush=True)
        return None, seconds
    with open(os.path.join(run_dir, SECONDS), "w") as f:
        f.write(f"{seconds:.1f}\n")
    summary = _load(summary_path)
    print(f"[{label}] done in {seconds:.0f} s: FLOPs ratio {summary['flops_ratio']:.3f}, "
          f"val acc full {summary['val_accuracy_full_model']:.4f}, pruned {summary['val_accuracy_pruned']:.4f}",
          flush=True)
    return summary, seconds


def row_of(method, seed, summary, seconds, workdir):
    """The table row (keys `COLUMNS`) of one finished run, from its summary.json and history.json."""
    history_path = os.path.join(workdir, method, f"seed{seed}", files.HISTORY)
    final_reward = float("nan")
    if os.path.exists(history_path):
        history = _load(history_path)
        if history:
            final_reward = history[-1].get("reward_max", float("nan"))
    latency = (summary.get("tflite_latency_ms") or {}).get("float")
    return {
        "method": method,
        "seed": seed,
        "flops_ratio": summary["flops_ratio"],
        "params_pruned": int(summary["params_pruned"]),
        "params_full": int(summary["params_full"]),
        "val_acc_full": summary["val_accuracy_full_model"],
        "val_acc_masked": summary["val_accuracy_masked_before_finetune"],
        "val_acc_pruned": summary["val_accuracy_pruned"],
        "held_out_acc_pruned": summary.get("held_out_accuracy_pruned", float("nan")),  # absent before 2026-11-26
        "latency_float_ms": float("nan") if latency is None else latency,
        "final_reward": final_reward,
        "seconds": float("nan") if seconds is None else seconds,
        "environment": environment_id(summary.get("environment")),  # "-": a summary from before 2026-12-05
        "kept": kept_text(kept for kept, _ in (summary.get("kept_channels") or {}).values()),
    }


# ----------------------------------------------------------------------------------------- tables


def mean_std(values):
    """Mean and sample standard deviation, ignoring None and NaN (nan std for fewer than two values)."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _fmt(value, key):
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key.startswith(("val_acc", "held_out_acc")) or key == "final_reward":
        return f"{100 * value:.2f}"
    if key == "flops_ratio":
        return f"{value:.3f}"
    if key.startswith("params") or key == "seed":
        return f"{int(value)}"
    if key == "latency_float_ms":
        return f"{value:.4f}"
    return f"{value:.0f}"


def write_csv(rows, path):
    """One line per run, columns `COLUMNS`."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def kept_text(counts):
    """Kept channel counts per group, in the groups' order, as the tables write them ("7/21/12"; "-": none)."""
    return "/".join(str(count) for count in counts) or "-"


def read_csv(path):
    """The rows `write_csv` wrote, with their types back (numbers as numbers, "nan" as NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            if key not in ("method", "environment", "kept"):
                row[key] = int(value) if key in ("seed", "params_pruned", "params_full") else float(value)
    return rows


def markdown(rows, methods, seeds, config_files, command=None, provenance=None):
    """The comparison as markdown: the runs, mean ± std per method (several seeds), and the paired
    difference to `uniform` per seed. ``command`` is shown as the command that made it (default: this
    process's ``python tools/compare.py`` arguments), ``provenance`` as the commit and machine (default:
    this checkout's and this machine's; `tfprune.studies.results_pages` passes a committed table's own)."""
    if command is None:
        command = f"python tools/compare.py {command_line(sys.argv[1:])}"
    if provenance is None:
        provenance = this_provenance()
    lines = [f"{TITLE}{', '.join(config_files)}", ""]
    lines.append(f"{COMMAND}`{command}`")
    lines.append("")
    lines.append(provenance)
    lines.append("")
    lines.append("All methods share the config's epochs, warm-up, fine-tuning and FLOPs target; only the bindings "
                 "below differ. Accuracies are top-1 on the validation split (never trained on, never used for "
                 "selection). 'full model' is the jointly trained unpruned network of that run (it is trained "
                 "with the run's alignment, so it differs between methods). 'held-out train acc' is the fine-tuned pruned "
                 "model on the held-out training images (the agent's reward set, never trained on): the number to "
                 "choose settings on.")
    lines.append("")
    for m in methods:
        lines.append(f"- **{m}**: {DESCRIPTIONS[m]}" + (f" (`{'; '.join(METHODS[m])}`)" if METHODS[m] else ""))
    lines += ["", "## Runs", ""]
    lines.append("| " + " | ".join(HEADERS[c] for c in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[c], c) for c in COLUMNS) + " |")
    lines += _environment_note(rows)
    if len(seeds) > 1:
        lines += _mean_std_section(rows, methods, seeds)
    if len(methods) > 1:  # against uniform, or else the last method listed (an ablation: agent,no_dynamics)
        lines += _paired_section(rows, methods, seeds, "uniform" if "uniform" in methods else methods[-1])
    lines.append("")
    return "\n".join(lines)


def this_provenance():
    """The commit-and-machine line of a table made here: this checkout's commit, this machine's CPU and
    core count (the runs' own environments are in the tables' environment column)."""
    return f"Commit: {source_commit() or 'not a git checkout'}; machine: {cpu_model()}, {os.cpu_count()} CPUs."


def command_line(argv):
    """``argv`` as a shell line, each argument with spaces or shell-special characters quoted."""
    return " ".join(_quote(a) for a in argv)


def _environment_note(rows):
    """A warning when the runs come from more than one machine or stack (`tfprune.infra.environment`): a
    deterministic run repeats itself only on one, so a difference between such runs may be the machine's."""
    ids = sorted({r.get("environment", "-") for r in rows} - {"-"})
    if len(ids) < 2:
        return []
    return ["", f"**The runs come from {len(ids)} environments ({', '.join(ids)}: CPU, Python packages; each "
            "run's summary.json has the details).** A run repeats itself exactly only in one environment: "
            "compare runs whose environment agrees, or read differences between the others as including the "
            "machine's."]


def _mean_std_section(rows, methods, seeds):
    lines = ["", f"## Mean ± std over seeds {', '.join(map(str, seeds))}", ""]
    cols = ["method", "n"] + METRICS
    lines.append("| " + " | ".join(HEADERS.get(c, c) for c in cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        if not mine:
            continue
        cells = [m, str(len(mine))]
        for c in METRICS:
            mean, std = mean_std([r[c] for r in mine])
            cells.append(f"{_fmt(mean, c)} ± {_fmt(std, c)}" if not math.isnan(std) else _fmt(mean, c))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_section(rows, methods, seeds, baseline="uniform"):
    """Same seed = same data split, so the per-seed difference to ``baseline`` removes the split's noise;
    the interval is the paired t interval of the mean difference (95%)."""
    lines = ["", f"## Paired difference to `{baseline}` (same seed = same data split), val acc after fine-tune, "
             "percentage points", ""]
    lines.append("| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | 95% interval | median |")
    lines.append("|" + "---|" * (len(seeds) + 4))
    for m in methods:
        if m == baseline:
            continue
        diffs = paired_differences(rows, m, baseline, seeds)
        present = [d for d in diffs if d is not None]
        cells = [m] + [f"{d:+.2f}" if d is not None else "-" for d in diffs]
        mean, low, high = mean_interval(present)
        cells.append(f"{mean:+.2f}" if not math.isnan(mean) else "-")
        cells.append(f"{low:+.2f} .. {high:+.2f}" if not math.isnan(low) else "-")
        cells.append(f"{statistics.median(present):+.2f}" if present else "-")  # a collapsed run moves the mean only
        lines.append("| " + " | ".join(cells) + " |")
    if baseline == "uniform" and "profile" in methods and _mean_gain(rows, "profile", seeds) > 0:  # a gap
        lines += _recovery_section(rows, methods, seeds)
    return lines


def paired_differences(rows, method, baseline, seeds, key="val_acc_pruned", label="method"):
    """Per seed, ``method`` minus ``baseline`` in percentage points (None where either run is missing);
    ``label`` is the rows' key naming what ran (a cost study's rows say "pipeline")."""
    value = {(r[label], r["seed"]): r[key] for r in rows}
    return [100 * (value[(method, s)] - value[(baseline, s)]) if (method, s) in value and (baseline, s) in value
            else None for s in seeds]


def mean_interval(values, confidence=0.95):
    """Mean and Student-t interval of the mean (nan bounds for fewer than two values)."""
    from scipy import stats

    mean, std = mean_std(values)
    if math.isnan(std):
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * std / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _mean_gain(rows, method, seeds):
    """Mean paired difference to `uniform` over the seeds where both ran (pp; nan where none did)."""
    return mean_std([d for d in paired_differences(rows, method, "uniform", seeds) if d is not None])[0]


def _recovery_section(rows, methods, seeds):
    """With a known better structure ("profile", issue 36's positive control), each method's share of
    the profile's gap over uniform: mean paired gain over the profile's mean paired gain."""
    gap = _mean_gain(rows, "profile", seeds)
    lines = ["", f"## Share of the profile's gap over `uniform` ({gap:+.2f} pp) each method recovers", "",
             "| method | mean gain over uniform (pp) | share of the gap |", "|---|---|---|"]
    for m in methods:
        if m in ("uniform", "profile"):
            continue
        gain = _mean_gain(rows, m, seeds)
        share = gain / gap if gap and not math.isnan(gap) and not math.isnan(gain) else float("nan")
        lines.append(f"| {m} | {gain:+.2f} | " + ("-" if math.isnan(share) else f"{share:.2f}") + " |")
    return lines


def write_tables(rows, methods, seeds, workdir, config_files, command=None):
    """Writes WORKDIR/comparison.csv, comparison.md and accuracy_vs_flops.png; returns the markdown.

    A plot failure is a warning on stderr, never a lost table.
    """
    os.makedirs(workdir, exist_ok=True)
    write_csv(rows, os.path.join(workdir, "comparison.csv"))
    text = markdown(rows, methods, seeds, config_files, command)
    with open(os.path.join(workdir, "comparison.md"), "w") as f:
        f.write(text)
    try:
        from tfprune.training import plots

        plots.plot_accuracy_vs_flops(rows, os.path.join(workdir, "accuracy_vs_flops.png"))
    except Exception as e:  # plotting must never lose the table
        print(f"warning: accuracy-vs-FLOPs plot not written: {type(e).__name__}: {e}", file=sys.stderr)
    return text


# -------------------------------------------------------------------------------------- command line


def parse_args(argv=None):
    """Parses ``tools/compare.py``'s arguments; bad ones exit with status 2 (argparse's ``error``)."""
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", required=True, help="gin config file (repeatable)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from: {', '.join(METHODS)}")
    p.add_argument("--seeds", default="0", help="comma-separated integer seeds (run.seed)")
    p.add_argument("--workdir", default=None, help="default runs/compare_<config name>")
    p.add_argument("--gin_bindings", action="append", default=[],
                   help="extra binding for every run (repeatable), applied before each method's own")
    p.add_argument("--keep_going", action="store_true", help="run the remaining methods after a failure")
    p.add_argument("--only_finished", action="store_true",
                   help="start no run: tabulate the finished runs of these methods and seeds, leave out the others")
    args = p.parse_args(argv)
    args.methods = parse_names(p, args.methods, METHODS, "method")
    args.seeds = parse_seeds(p, args.seeds)
    for path in args.config:
        if not os.path.exists(path):
            p.error(f"config file {path!r} does not exist")
    if args.workdir is None:
        args.workdir = os.path.join("runs", "compare_" + os.path.splitext(os.path.basename(args.config[-1]))[0])
    return args


def parse_names(parser, text, allowed, what):
    """The comma-separated names of ``text``, each one of ``allowed``; else the parser's error (status 2)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        parser.error(f"unknown {what}(s) {unknown}; choose from {', '.join(allowed)}")
    return names


def parse_seeds(parser, text):
    """The comma-separated integer seeds of ``text``; else the parser's error (status 2)."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {text!r}")


def main(argv=None):
    """``tools/compare.py``: exit status 0 when every run finished, 1 when some failed, 2 on bad arguments."""
    args = parse_args(argv)
    start = time.time()
    result = run_comparison(args.config, args.methods, args.seeds, args.workdir, args.gin_bindings,
                            keep_going=args.keep_going, only_finished=args.only_finished)
    text = write_tables(result.rows, args.methods, args.seeds, args.workdir, args.config)
    print(text)
    print(f"Wrote {args.workdir}/comparison.md, comparison.csv, accuracy_vs_flops.png "
          f"({time.time() - start:.0f} s).")
    if result.failed:
        print(f"Failed: {', '.join(f'{m} seed {s}' for m, s in result.failed)}", file=sys.stderr)
        return 1
    return 0


def _load(path):
    with open(path) as f:
        return json.load(f)


def _load_seconds(run_dir):
    path = os.path.join(run_dir, SECONDS)
    if os.path.exists(path):
        with open(path) as f:
            return float(f.read().strip())
    return None


def _tail(path, n=15):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:])


def _quote(arg):
    return f"'{arg}'" if any(ch in arg for ch in " =\"(),;") else arg
