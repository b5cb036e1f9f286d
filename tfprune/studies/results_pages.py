"""The results pages' comparison tables, regenerated from the committed result files.

A comparison (`tfprune.studies.compare`) writes ``comparison.csv`` (one row per run) and
``comparison.md`` (the tables, with the command, commit and machine that made them); a study may add
copies of its runs' history.json under ``histories/``, rendered as ``trajectory.md`` and
``reward_drift.md`` (`tfprune.studies.reward_drift`). Copied into
``docs/results/<study>/``, the pair is what the results pages show (`docs/results.md` links them), and
the markdown must be exactly what the CSV gives: ``python -m tfprune.studies.results_pages`` rewrites
every committed table from its CSV, keeping the command, commit and machine it states, and
``tests/test_results_pages.py`` fails when a committed table differs from its regeneration (a
hand-edited number, or a table format changed without regenerating the pages). The same command
redraws each study's ``accuracy_vs_flops.png`` from the CSV. A cost study (`tfprune.studies.cost`) is
committed the same way: ``cost.csv``, the ``cost.md`` it gives and ``accuracy_vs_time.png``; so is the
reward fidelity study (`tfprune.studies.reward_fidelity`): ``fidelity.json`` and the ``fidelity.md`` it
gives. A table of measured numbers anywhere else on the results pages (``docs/results.md``, ``docs/results/``) fails the same test: a study whose result files
are not committed belongs in CHANGELOG.md as history, not beside the generated tables.
"""

import glob
import json
import os
import sys

from tfprune.studies import channel_bench, compare, cost, cost_bench, latency_bench, reward_drift, reward_fidelity

PAGES = os.path.join("docs", "results")
CSV, MARKDOWN = "comparison.csv", "comparison.md"
HISTORIES, TRAJECTORY = reward_drift.HISTORIES, "trajectory.md"  # <method>_seed<N>.json: runs' history.json
DRIFT = "reward_drift.md"  # from the same histories: the reward's drift and the dynamics model's forecast
PLOT = "accuracy_vs_flops.png"
COST_CSV, COST_MARKDOWN, COST_PLOT = cost.CSV, cost.MARKDOWN, cost.PLOT
BENCH_JSON, BENCH_MARKDOWN = "bench.json", "bench.md"  # tfprune bench --only ... --json DIR/bench.json
FIDELITY_JSON, FIDELITY_MARKDOWN = reward_fidelity.JSON, reward_fidelity.MARKDOWN  # the reward fidelity study


def retabulate(folder):
    """The markdown that ``folder``'s comparison.csv gives, under the title, command, commit and machine
    its committed comparison.md states."""
    rows = compare.read_csv(os.path.join(folder, CSV))
    config_files, command, provenance = _stated(os.path.join(folder, MARKDOWN), compare.TITLE, compare.COMMAND)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    seeds = sorted({row["seed"] for row in rows})
    return compare.markdown(rows, methods, seeds, config_files, command, provenance)


def retabulate_cost(folder):
    """The markdown that ``folder``'s cost.csv gives (`tfprune.studies.cost.markdown`), under what its
    committed cost.md states."""
    config_files, command, provenance = _stated(os.path.join(folder, COST_MARKDOWN), cost.TITLE, cost.COMMAND)
    return cost.markdown(cost.read_csv(os.path.join(folder, COST_CSV)), config_files, command, provenance)


def _stated(markdown_path, title_prefix, command_prefix):
    """(config files, command, commit-and-machine line) from a committed table's first five lines."""
    with open(markdown_path) as f:
        title, _, command_line, _, provenance = f.read().splitlines()[:5]
    return title[len(title_prefix):].split(", "), command_line[len(command_prefix):].strip("`"), provenance


def trajectory(folder):
    """The structure each searching run aimed at, epoch by epoch (its alignment target's kept channels
    per group and that target's reward), from the run histories committed under ``folder/histories``;
    None where there are none. It shows when a search found a structure, which the final row cannot."""
    runs = reward_drift.histories(folder)
    if not runs:
        return None
    lines = [f"# Search trajectories: {os.path.basename(folder)}", "",
             "Each agent step's alignment target (kept channels per group) and its held-out reward; "
             f"from `{HISTORIES}/<method>_seed<N>.json`, copies of the runs' history.json.", ""]
    for name, history in runs.items():
        lines += [f"## {name}", "", "| epoch | target kept | target reward (%) |", "|---|---|---|"]
        for entry in history:
            kept = compare.kept_text((entry.get("best_kept") or {}).values())
            reward = entry.get("target_reward")
            lines.append(f"| {entry['epoch']} | {kept} | " + ("-" if reward is None else f"{100 * reward:.1f}") + " |")
        lines.append("")
    return "\n".join(lines)


