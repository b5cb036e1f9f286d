#!/usr/bin/env python
"""Prune a gated model physically and export it (SavedModel + TFLite float / dynamic / int8).

Examples::

    # a trained gated model written by training (masks stored in its gates, or from a mask file)
    python tools/export.py --model_file WORKDIR/gated_model.keras --masks WORKDIR/masks.json \\
        --output_dir WORKDIR/export

    # size / latency study of a zoo architecture with untrained weights
    python tools/export.py --model resnet20 --masks masks.json --output_dir /tmp/resnet20_export

Writes into --output_dir: the pruned model's ``saved_model/``, ``model_<quantization>.tflite``,
``export_report.json`` (tfprune.deploy.export.export_all), the unpruned baseline's exports under ``full/``
(unless --no_baseline), and ``export_summary.json`` with the full-vs-pruned comparison printed at the end.

Exit status: 0 on success, 1 when a converted model fails verification, 2 on bad arguments or input
files (missing model/mask file, masks that do not fit the model, unavailable data).

The logic is `tfprune.studies.export_study` (``export_study(...)`` from Python); this file only calls its `main`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfprune.studies.export_study import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
