"""The cost study behind ``tfprune cost`` (issue 37): what a pruned model costs, the joint method against
training the unpruned network and against the classic pipeline that pays for a pretrained model first.

Pipelines (`PIPELINES`), each a training run of ``tfprune train`` on the same config and seed:

- ``unpruned``: the config's schedule without pruning (compare's "unpruned"): the cost of training once;
- ``agent``: the joint method (compare's "agent": agent steps, alignment, selection, fine-tuning);
- ``uniform``: uniform ratios with alignment (compare's "uniform");
- ``classic_ft1``: the classic pipeline: the unpruned network trained for the joint phase's epochs, one-shot
  L1 pruning (uniform ratios) to the same FLOPs at its end, fine-tuning (compare's "l1");
- ``classic_ft2`` / ``classic_ft4``: the same pretrained and pruned network (a copy of ``classic_ft1``'s
  selection: trained once, as a user of the classic pipeline would) fine-tuned 2x / 4x as long.

Every run records the wall seconds of its phases in summary.json (``phase_seconds``: setup, train, agent,
select, finetune, export; `tfprune.training.trainer.run`). A branch's pretraining phases are its base's (the
copied selection carries them), so each pipeline's total is what it costs end to end. Runs live in
``WORKDIR/<method>/seed<seed>`` (the classic base in ``l1/``, as compare names it); a finished run is not run
again. Seeds are the outer loop, so every pipeline sees the same load on a shared machine.
Writes WORKDIR/cost.csv (one row per run), cost.md (the tables) and accuracy_vs_time.png.
"""

import argparse
import csv
import math
import os
import shutil
import sys
import time

from tfprune.infra import workdir as files
from tfprune.infra.environment import environment_id
from tfprune.studies import compare
from tfprune.studies.runs import train_command

DESCRIPTION = "The cost of a pruned model: the joint method vs unpruned training and the classic pipeline."
# pipeline -> (compare method of its run, fine-tuning multiple of a branch of classic_ft1 or None)
PIPELINES = {
    "unpruned": ("unpruned", None),
    "agent": ("agent", None),
    "uniform": ("uniform", None),
    "classic_ft1": ("l1", None),
    "classic_ft2": ("l1", 2),
    "classic_ft4": ("l1", 4),
}
CLASSIC_BASE = "classic_ft1"
PHASES = ("setup", "train", "agent", "select", "finetune", "export")
COLUMNS = ["pipeline", "seed", "flops_ratio", "val_acc_pruned", "finetune_epochs"] + [f"{p}_s" for p in PHASES] + \
    ["total_s", "environment"]
BRANCH_FILES = (files.SELECTION, files.MASKS, files.GATED_MODEL)  # what a run resumes fine-tuning from
TITLE, COMMAND = "# Cost study: ", "Command: "  # a table's first lines (results_pages reads them back)
CSV, MARKDOWN, PLOT = "cost.csv", "cost.md", "accuracy_vs_time.png"


class CostStudyError(compare.ComparisonError):
    """A cost study asked for an unknown pipeline, or a branch's base run is missing."""


