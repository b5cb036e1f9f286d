"""Command-line entry point of training (tools/train.py, and the `tfprune-train` console script)."""

import argparse
import logging
import os
import sys

import gin


def parse_gin(config_files, bindings):
    """Parses gin files and bindings; a typo or unknown parameter becomes a one-line error."""
    import tfprune.agent  # noqa: F401  (registers the agent's configurables; TF-Agents loads lazily elsewhere)
    import tfprune.trainer  # noqa: F401  (registers every other configurable)

    for path in config_files:
        if not os.path.exists(path):
            raise SystemExit(f"error: config file {path!r} does not exist (configs/ lists the shipped ones).")
        # `include 'base/x.gin'` resolves relative to the including config's folder.
        gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
    quiet = _DropMessages("Path not found")  # gin logs each search-path miss of an include as an error
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(config_files, bindings)
    except (ValueError, KeyError, SyntaxError, OSError) as e:
        message = str(e).strip().splitlines()
        raise SystemExit(f"error: bad gin configuration: {' '.join(message)[:800]}\n"
                         "Check the parameter names against the configurables listed in the README.") from None
    finally:
        logging.getLogger().removeFilter(quiet)


class _DropMessages(logging.Filter):
    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def filter(self, record):
        return not str(record.msg).startswith(self.prefix)


def train_main(argv=None):
    parser = argparse.ArgumentParser(
        description="Jointly train and prune a CNN with an RL agent; re-run the same command to resume.")
    parser.add_argument("--config", action="append", required=True,
                        help="gin config file (repeatable; later files override earlier ones)")
    parser.add_argument("--gin_bindings", action="append", default=[],
                        help="extra gin binding, e.g. --gin_bindings 'run.epochs = 3' (repeatable)")
    parser.add_argument("--workdir", default=None,
                        help="output directory (default runs/<config name>); checkpoints and results go here")
    parser.add_argument("--verbose", action="store_true",
                        help="also show what TensorFlow, TFLite and Gym print themselves (hidden by default: "
                             "tfprune.quiet; TFPRUNE_VERBOSE=1 does the same)")
    args = parser.parse_args(argv)
    strategy = None
    if os.environ.get("TF_CONFIG"):
        # Collective ops must be configured before TensorFlow runs anything (importing TF-Agents does).
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    parse_gin(args.config, args.gin_bindings)
    workdir = args.workdir or os.path.join("runs", os.path.splitext(os.path.basename(args.config[-1]))[0])
    os.makedirs(workdir, exist_ok=True)
    from tfprune.workdir import CONFIG

    with open(os.path.join(workdir, CONFIG), "w") as f:
        f.write(gin.config_str())

    from tfprune import trainer
    from tfprune.distribute import make_strategy
    from tfprune.errors import TfpruneError
    from tfprune.run_header import header_lines

    try:
        strategy = strategy or make_strategy()
        print("\n".join(header_lines(workdir, strategy)), flush=True)
        trainer.run(workdir, strategy=strategy)
    except TfpruneError as e:
        # Problems with the user's input or run: one clear line, no traceback from deep inside TF
        # (nor gin's "In call to configurable ..." trail).
        message = "\n".join(line for line in str(e).splitlines() if not line.strip().startswith("In call to configurable"))
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0

