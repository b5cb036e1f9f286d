"""Would spending the band's slack (`tfprune.cost.budget.fill_to_target`) have changed a finished run?

Reads a run directory written before the fill (commit 04e046f) and fills each epoch's chosen
sub-network (`history.json`, ``best_kept``) as the current code does. A run whose every epoch comes
out unchanged took the same alignment targets under the fill; with `run.deterministic = True` it then
trains, selects and fine-tunes exactly as before, so re-running it only repeats it. Meant for the
projection rules (uniform, global_magnitude), whose sub-networks the fill alone changes; the agent's
rewards change with it, so its runs must be re-run.

    python docs/diagnostics/fill_changes.py runs/mnv2/global_magnitude/seed3 --target 0.3

Prints, per epoch, the FLOPs ratio kept and the groups the fill would change.
"""

import argparse
import json
from pathlib import Path

import keras
import numpy as np

import tfprune  # noqa: F401  (registers the gate layers for loading)
from tfprune.cost.budget import fill_to_target
from tfprune.cost.channel_grid import ChannelGrid
from tfprune.cost.flops import CostModel
from tfprune.pruning.pruner import _gated_graph


def changed_epochs(run_dir, target, max_ratio=0.9, round_to=1):
    """[(epoch, FLOPs ratio, {group: (kept, filled)})] for every epoch of the run's history."""
    run_dir = Path(run_dir)
    model = keras.models.load_model(run_dir / "gated_model.keras", compile=False)
    graph = _gated_graph(model)
    cost_model = CostModel(model, graph)
    grid = ChannelGrid(cost_model.group_sizes, max_ratio, round_to)
    rows = []
    for entry in json.loads((run_dir / "history.json").read_text()):
        kept = np.array([entry["best_kept"][name] for name in cost_model.group_names])
        filled = fill_to_target(kept, cost_model, target, grid)[0]
        changes = {name: (int(a), int(b)) for name, a, b in zip(cost_model.group_names, kept, filled) if a != b}
        rows.append((entry.get("epoch"), cost_model.ratio(kept), changes))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--target", type=float, required=True, help="the run's JointPruner.target_flops_ratio")
    parser.add_argument("--max_ratio", type=float, default=0.9)
    parser.add_argument("--round_to", type=int, default=1)
    args = parser.parse_args()
    rows = changed_epochs(args.run_dir, args.target, args.max_ratio, args.round_to)
    for epoch, ratio, changes in rows:
        print(f"epoch {epoch}: FLOPs {ratio:.5f} " + (f"fill changes {changes}" if changes else "unchanged"))
    print("the fill changes this run" if any(c for _, _, c in rows) else "the fill changes nothing in this run")


if __name__ == "__main__":
    main()
