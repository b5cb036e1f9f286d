"""`python -m tfprune COMMAND ...`: the `tfprune` command without the console script on PATH.

`python -m` puts the working directory first on the import path; the console script does not. It is
taken off again (tfprune itself is imported by now), so that both behave the same: otherwise a folder
named like a config folder (e.g. `base/`) in the working directory would be taken by gin for a Python
package when it resolves `include 'base/train.gin'`, and fail.
"""

import os
import sys

from tfprune.cli.commands import main

if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():
        del sys.path[0]
    sys.exit(main())