def run_cost_study(config_files, pipelines, seeds, workdir, bindings=()):
    """Runs (or resumes) every (pipeline, seed); returns a `compare.ComparisonResult` of `COLUMNS` rows."""
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        raise CostStudyError(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    rows, failed = [], []
    for seed in seeds:
        for pipeline in pipelines:
            summary, base = _run_pipeline(pipeline, seed, config_files, workdir, bindings)
            if summary is None:
                failed.append((pipeline, seed))
            else:
                rows.append(row_of(pipeline, seed, summary, base))
    order = {p: i for i, p in enumerate(pipelines)}
    rows.sort(key=lambda r: (order[r["pipeline"]], r["seed"]))
    return compare.ComparisonResult(rows, failed)


def _run_pipeline(pipeline, seed, config_files, workdir, bindings):
    """Runs (or skips) one pipeline's run; returns (its summary or None, its base's summary or None)."""
    method, multiple = PIPELINES[pipeline]
    if multiple is None:
        return compare.run_one(method, seed, config_files, workdir, bindings)[0], None
    base, _ = _run_pipeline(CLASSIC_BASE, seed, config_files, workdir, bindings)
    if base is None:
        return None, None
    run_dir = os.path.join(workdir, pipeline, f"seed{seed}")
    _branch(os.path.join(workdir, PIPELINES[CLASSIC_BASE][0], f"seed{seed}"), run_dir)
    finetune_epochs = multiple * base["schedule"]["finetune_epochs"]
    cmd = train_command(run_dir, config_files, list(bindings) + compare.METHODS[method] +
                        [f"run.finetune_epochs = {finetune_epochs}", f"run.seed = {seed}"])
    summary, _ = compare.run_training(run_dir, cmd, f"{pipeline} seed {seed}",
                                      f"{CLASSIC_BASE}'s pruned network fine-tuned for {finetune_epochs} epochs")
    return summary, base


def _branch(base_dir, run_dir):
    """Seeds ``run_dir`` with the base run's selection, so that it resumes at fine-tuning."""
    if os.path.exists(os.path.join(run_dir, files.SELECTION)):
        return
    os.makedirs(run_dir, exist_ok=True)
    for name in BRANCH_FILES:
        source = os.path.join(base_dir, name)
        if not os.path.exists(source):
            raise CostStudyError(f"{source} is missing: the classic base run must finish before its branches.")
        shutil.copy2(source, os.path.join(run_dir, name))


def row_of(pipeline, seed, summary, base_summary=None):
    """The `COLUMNS` row of one finished run. A branch pays its base's set-up too (the pretraining job's)."""
    seconds = dict(summary.get("phase_seconds") or {})
    if base_summary is not None:
        seconds["setup"] = seconds.get("setup", 0.0) + base_summary["phase_seconds"]["setup"]
    row = {"pipeline": pipeline, "seed": seed, "flops_ratio": summary["flops_ratio"],
           "val_acc_pruned": summary["val_accuracy_pruned"],
           "finetune_epochs": summary["schedule"]["finetune_epochs"],
           "environment": environment_id(summary.get("environment"))}
    row.update({f"{p}_s": float(seconds.get(p, 0.0)) for p in PHASES})
    row["total_s"] = sum(row[f"{p}_s"] for p in PHASES)
    return row


# ----------------------------------------------------------------------------------------- tables


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path):
    """The rows `write_csv` wrote, typed back."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in COLUMNS:
            if key not in ("pipeline", "environment"):
                row[key] = int(row[key]) if key in ("seed", "finetune_epochs") else float(row[key])
    return rows


def paired_ratios(rows, pipeline, baseline, seeds, key="total_s"):
    """Per seed, ``pipeline``'s ``key`` over ``baseline``'s (seeds where both ran)."""
    value = {(r["pipeline"], r["seed"]): r[key] for r in rows}
    return [value[(pipeline, s)] / value[(baseline, s)] for s in seeds
            if (pipeline, s) in value and (baseline, s) in value]


def markdown(rows, config_files, command, provenance):
    """The study as markdown: the runs, then per pipeline the mean accuracy, time and phases, then the
    two questions of issue 37 (the joint run vs unpruned training; vs the classic pipeline's best)."""
    pipelines = list(dict.fromkeys(r["pipeline"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"{TITLE}{', '.join(config_files)}", "", f"{COMMAND}`{command}`", "", provenance, "",
             "Wall seconds per phase of each run (summary.json's `phase_seconds`): set-up (data, model, pruner; "
             "a branch adds its base's), weight training with each epoch's validation, agent steps, selection, "
             "the cut and fine-tuning, export (SavedModel, TFLite, latency). A classic_ftK run is classic_ft1's "
             "pretrained and pruned network fine-tuned K times as long: its training and selection are its "
             "base's. Val accuracy after fine-tuning. The pipelines of one seed ran one after another on one "
             "machine, which other jobs shared: compare times within a seed (the paired ratios).", "",
             "## Runs", "", "| pipeline | seed | FLOPs | val acc (%) | fine-tune epochs | " +
             " | ".join(f"{p} (s)" for p in PHASES) + " | total (s) |", "|" + "---|" * (6 + len(PHASES))]
    for r in rows:
        lines.append(f"| {r['pipeline']} | {r['seed']} | {r['flops_ratio']:.3f} | {100 * r['val_acc_pruned']:.2f} | "
                     f"{r['finetune_epochs']} | " + " | ".join(f"{r[f'{p}_s']:.0f}" for p in PHASES) +
                     f" | {r['total_s']:.0f} |")
    lines += _means_section(rows, pipelines, seeds)
    lines += _verdict_section(rows, pipelines, seeds)
    return "\n".join(lines) + "\n"


def _means_section(rows, pipelines, seeds):
    base = "unpruned" if "unpruned" in pipelines else None
    lines = ["", f"## Per pipeline, mean over seeds {', '.join(map(str, seeds))}", "",
             "| pipeline | n | val acc (%) | total (s) | total / unpruned (paired) | " +
             " | ".join(f"{p} (s)" for p in PHASES) + " |", "|" + "---|" * (5 + len(PHASES))]
    for p in pipelines:
        mine = [r for r in rows if r["pipeline"] == p]
        acc, acc_std = compare.mean_std([100 * r["val_acc_pruned"] for r in mine])
        total = compare.mean_std([r["total_s"] for r in mine])[0]
        ratio = compare.mean_std(paired_ratios(rows, p, base, seeds))[0] if base else float("nan")
        lines.append(f"| {p} | {len(mine)} | {acc:.2f}" + ("" if math.isnan(acc_std) else f" ± {acc_std:.2f}") +
                     f" | {total:.0f} | " + ("-" if math.isnan(ratio) else f"{ratio:.2f}x") + " | " +
                     " | ".join(f"{compare.mean_std([r[f'{ph}_s'] for r in mine])[0]:.0f}" for ph in PHASES) + " |")
    return lines


def _verdict_section(rows, pipelines, seeds):
    """Issue 37's two targets, read off the rows: agent total <= 1.0x unpruned; agent at the classic
    pipeline's best accuracy for <= 0.75x its total time."""
    if "agent" not in pipelines:
        return []
    lines = ["", "## The targets", ""]
    if "unpruned" in pipelines:
        ratio, low, high = compare.mean_interval(paired_ratios(rows, "agent", "unpruned", seeds))
        lines.append(f"- Joint run (agent) / unpruned training, total wall time: **{ratio:.2f}x** (paired mean; "
                     + ("" if math.isnan(low) else f"95% interval {low:.2f}-{high:.2f}; ") + "target <= 1.00x).")
    classic = [p for p in pipelines if p.startswith("classic")]
    if classic:
        best = max(classic, key=lambda p: compare.mean_std([r["val_acc_pruned"] for r in rows
                                                            if r["pipeline"] == p])[0])
        gains = compare.paired_differences(rows, "agent", best, seeds, label="pipeline")
        mean, low, high = compare.mean_interval([g for g in gains if g is not None])
        time_ratio = compare.mean_std(paired_ratios(rows, "agent", best, seeds))[0]
        lines.append(f"- The classic pipeline's best is **{best}**; agent - {best}: **{mean:+.2f} pp** val accuracy "
                     + ("" if math.isnan(low) else f"(95% interval {low:+.2f} .. {high:+.2f}) ") +
                     f"at **{time_ratio:.2f}x** its total time (target: its accuracy at <= 0.75x its time).")
    return lines


def write_tables(rows, workdir, config_files, command, provenance):
    """Writes WORKDIR/cost.csv, cost.md and accuracy_vs_time.png (a plot failure only warns); returns the
    markdown."""
    write_csv(rows, os.path.join(workdir, CSV))
    text = markdown(rows, config_files, command, provenance)
    with open(os.path.join(workdir, MARKDOWN), "w") as f:
        f.write(text)
    try:
        from tfprune.training import plots

        plots.plot_accuracy_vs_time(rows, os.path.join(workdir, PLOT))
    except Exception as e:  # noqa: BLE001  plotting must never lose the table
        print(f"warning: accuracy-vs-time plot not written: {type(e).__name__}: {e}", file=sys.stderr)
    return text


# -------------------------------------------------------------------------------------- command line


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="tfprune cost", description=DESCRIPTION)
    p.add_argument("--config", action="append", required=True, help="gin config file (repeatable)")
    p.add_argument("--pipelines", default=",".join(PIPELINES), help=f"comma-separated, from: {', '.join(PIPELINES)}")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated integer seeds")
    p.add_argument("--workdir", required=True, help="the study's folder (runs, cost.csv, cost.md)")
    p.add_argument("--gin_bindings", action="append", default=[], help="extra binding for every run (repeatable)")
    args = p.parse_args(argv)
    args.pipelines = compare.parse_names(p, args.pipelines, PIPELINES, "pipeline")
    args.seeds = compare.parse_seeds(p, args.seeds)
    return args


def main(argv=None):
    """``tfprune cost``: exit status 0 when every run finished, 1 when some failed, 2 on bad arguments."""
    args = parse_args(argv)
    start = time.time()
    result = run_cost_study(args.config, args.pipelines, args.seeds, args.workdir, args.gin_bindings)
    command = "tfprune cost " + compare.command_line(sys.argv[2:] if argv is None else argv)
    provenance = compare.this_provenance()
    print(write_tables(result.rows, args.workdir, args.config, command, provenance))
    print(f"Wrote {args.workdir}/cost.md, cost.csv, accuracy_vs_time.png ({time.time() - start:.0f} s).")
    if result.failed:
        print(f"Failed: {', '.join(f'{p} seed {s}' for p, s in result.failed)}", file=sys.stderr)
        return 1
    return 0
