"""Command lines: `tfprune train|export|compare|bench|inspect ...` (the `tfprune` console script), and
`train_main` (tools/train.py and the older `tfprune-train` console script).

Each subcommand is a library `main(argv)`; `tools/*.py` call the same functions. `--verbose` may be
given anywhere: `tfprune.infra.quiet` reads it when the package is imported (before TensorFlow loads), so
here it is only accepted and removed.
"""

import argparse
import contextlib
import logging
import os
import sys

import gin

from tfprune.cli import config_files


def parse_gin(config_files_or_names, bindings):
    """Parses gin files (paths, or names of shipped configs) and bindings; a missing config, a typo or
    an unknown parameter becomes a one-line error."""
    import tfprune.training.trainer  # noqa: F401  (registers every configurable but the agent's)
    from tfprune.infra import agent_stack

    try:
        import tfprune.search.agent  # noqa: F401  (registers the agent's configurables)
        missing_agent = None
    except agent_stack.MissingAgentStack as e:  # baselines run without TF-Agents; the agent's bindings fail
        missing_agent = e

    paths = _config_paths(config_files_or_names)
    try:
        with _quiet_include_misses():
            gin.parse_config_files_and_bindings(paths, bindings)
    except (ValueError, KeyError, SyntaxError, OSError) as e:
        message = " ".join(str(e).strip().splitlines())[:800]
        if missing_agent is not None:  # the configuration names the agent's settings: say what is missing
            raise SystemExit(f"error: {missing_agent}\n(gin: {message})") from None
        raise SystemExit(f"error: bad gin configuration: {message}\n"
                         "Check the parameter names against the configuration reference: docs/config_reference.md, "
                         "or `python -m tfprune.cli.config_reference`.") from None


def _config_paths(config_files_or_names):
    """The configs' file paths, their folders added to gin's search path (for their includes)."""
    try:
        paths = [config_files.resolve(name) for name in config_files_or_names]
    except config_files.ConfigNotFound as e:
        raise SystemExit(f"error: {e}") from None
    for path in paths:
        # `include 'base/x.gin'` resolves relative to the including config's folder.
        gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
    return paths


def _enable_determinism_if_asked(config_files_or_names, bindings):
    """Reads `run.deterministic` from the configuration alone and, when True, switches determinism on
    now: one inter-op thread must be set before TensorFlow's runtime starts, which importing TF-Agents
    (in `parse_gin`) or a multi-worker strategy already does (`tfprune.infra.determinism`). Called before the
    real parse: it leaves gin's configuration empty."""
    import tfprune.training.trainer  # noqa: F401  (registers `run`; starts nothing)
    from tfprune.infra import determinism

    paths = _config_paths(config_files_or_names)
    try:
        with _quiet_include_misses(), gin.unlock_config():
            gin.parse_config_files_and_bindings(paths, bindings, finalize_config=False, skip_unknown=True)
            asked = bool(gin.query_parameter("run.deterministic"))
    except (ValueError, KeyError, SyntaxError, OSError):
        asked = False  # unset, or a bad configuration that `parse_gin` reports in full
    finally:
        gin.clear_config()
    if asked:
        determinism.enable()
    return asked


@contextlib.contextmanager
def _quiet_include_misses():
    """Gin logs each search-path miss of an include as an error; those lines are dropped meanwhile."""
    quiet = _DropMessages("Path not found")
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)


class _DropMessages(logging.Filter):
    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def filter(self, record):
        return not str(record.msg).startswith(self.prefix)


def _train_parser():
    parser = argparse.ArgumentParser(
        prog="tfprune train",
        description="Jointly train and prune a CNN with an RL agent; re-run the same command to resume.")
    parser.add_argument("--config", action="append",
                        help="gin config: a file path, else a shipped config's name such as smoke.gin "
                             "(repeatable; later files override earlier ones)")
    parser.add_argument("--list-configs", action="store_true", help="list the shipped configs and exit")
    parser.add_argument("--gin_bindings", action="append", default=[],
                        help="extra gin binding, e.g. --gin_bindings 'run.epochs = 3' (repeatable)")
    parser.add_argument("--workdir", default=None,
                        help="output directory (default runs/<config name>); checkpoints and results go here")
    parser.add_argument("--verbose", action="store_true",
                        help="also show what TensorFlow, TFLite and Gym print themselves (hidden by default: "
                             "tfprune.infra.quiet; TFPRUNE_VERBOSE=1 does the same)")
    return parser


