#!/usr/bin/env python
"""Compare the joint agent-guided pruning with baselines at the same training budget and FLOPs target.

    python tools/compare.py --config configs/compare_digits.gin \\
        --methods agent,uniform,l1,random,no_dynamics,no_alignment --seeds 0,1 --workdir runs/compare

Each (method, seed) is one `tfprune.training.trainer.run` in a subprocess (`python -m tfprune train`: a
fresh gin config and fresh TensorFlow state every time) in WORKDIR/<method>/seed<seed>, with the config's
bindings, any --gin_bindings (for every method), then the method's bindings
(`tfprune.studies.compare.METHODS`) and `run.seed = <seed>` (applied last, so they win). A run whose workdir already holds summary.json is not run again (re-running
the command resumes; an interrupted run resumes from its own checkpoints).

Writes WORKDIR/comparison.csv (one row per run), WORKDIR/comparison.md (the runs, then mean ± std per
method when there are several seeds, then the paired difference to `uniform` per seed) and
WORKDIR/accuracy_vs_flops.png. Exit status: 0 when every run finished, 1 when some failed (their logs
are in WORKDIR/<method>/seed<seed>/log.txt), 2 on bad arguments.

The logic is `tfprune.studies.compare` (``run_comparison(...)``, ``write_tables(...)`` from Python); this file
only calls its `main`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfprune.studies.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
