"""`python -m tfprune COMMAND ...`: the `tfprune` command without the console script on PATH."""

import sys

from tfprune.cli import main

if __name__ == "__main__":
    sys.exit(main())