def train_main(argv=None):
    """`tfprune train`: exit status 0 when the run finished, 2 on bad input (one line on stderr), 3 when it
    finished but its TFLite export failed verification (summary.json records it)."""
    parser = _train_parser()
    args = parser.parse_args(argv)
    if args.list_configs:
        print(f"Shipped configs ({config_files.SHIPPED_DIR}):")
        print("\n".join("  " + row for row in config_files.describe()))
        return 0
    if not args.config:
        parser.error("--config is required (a file, or a shipped config: --list-configs lists them)")
    _enable_determinism_if_asked(args.config, args.gin_bindings)
    strategy = None
    if os.environ.get("TF_CONFIG"):
        # Collective ops must be configured before TensorFlow runs anything (importing TF-Agents does).
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    parse_gin(args.config, args.gin_bindings)
    workdir = args.workdir or os.path.join("runs", os.path.splitext(os.path.basename(args.config[-1]))[0])
    return _run(workdir, strategy)


def _run(workdir, strategy):
    # Nothing is written here: the run creates the workdir (and config.gin) once its input is checked.
    from tfprune.training import trainer
    from tfprune.infra.distribute import make_strategy
    from tfprune.errors import TfpruneError
    from tfprune.infra import agent_stack
    from tfprune.infra import workdir as files
    from tfprune.cli.run_header import header_lines, policy_setting

    try:
        if policy_setting()[1]:
            agent_stack.require()  # now, not after the warm-up epochs
        strategy = strategy or make_strategy()
        print("\n".join(header_lines(workdir, strategy)), flush=True)
        summary = trainer.run(workdir, strategy=strategy)
    except TfpruneError as e:
        # Problems with the user's input or run: one clear line, no traceback from deep inside TF
        # (nor gin's "In call to configurable ..." trail).
        message = "\n".join(line for line in str(e).splitlines() if not line.strip().startswith("In call to configurable"))
        print(f"error: {message}", file=sys.stderr)
        return 2
    if summary.get("export_verification_failures"):
        print(f"error: the run finished ({workdir}/{files.SUMMARY} is written) but its TFLite export does not match "
              f"the compact Keras model: {'; '.join(summary['export_verification_failures'])}. The numbers are in "
              f"{workdir}/{files.EXPORT}/export_report.json; do not ship that file.", file=sys.stderr)
        return 3
    return 0


def _export_main(argv):
    from tfprune.studies.export_study import main

    return main(argv)


def _compare_main(argv):
    from tfprune.studies.compare import main

    return main(argv)


def _cost_main(argv):
    from tfprune.studies.cost import main

    return main(argv)


def _bench_main(argv):
    from tfprune.studies.bench import main

    return main(argv)


def _chaos_main(argv):
    from tfprune.studies.chaos import main

    return main(argv)


def _inspect_main(argv):
    from tfprune.cli.inspect import main

    return main(argv)


COMMANDS = {
    "train": (train_main, "jointly train and prune a CNN (resumable); --list-configs lists the shipped configs"),
    "export": (_export_main, "prune a gated model physically and export SavedModel + TFLite, full vs pruned"),
    "compare": (_compare_main, "the agent vs baselines at one FLOPs budget, several seeds, as tables"),
    "cost": (_cost_main, "the cost of a pruned model: joint method vs unpruned training vs the classic pipeline"),
    "bench": (_bench_main, "speed benchmarks: gating overhead, agent step, TFLite latency, input pipeline"),
    "inspect": (_inspect_main, "the pruning plan of a model before training: groups, shares, barriers, range"),
    "chaos": (_chaos_main, "kill a deterministic run N times at random moments; the result must not change"),
}


def main(argv=None):
    """`tfprune COMMAND ...`: dispatches to the command's own parser (`tfprune COMMAND --help`)."""
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--verbose"]
    parser = argparse.ArgumentParser(
        prog="tfprune", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Jointly train and channel-prune CNNs (Keras 3 / TensorFlow).",
        epilog="commands:\n" + "\n".join(f"  {name:<8} {text}" for name, (_, text) in COMMANDS.items())
               + "\n\n--verbose (anywhere) shows what TensorFlow, TFLite and Gym print themselves.")
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments (COMMAND --help)")
    args = parser.parse_args(argv)
    return COMMANDS[args.command][0](args.args)
