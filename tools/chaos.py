#!/usr/bin/env python
"""Kill-anywhere check (issue 13): a deterministic run SIGKILLed N times at random moments and resumed
ends with the same masks.json, summary metrics and history.json as an uninterrupted run.

    python tools/chaos.py --config configs/smoke.gin --kills 10 --root /tmp/chaos

Same as `tfprune chaos ...`. Writes ROOT/reference, ROOT/killed, one log per attempt and
ROOT/chaos_report.json; exit status 0 only when both runs are identical.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfprune.studies.chaos import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