def studies(root=PAGES):
    """Every committed study folder (one holding comparison.csv, cost.csv, bench.json or fidelity.json)
    under ``root``."""
    return sorted({os.path.dirname(path) for name in (CSV, COST_CSV, BENCH_JSON, FIDELITY_JSON)
                   for path in glob.glob(os.path.join(root, "*", name))})


def pages(folder):
    """{file name: text} of every page ``folder``'s committed result files give."""
    out = {}
    if os.path.exists(os.path.join(folder, CSV)):
        out[MARKDOWN] = retabulate(folder)
        for name, text in ((TRAJECTORY, trajectory(folder)), (DRIFT, reward_drift.markdown(folder))):
            if text is not None:
                out[name] = text
    if os.path.exists(os.path.join(folder, COST_CSV)):
        out[COST_MARKDOWN] = retabulate_cost(folder)
    if os.path.exists(os.path.join(folder, BENCH_JSON)):
        out[BENCH_MARKDOWN] = bench_page(folder)
    if os.path.exists(os.path.join(folder, FIDELITY_JSON)):
        with open(os.path.join(folder, FIDELITY_JSON)) as f:
            out[FIDELITY_MARKDOWN] = reward_fidelity.markdown(json.load(f))
    return out


def bench_page(folder):
    """The speed page ``folder``'s bench.json gives: its command, commit and machine, then the tables."""
    with open(os.path.join(folder, BENCH_JSON)) as f:
        results = json.load(f)
    machine = results["machine"]
    provenance = (f"Commit: {results.get('commit') or 'not a git checkout'}; machine: {machine['cpu']}, "
                  f"{machine['cpu_count']} CPUs, {machine['gpus']} GPUs, TensorFlow {machine['tensorflow']}."
                  + (f" Note: {results['note']}" if results.get("note") else ""))  # e.g. what else ran
    return cost_bench.markdown(results, results["command"], provenance) + "".join(
        _rows_section(title, rows_of(results[name])) for name, title, rows_of in DEPLOY_BENCHES if name in results)


# The deployment benches (`tfprune bench --only channels,rounding,latency`), rendered as their report rows.
DEPLOY_BENCHES = (("channels", "Single layers at channel counts around multiples of 8", channel_bench.channel_rows),
                  ("rounding", "Whole models pruned at each `round_to`", channel_bench.rounding_rows),
                  ("latency", "The latency budget, measured", latency_bench.latency_rows))


def _rows_section(title, rows):
    lines = ["", f"## {title}", "", "| measurement | value | note |", "|---|---|---|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def generated(root=PAGES):
    """The paths of every page the committed result files under ``root`` give (what `main` writes)."""
    return sorted(os.path.join(folder, name) for folder in studies(root) for name in pages(folder))


def plot_names(folder):
    """The plots ``folder``'s result files draw (file names)."""
    return [name for source, name in ((CSV, PLOT), (COST_CSV, COST_PLOT)) if os.path.exists(os.path.join(folder, source))]


def plot(folder, path=None, name=PLOT):
    """Draws ``folder``'s plot ``name`` (accuracy vs FLOPs from comparison.csv, or accuracy vs time from
    cost.csv) into ``path`` (default: the folder's own file of that name, the figure the study wrote);
    returns the path."""
    from tfprune.training import plots  # matplotlib, only when a plot is drawn

    path = path or os.path.join(folder, name)
    if name == COST_PLOT:
        return plots.plot_accuracy_vs_time(cost.read_csv(os.path.join(folder, COST_CSV)), path)
    return plots.plot_accuracy_vs_flops(compare.read_csv(os.path.join(folder, CSV)), path)


def main(argv=None):
    """Rewrites every committed page and plot from its result files; prints the files it changed."""
    root = (argv if argv is not None else sys.argv[1:] or [PAGES])[0]
    for folder in studies(root):
        for name, text in pages(folder).items():
            path = os.path.join(folder, name)
            if os.path.exists(path):
                with open(path) as f:
                    if f.read() == text:
                        continue
            with open(path, "w") as f:
                f.write(text)
            print(f"rewrote {path}")
        _replot(folder)


def _replot(folder):
    """Redraws the folder's plots; replaces a committed file (and says so) only when the bytes differ."""
    import tempfile

    for name in plot_names(folder):
        path = os.path.join(folder, name)
        with tempfile.TemporaryDirectory() as scratch:
            with open(plot(folder, os.path.join(scratch, name), name), "rb") as f:
                drawn = f.read()
        if os.path.exists(path):
            with open(path, "rb") as f:
                if f.read() == drawn:
                    continue
        with open(path, "wb") as f:
            f.write(drawn)
        print(f"rewrote {path}")


if __name__ == "__main__":
    main()
