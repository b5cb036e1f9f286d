"""A quiet start: what dependencies print on their own stays off the console unless asked for.

A new user reads TensorFlow's C++ start-up lines ("oneDNN custom operations are on", "Could not find
cuda drivers"), the CUDA probe error of a CPU-only machine ("failed call to cuInit"), TFLite's
converter and delegate notes, Gym's "unmaintained" banner and dependencies' deprecation warnings as
failures; none of them is about their run. `startup()` (called by `tfprune/__init__.py` before
TensorFlow loads) hides exactly those, and nothing else:

* TensorFlow's C++ log level defaults to 2 (errors only), the level `tfprune` always used;
* the lines TensorFlow prints while it loads (before its log level applies) are read off file
  descriptor 2 and dropped only when they match the patterns below; anything else is written back;
* the CUDA probe runs once at start-up under the same filter, so its error on a machine without a GPU
  driver is dropped there, while any later C++ error still reaches the console;
* Gym is imported once with its banner captured (it prints on import, from deep inside TF-Agents);
* DeprecationWarning / FutureWarning raised inside TensorFlow, Keras, TF-Agents, Gym, ... are ignored.

What brings them back: `TFPRUNE_VERBOSE=1`, or `--verbose` on a tfprune command line (read here, because
TensorFlow loads when `tfprune` is imported, before any argument parser runs); the user's own
`TF_CPP_MIN_LOG_LEVEL` (then TensorFlow's C++ logging is entirely theirs: no line is filtered); the
user's own `-W` / `PYTHONWARNINGS` (then the warning filters are theirs). Hidden lines are kept in
`hidden_lines()`, never lost.
"""

import contextlib
import importlib.util
import io
import os
import re
import sys
import tempfile
import warnings

VERBOSE_ENV = "TFPRUNE_VERBOSE"
_TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
_DEFAULTED_ENV = "TFPRUNE_DEFAULTED_TF_LOG_LEVEL"  # marks a TF log level set by tfprune, not by the user
_TF_LOG_LEVEL = "2"
_COMMANDS = ("tfprune", "tfprune-train")
_TOOLS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools")
_DEPENDENCIES = r"(tensorflow|tf_keras|keras|tf_agents|tensorflow_probability|tensorflow_datasets|gym|absl|gin|h5py|google|flatbuffers|ml_dtypes)(\.|$)"

# Lines that dependencies print by themselves on a healthy CPU or GPU machine.
STARTUP_NOISE = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*",  # absl/glog INFO and WARNING lines
    r"E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit.*",  # the CUDA probe without a driver
    r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.",
)
TFLITE_NOISE = (
    r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",
    r"INFO: Initialized TensorFlow Lite runtime\.",
    r"fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+",
)

_state = {"filtering": False, "hidden": []}


def verbose_requested(argv=None, environ=None):
    """True when the user asked for dependencies' own output: TFPRUNE_VERBOSE, or --verbose given to
    one of tfprune's command lines (the console scripts or tools/*.py)."""
    environ = os.environ if environ is None else environ
    if environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes"):
        return True
    argv = sys.argv if argv is None else argv
    return "--verbose" in argv[1:] and is_command_line(argv)


def is_command_line(argv=None, orig_argv=None):
    """True when this process is one of tfprune's command lines: the console scripts, tools/*.py or
    `python -m tfprune` (whose argv[0] is "-m" while the package is imported)."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    if argv[0] == "-m":
        orig_argv = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
        return "-m" in orig_argv[:-1] and orig_argv[orig_argv.index("-m") + 1] == "tfprune"
    program = os.path.abspath(argv[0])
    return os.path.basename(program) in _COMMANDS or os.path.dirname(program) == _TOOLS_DIR


def user_sets_tf_logging(environ=None):
    """True when TF_CPP_MIN_LOG_LEVEL is the user's (not a default tfprune set in a parent process)."""
    environ = os.environ if environ is None else environ
    return _TF_LOG_ENV in environ and environ.get(_DEFAULTED_ENV) != environ[_TF_LOG_ENV]


def startup():
    """Loads TensorFlow (and Gym, when installed) quietly, unless the user asked for their output."""
    if verbose_requested():
        os.environ[VERBOSE_ENV] = "1"  # child processes (tools/compare.py's runs) are verbose too
        return
    if not sys.warnoptions:
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=_DEPENDENCIES)
    if not user_sets_tf_logging():
        os.environ[_TF_LOG_ENV] = os.environ[_DEFAULTED_ENV] = _TF_LOG_LEVEL
        _state["filtering"] = True
        with native_output(STARTUP_NOISE):
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe, here, under the filter
    _import_gym_quietly()


def _import_gym_quietly():
    if "gym" in sys.modules or importlib.util.find_spec("gym") is None:
        return
    banner = io.StringIO()
    with contextlib.redirect_stderr(banner), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import gym  # noqa: F401
    _state["hidden"].extend(banner.getvalue().splitlines())


@contextlib.contextmanager
def native_output(patterns):
    """Reads what C/C++ code writes to file descriptor 2 inside the block; afterwards writes back every
    line that matches none of `patterns` (full-line regular expressions) and keeps the rest in
    `hidden_lines()`. Does nothing when the user owns TensorFlow's logging or asked for verbose output."""
    if not _state["filtering"]:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _write_back(capture.read().decode("utf-8", "replace"), patterns)


def _write_back(text, patterns):
    noise = re.compile("|".join(f"(?:{p})" for p in patterns))
    kept = []
    for line in text.splitlines():
        (_state["hidden"] if noise.fullmatch(line) else kept).append(line)
    if kept:
        print("\n".join(kept), file=sys.stderr, flush=True)


def hidden_lines():
    """The lines dropped so far (for a bug report: TFPRUNE_VERBOSE=1 shows them as they happen)."""
    return list(_state["hidden"])
