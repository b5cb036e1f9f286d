"""`tfprune inspect MODEL`: the pruning plan (`tfprune.cost.plan`) of a zoo model, a `.keras` file or a Python
`module:function` that builds a model, printed before any training.

    tfprune inspect resnet56
    tfprune inspect my_model.keras --json
    tfprune inspect keras.applications:MobileNetV2 --png plan.png --max_ratio 0.8
    tfprune inspect keras:MobileNetV3Small            (keras: is short for keras.applications:)

A `module:function` is imported (the working directory is on the import path) and called with no
arguments, except `weights=None` when it takes `weights` (keras.applications: the plan needs the
architecture only, never a download). Exit status 0, or 2 with one line on stderr for a model that
cannot be loaded.
"""

import argparse
import importlib
import inspect as pyinspect
import json
import os
import sys

from tfprune.errors import TfpruneError


KERAS_SHORT, KERAS_APPLICATIONS = "keras:", "keras.applications:"


class ModelSpecError(TfpruneError, ValueError):
    """MODEL is neither a zoo name, a .keras file, nor an importable module:function."""


def load_model(spec, num_classes=10, input_size=None):
    """The Keras model named by `spec` (zoo name, .keras path or module:function); `input_size` is the
    input side of a zoo model, or of a builder that takes `input_shape` (keras.applications: 224 unless
    given, since some of them otherwise build with an unknown spatial size, whose FLOPs are unknown)."""
    from tfprune.models import MODEL_NAMES, build_model

    if spec in MODEL_NAMES:
        shape = None if input_size is None else (input_size, input_size, 3)
        return build_model(spec, num_classes=num_classes, input_shape=shape)
    if spec.endswith(".keras") or os.path.isfile(spec):
        return _load_file(spec)
    if spec.startswith(KERAS_SHORT):
        spec = KERAS_APPLICATIONS + spec[len(KERAS_SHORT):]
    if ":" in spec:
        if input_size is None and spec.startswith(KERAS_APPLICATIONS):
            input_size = 224
        return _call_builder(spec, input_size)
    raise ModelSpecError(f"{spec!r} is not a zoo model ({', '.join(MODEL_NAMES)}), an existing .keras file or a "
                         "module:function such as keras.applications:MobileNetV2 (or keras:MobileNetV2).")


def _load_file(path):
    import keras

    if not os.path.isfile(path):
        raise ModelSpecError(f"model file {path!r} does not exist.")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  (a bad file fails in many ways inside Keras; each means the same)
        raise ModelSpecError(f"cannot load {path!r} as a Keras model ({type(e).__name__}: {str(e)[:300]}).") from e


def _call_builder(spec, input_size=None):
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ModelSpecError(f"cannot import {spec!r}: {e}.") from e
    try:
        parameters = pyinspect.signature(builder).parameters
    except (TypeError, ValueError):
        parameters = {}
    kwargs = {"weights": None} if "weights" in parameters else {}
    if input_size is not None and "input_shape" in parameters:
        kwargs["input_shape"] = (input_size, input_size, 3)
    model = builder(**kwargs)
    if not hasattr(model, "layers"):
        raise ModelSpecError(f"{spec} returned {type(model).__name__}, not a Keras model.")
    return model


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="tfprune inspect", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="zoo model name, .keras file, module:function building a Keras model, or "
                        "keras:NAME for keras.applications.NAME")
    p.add_argument("--max_ratio", type=float, default=0.9,
                   help="largest share of a group's channels that may be pruned (JointPruner.max_ratio)")
    p.add_argument("--num_classes", type=int, default=10, help="classes of a zoo model")
    p.add_argument("--input_size", type=int, default=None, help="input side of a zoo model (default: the zoo's)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    p.add_argument("--png", default=None, help="also draw the groups' FLOPs and params shares into this PNG")
    return p.parse_args(argv)


def main(argv=None):
    """`tfprune inspect`: exit status 0, or 2 on a model that cannot be loaded."""
    args = parse_args(argv)
    from tfprune.cost.plan import inspect

    try:
        plan = inspect(load_model(args.model, args.num_classes, args.input_size), max_ratio=args.max_ratio)
    except TfpruneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(plan.to_dict(), indent=1) if args.json else "\n".join(plan.lines()))
    if args.png:
        from tfprune.training.plots import plot_group_shares

        print(f"plot: {plot_group_shares(plan.to_dict(), args.png)}", file=sys.stderr if args.json else sys.stdout)
    return 0
