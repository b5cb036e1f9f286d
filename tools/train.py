#!/usr/bin/env python
"""Jointly train and prune a CNN: python tools/train.py --config configs/smoke.gin --workdir runs/smoke

Re-running the same command resumes from the workdir's last checkpoint. The result is in the
workdir: summary.json, masks.json, compact_model.keras, export/ (SavedModel + TFLite), tb/.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfprune.cli.commands import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main())
