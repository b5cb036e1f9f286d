"""The results pages' comparison tables, regenerated from the committed result files.

A comparison (`tfprune.studies.compare`) writes ``comparison.csv`` (one row per run) and
``comparison.md`` (the tables, with the command, commit and machine that made them). Copied into
``docs/results/<study>/``, the pair is what the results pages show (`docs/results.md` links them), and
the markdown must be exactly what the CSV gives: ``python -m tfprune.studies.results_pages`` rewrites
every committed table from its CSV, keeping the command, commit and machine it states, and
``tests/test_results_pages.py`` fails when a committed table differs from its regeneration (a
hand-edited number, or a table format changed without regenerating the pages).
"""

import glob
import os
import sys

from tfprune.studies import compare

PAGES = os.path.join("docs", "results")
CSV, MARKDOWN = "comparison.csv", "comparison.md"


def retabulate(folder):
    """The markdown that ``folder``'s comparison.csv gives, under the title, command, commit and machine
    its committed comparison.md states."""
    rows = compare.read_csv(os.path.join(folder, CSV))
    with open(os.path.join(folder, MARKDOWN)) as f:
        title, _, command_line, _, provenance = f.read().splitlines()[:5]
    config_files = title[len(compare.TITLE):].split(", ")
    command = command_line[len(compare.COMMAND):].strip("`")
    methods = list(dict.fromkeys(row["method"] for row in rows))
    seeds = sorted({row["seed"] for row in rows})
    return compare.markdown(rows, methods, seeds, config_files, command, provenance)


def studies(root=PAGES):
    """Every committed study folder (one holding comparison.csv) under ``root``."""
    return sorted(os.path.dirname(path) for path in glob.glob(os.path.join(root, "*", CSV)))


def main(argv=None):
    """Rewrites every committed table from its CSV; prints the folders it changed."""
    root = (argv if argv is not None else sys.argv[1:] or [PAGES])[0]
    for folder in studies(root):
        text = retabulate(folder)
        path = os.path.join(folder, MARKDOWN)
        with open(path) as f:
            if f.read() == text:
                continue
        with open(path, "w") as f:
            f.write(text)
        print(f"rewrote {path}")


if __name__ == "__main__":
    main()
