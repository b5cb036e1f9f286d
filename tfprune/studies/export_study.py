"""The full-vs-pruned export study behind ``tools/export.py``, usable from Python.

`tfprune.deploy.export.export_all` exports one model. A study answers the question a user has after pruning:
what did the masks buy on the device? It physically prunes a gated model with its masks
(`tfprune.structure.surgery.compact_model`), exports both the pruned and the unpruned model (SavedModel + TFLite
float / dynamic / int8), verifies every TFLite file against its Keras model on real images, and puts
params, FLOPs, file sizes and TFLite latency side by side::

    from tfprune.studies.export_study import export_study, load_gated_model, print_table

    gated = load_gated_model(model_file="runs/smoke/gated_model.keras")
    summary = export_study(gated, "runs/smoke/export2", masks="runs/smoke/masks.json")
    print_table(summary, ("float", "dynamic", "int8"))

It lives in the library (not in the command's file) so that scripts and notebooks get the same study,
numbers and files as the command line; `main(argv)` is the command line itself (`tools/export.py` only
calls it). Bad input raises `UsageError` (a `tfprune.errors.TfpruneError`), which the command reports as
one line with exit status 2.
"""

import argparse
import os
import sys

from tfprune.deploy import export as ex
from tfprune.deploy.interpreter import interpreter_runtime
from tfprune.infra import safe_write
from tfprune.errors import TfpruneError

QUANTIZATIONS = ex.QUANTIZATIONS
SOURCES = ("digits", "synthetic", "random")


class UsageError(TfpruneError):
    """Bad input (model, mask file, data source): reported as one line on stderr with exit status 2."""


# ------------------------------------------------------------------------------------------ inputs


def load_gated_model(model_file=None, model_name=None, num_classes=10, input_shape=None, width_multiplier=1.0):
    """The gated model to study: a saved ``.keras`` file, or a zoo model (untrained weights) by name.

    Exactly one of ``model_file`` / ``model_name``. Load and build failures become `UsageError`s that
    name the argument, instead of a traceback from deep inside Keras.
    """
    import keras

    import tfprune.structure.gates  # noqa: F401  (registers ChannelGate for deserialisation)

    if (model_file is None) == (model_name is None):
        raise UsageError("give exactly one of model_file (a .keras file) and model_name (a zoo model).")
    if model_file is not None:
        try:
            model = keras.saving.load_model(model_file, compile=False)
        except Exception as exc:  # corrupt file, unknown custom layer, ...
            raise UsageError(f"cannot load model_file {model_file!r}: {exc}") from exc
        require_gated(model, f"model_file {model_file!r}")
        return model
    from tfprune.models import build_model

    try:
        return build_model(
            model_name, num_classes=num_classes, input_shape=input_shape, width_multiplier=width_multiplier,
        )
    except ValueError as exc:
        raise UsageError(f"model_name {model_name!r}: {exc}") from exc


def require_gated(model, what="the model"):
    """A `UsageError` unless `model` has ChannelGate layers: a plain model has no masks to prune with,
    and exporting it as "pruned" would only copy it."""
    from tfprune.structure.gates import gates_of

    if not gates_of(model):
        raise UsageError(
            f"{what} is not a gated tfprune model (it has no ChannelGate layers), so there is nothing to prune. "
            "Use a run's WORKDIR/gated_model.keras, or gate a plain model with tfprune.auto_gate first.")


def _resize_to(images, shape):
    """float32 NHWC images -> model input shape (H, W, C): bilinear resize, channel repeat/trim."""
    import numpy as np
    import tensorflow as tf

    h, w, c = shape
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:3] != (h, w):
        images = tf.image.resize(images, (h, w)).numpy()
    if images.shape[-1] != c:
        reps = -(-c // images.shape[-1])
        images = np.concatenate([images] * reps, axis=-1)[..., :c]
    return images.astype(np.float32)


def representative_images(source, input_shape, num_calibration, num_verify, seed=0):
    """(calibration, verification) float32 images of ``input_shape`` from ``source``.

    For tfprune.data sources the calibration images come from the held-out slice of the training
    data and the verification images from the validation split, both with evaluation preprocessing
    (the normalisation the model was trained with). "random" draws standard-normal noise.
    """
    import numpy as np

    if source == "random":
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((num_calibration,) + tuple(input_shape)).astype(np.float32),
                rng.standard_normal((num_verify,) + tuple(input_shape)).astype(np.float32))
    try:
        from tfprune.data import DataError, build_datasets
    except ImportError as exc:
        raise UsageError(f"representative_source {source!r}: tfprune.data is not available ({exc}); "
                         "use 'random'.") from exc
    h, w, c = input_shape
    kwargs = {"channels": c} if source == "synthetic" else {}
    try:
        data = build_datasets(source, batch_size=64, image_size=(h, w), seed=seed, augment=False,
                              held_out_examples=min(num_calibration, 512), **kwargs)
    except DataError as exc:
        raise UsageError(f"representative_source {source!r}: {exc}") from exc
    return (_resize_to(_take(data.held_out, num_calibration), input_shape),
            _resize_to(_take(data.val, num_verify), input_shape))


def _take(dataset, n):
    import numpy as np

    images, count = [], 0
    for batch in dataset.as_numpy_iterator():
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        images.append(np.asarray(x, dtype=np.float32))
        count += len(x)
        if count >= n:
            break
    if not images:
        raise UsageError("the representative data source gave no images.")
    images = np.concatenate(images)
    if len(images) < n:  # small split: repeat
        images = np.concatenate([images] * (-(-n // len(images))))
    return images[:n]


# ------------------------------------------------------------------------------------------- study


def export_study(gated, output_dir, masks=None, *, quantize=QUANTIZATIONS, float_io=False,
                 representative_source="digits", num_calibration=128, num_verify=64, verify=True,
                 min_int8_agreement=None, trained_weights=True, baseline=True, threads=1, runs=50,
                 source=None, log=None, round_to=1):
    """Prune ``gated`` physically with ``masks``, export it (and the unpruned baseline), compare them.

    ``masks``: a mask dict, a JSON mask file, or None for the masks stored in the model's gates. The
    gates of ``gated`` are set to ``masks`` (it then computes the pruned sub-network; the compact model
    is checked against it). Writes into ``output_dir`` what `tfprune.deploy.export.export_all` writes for the
    pruned model, the baseline's exports under ``full/`` (unless ``baseline=False``) and
    ``export_summary.json``; returns that summary. ``min_int8_agreement`` defaults to 0.9, or to 0
    (reported, not enforced) with ``trained_weights=False``: untrained logits are near-ties that int8
    noise flips. Failed verifications are listed in ``summary["verification_failures"]`` (files and
    numbers are still written); bad input raises `UsageError`. ``source`` is recorded in the summary
    (where model and masks came from); ``log(line)`` receives the progress lines (default: print);
    ``round_to`` > 1 rounds kept counts to its multiples first (`tfprune.cost.channel_grid.round_masks`)."""
    import numpy as np

    from tfprune.cost.flops import CostModel
    from tfprune.structure.graph import ChannelGraph

    log = _say if log is None else log
    quantize = tuple(quantize)
    require_gated(gated)
    graph = ChannelGraph(gated, warn=False)
    if source is None:
        source = {"model_file": None, "model": None, "masks": _mask_path(masks)}
    masks = _rounded(_study_masks(gated, masks), round_to, graph)
    pruned, full = _compact_pair(gated, masks, graph, baseline)
    cost_model = CostModel(gated, graph=graph)
    input_shape = tuple(int(d) for d in gated.inputs[0].shape[1:])
    calibration, samples = representative_images(representative_source, input_shape, num_calibration, num_verify)
    # Surgery sanity check: the compact model computes what the masked gated model computes.
    gated_out, pruned_out = ex.keras_outputs(gated, samples[:16]), ex.keras_outputs(pruned, samples[:16])
    surgery_diff = float(np.max(np.abs(gated_out - pruned_out)))
    if min_int8_agreement is None:
        min_int8_agreement = _default_int8_agreement(trained_weights, "int8" in quantize and verify, log)
    options = dict(
        quantizations=quantize, representative_data=[calibration] if "int8" in quantize else None,
        sample_inputs=samples, verify=verify, int8_io=not float_io, min_top1_agreement=min_int8_agreement,
        latency=runs > 0, num_threads=threads, latency_runs=runs,
    )
    failures = []
    pruned_report = _export_one(pruned, output_dir, "pruned", options, failures, log)
    full_report = (_export_one(full, os.path.join(output_dir, "full"), "full", options, failures, log)
                   if full is not None else None)
    summary = {
        "source": source,
        "input_shape": list(input_shape),
        "representative_source": representative_source,
        "kept_channels": {k: int(np.count_nonzero(v)) for k, v in masks.items()},
        "round_to": int(round_to),
        "surgery_max_abs_diff": surgery_diff,
        "full": _side(cost_model.cost(), full_report, full),
        "pruned": _side(cost_model.cost(masks), pruned_report, pruned),
        "latency": {"num_threads": threads, "runs": runs, "batch_size": 1, "runtime": interpreter_runtime()[1]},
        "verification_failures": failures,
    }
    safe_write.write_json(os.path.join(output_dir, "export_summary.json"), summary, indent=2)
    return summary


def _rounded(masks, round_to, graph):
    """``masks`` with kept counts rounded to multiples of ``round_to`` (1: as given); a bad value is a
    UsageError."""
    from tfprune.cost.channel_grid import RoundingError, round_masks
    from tfprune.structure.masks import channel_importance

    try:
        return masks if round_to == 1 else round_masks(masks, round_to, channel_importance(graph))
    except RoundingError as exc:
        raise UsageError(str(exc).replace("JointPruner.round_to", "round_to")) from exc


def _default_int8_agreement(trained_weights, int8_verified, log):
    """0.9 for trained weights; 0 (reported, not enforced) for untrained ones, with a note saying so."""
    if trained_weights:
        return ex.DEFAULT_MIN_TOP1_AGREEMENT
    if int8_verified:
        log("note: untrained weights (a zoo model built by name) have near-tied logits: int8 top-1 "
            "agreement is reported, not enforced (set min_int8_agreement, --min_int8_agreement, to enforce).")
    return 0.0


def _say(line):
    print(line, flush=True)


def _mask_path(masks):
    return os.fspath(masks) if isinstance(masks, (str, os.PathLike)) else None


def _study_masks(gated, masks):
    """A mask dict from a dict, a JSON mask file or the model's gates (None). A file must name exactly
    the model's gates (a run's masks.json does): one from another model is a UsageError, not a partial
    sub-network."""
    from tfprune.structure.gates import gates_of
    from tfprune.structure.masks import load_masks, read_masks

    if masks is None:
        return read_masks(gated)
    if not isinstance(masks, (str, os.PathLike)):
        return masks
    try:
        loaded = load_masks(masks)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    gates = set(gates_of(gated))
    unknown, missing = sorted(set(loaded) - gates), sorted(gates - set(loaded))
    if unknown or missing:
        problems = ([f"names gates the model does not have {unknown}"] if unknown else []) + \
                   ([f"has no mask for the model's gates {missing}"] if missing else [])
        raise UsageError(f"masks do not fit the model: the mask file {os.fspath(masks)!r} {' and '.join(problems)}; "
                         "it was written for another model (use that model's masks.json).")
    return loaded


def _compact_pair(gated, masks, graph, baseline):
    """(pruned, full or None) compact models; sets the gated model's gates to ``masks`` afterwards.

    Masks that name unknown gates or have the wrong length are the user's to fix: UsageError.
    """
    from tfprune.structure.masks import MaskError, apply_masks, open_masks
    from tfprune.structure.surgery import compact_model

    try:
        pruned = compact_model(gated, masks, graph=graph)
        full = compact_model(gated, open_masks(graph), graph=graph) if baseline else None
        apply_masks(gated, masks)  # the gated model now computes the pruned sub-network
    except MaskError as exc:
        raise UsageError(f"masks do not fit the model: {exc}") from exc
    return pruned, full


def _export_one(model, out_dir, label, options, failures, log):
    """export_all of one side; a verification failure is appended to ``failures`` (the study goes on and
    reports it), a conversion failure is a UsageError (the model has ops TFLite cannot run)."""
    log(f"exporting {label} model -> {out_dir}")
    try:
        return ex.export_all(model, out_dir, **options)
    except ex.ExportVerificationError as exc:
        failures.append(f"{label}: {exc}")
        return exc.report
    except ex.TFLiteConversionError as exc:
        raise UsageError(f"{label} model: {exc}") from exc


def _side(cost, report, model):
    """One column of the summary: the cost model's numbers plus, when exported, sizes and latency."""
    import numpy as np

    entry = {"flops": float(cost.flops), "params": float(cost.params)}
    if model is not None:
        entry["keras_trainable_params"] = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    if report is not None:
        entry["saved_model_bytes"] = report["saved_model"]["size_bytes"]
        entry["tflite"] = report["tflite"]
    return entry


# ------------------------------------------------------------------------------------------ report


def _fmt_bytes(n):
    return "-" if n is None else (f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB")


def _fmt_ms(ms):
    return "-" if ms is None else f"{ms:.3f} ms"


def _ratio(a, b):
    return f"{b / a:.3f}x" if a and b is not None else "-"


def table_rows(summary, quantizations):
    """(label, full, pruned, pruned/full) text rows of a study summary, as `print_table` prints them."""
    full, pruned = summary["full"], summary["pruned"]
    rows = [
        ("params", f"{full['params'] / 1e6:.4f} M", f"{pruned['params'] / 1e6:.4f} M",
         _ratio(full["params"], pruned["params"])),
        ("FLOPs (MACs)", f"{full['flops'] / 1e6:.2f} M", f"{pruned['flops'] / 1e6:.2f} M",
         _ratio(full["flops"], pruned["flops"])),
        ("SavedModel size", _fmt_bytes(full.get("saved_model_bytes")), _fmt_bytes(pruned.get("saved_model_bytes")),
         _ratio(full.get("saved_model_bytes"), pruned.get("saved_model_bytes"))),
    ]
    for q in quantizations:
        fs, ps = full.get("tflite", {}).get(q, {}), pruned["tflite"].get(q, {})
        rows.append((f"TFLite {q} size", _fmt_bytes(fs.get("size_bytes")), _fmt_bytes(ps.get("size_bytes")),
                     _ratio(fs.get("size_bytes"), ps.get("size_bytes"))))
        rows.append((f"TFLite {q} latency", _fmt_ms(fs.get("latency_ms")), _fmt_ms(ps.get("latency_ms")),
                     _ratio(fs.get("latency_ms"), ps.get("latency_ms"))))
    for q in quantizations:
        v = pruned["tflite"].get(q, {}).get("verification")
        if v:
            rows.append((f"verify {q} (pruned)",
                         f"max|d| {v['max_abs_diff']:.2g}", f"top-1 {v['top1_agreement']:.3f}",
                         "ok" if v["passed"] else "FAILED"))
    return rows


def print_table(summary, quantizations, stream=None):
    """Prints the full-vs-pruned table of a study summary (``stream`` defaults to stdout)."""
    stream = sys.stdout if stream is None else stream
    rows = table_rows(summary, quantizations)
    header = ("", "full", "pruned", "pruned/full")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header), file=stream)
    print("  ".join("-" * w for w in widths), file=stream)
    for r in rows:
        print(line.format(*r), file=stream)


# -------------------------------------------------------------------------------------- command line


def build_parser():
    """The argparse parser of ``tools/export.py``."""
    p = argparse.ArgumentParser(
        prog="tools/export.py",
        description=(
            "Physically prune a gated tfprune model with its channel masks "
            "(tfprune.structure.surgery.compact_model) and export the smaller model as a TF SavedModel and TFLite "
            "flatbuffers (float, dynamic-range, full int8), verify each against the Keras model, and print "
            "full-vs-pruned params, FLOPs, file sizes and TFLite latency."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_model_arguments(p)
    _add_export_arguments(p)
    lat = p.add_argument_group("latency (LiteRT interpreter on this machine's CPU, batch 1)")
    lat.add_argument("--threads", type=int, default=1, help="Interpreter threads.")
    lat.add_argument("--runs", type=int, default=50, help="Timed runs (median reported); 0 skips latency.")
    return p


def _add_model_arguments(p):
    src = p.add_argument_group("model (exactly one of --model_file / --model)")
    g = src.add_mutually_exclusive_group(required=True)
    g.add_argument("--model_file", metavar="PATH",
                   help="A .keras file of a gated model (with ChannelGate layers), e.g. WORKDIR/gated_model.keras.")
    g.add_argument("--model", metavar="NAME",
                   help="Build this zoo model (tfprune.models.build_model) with UNTRAINED weights, for a "
                        "size/latency study; requires --masks.")
    src.add_argument("--masks", metavar="PATH",
                     help="JSON mask file {gate_name: [0/1, ...]} (tfprune.structure.masks.save_masks) naming every gate of "
                          "the model, e.g. WORKDIR/masks.json. With --model_file it defaults to the masks stored "
                          "in the model's gates.")
    src.add_argument("--round_to", type=int, default=1,
                     help="Round every group's kept channel count to the nearest multiple of N first (adding the "
                          "most important pruned channels or dropping the least important kept ones; groups "
                          "smaller than N stay whole): for masks chosen without JointPruner.round_to. 1 = as given.")
    src.add_argument("--num_classes", type=int, default=10, help="Logits of the zoo model (--model only).")
    src.add_argument("--input_shape", metavar="H,W,C", default=None,
                     help="Input shape of the zoo model (--model only); default: the zoo's (32,32,3 for CIFAR "
                          "models, 224,224,3 for ImageNet ones).")
    src.add_argument("--width_multiplier", type=float, default=1.0,
                     help="Channel width multiplier of the zoo model (--model only).")


def _add_export_arguments(p):
    out = p.add_argument_group("export")
    out.add_argument("--output_dir", metavar="DIR", required=True, help="Where the exports are written.")
    out.add_argument("--quantize", default="float,dynamic,int8",
                     help="Comma-separated TFLite variants: float (float32), dynamic (int8 weights, float "
                          "activations), int8 (full integer, calibrated on --representative_source).")
    out.add_argument("--float_io", action="store_true",
                     help="int8 variant: keep float32 input/output tensors (int8 inside). Default: int8 "
                          "input/output tensors, what NPUs/DSPs want.")
    out.add_argument("--representative_source", choices=SOURCES, default="digits",
                     help="Images for int8 calibration (the held-out slice of the training data) and for "
                          "verification (the validation split), via tfprune.data.build_datasets with "
                          "evaluation preprocessing at the model's input size: 'digits' (scikit-learn's "
                          "embedded digits) or 'synthetic' (class templates plus noise). 'random' = "
                          "standard-normal noise, used only when asked for (noise gives poor int8 ranges).")
    out.add_argument("--num_calibration", type=int, default=128,
                     help="Samples used to calibrate int8 activation ranges.")
    out.add_argument("--num_verify", type=int, default=64,
                     help="Samples on which each TFLite model is compared with the Keras model.")
    out.add_argument("--no_verify", action="store_true",
                     help="Skip the TFLite-vs-Keras checks (float: max diff <= 1e-4 x output scale; dynamic: "
                          "<= 0.1 x scale; int8: top-1 agreement >= --min_int8_agreement).")
    out.add_argument("--min_int8_agreement", type=float, default=None,
                     help="Required int8 top-1 agreement with the Keras model. Default 0.9 for --model_file; "
                          "0 (reported, not enforced) for --model, whose untrained logits are near-ties.")
    out.add_argument("--no_baseline", action="store_true",
                     help="Do not export the unpruned model (saves time; the table then shows its params "
                          "and FLOPs only).")


def parse_args(parser, argv=None):
    """Parses and checks ``argv``; bad arguments exit with status 2 (argparse's ``parser.error``)."""
    args = parser.parse_args(argv)
    if args.model_file is not None and not os.path.isfile(args.model_file):
        parser.error(f"--model_file {args.model_file!r} does not exist (expected a .keras file).")
    if args.model is not None and args.masks is None:
        parser.error("--model NAME needs --masks PATH (the sub-network to prune to).")
    if args.masks is not None and not os.path.isfile(args.masks):
        parser.error(f"--masks {args.masks!r} does not exist (expected a JSON file {{gate_name: [0/1, ...]}}).")
    quantize = tuple(q.strip() for q in args.quantize.split(",") if q.strip())
    bad = [q for q in quantize if q not in QUANTIZATIONS]
    if bad or not quantize:
        parser.error(f"--quantize: unknown {bad or quantize}; choose from {','.join(QUANTIZATIONS)}.")
    args.quantize = quantize
    if args.input_shape is not None:
        try:
            args.input_shape = tuple(int(v) for v in args.input_shape.split(","))
            assert len(args.input_shape) == 3
        except (ValueError, AssertionError):
            parser.error(f"--input_shape must be H,W,C (three integers), got {args.input_shape!r}.")
    if args.threads < 1 or args.runs < 0 or args.num_calibration < 1 or args.num_verify < 1 or args.round_to < 1:
        parser.error("--threads, --num_calibration, --num_verify and --round_to must be >= 1 and --runs >= 0.")
    return args


def run(args):
    """Runs the study for parsed arguments and prints the table; returns the exit status (0, or 1 when a
    converted model failed verification). Raises UsageError on bad input."""
    gated = load_gated_model(args.model_file, args.model, num_classes=args.num_classes,
                             input_shape=args.input_shape, width_multiplier=args.width_multiplier)
    summary = export_study(
        gated, args.output_dir, args.masks, quantize=args.quantize, float_io=args.float_io,
        representative_source=args.representative_source, num_calibration=args.num_calibration,
        num_verify=args.num_verify, verify=not args.no_verify, min_int8_agreement=args.min_int8_agreement,
        trained_weights=args.model is None, baseline=not args.no_baseline, threads=args.threads,
        runs=args.runs, source={"model_file": args.model_file, "model": args.model, "masks": args.masks},
        round_to=args.round_to,
    )
    print()
    print_table(summary, args.quantize)
    print(f"\ncompact vs masked gated model: max |diff| = {summary['surgery_max_abs_diff']:.2g}")
    print(f"wrote {args.output_dir} (export_report.json, export_summary.json)")
    if summary["verification_failures"]:
        print("\nVERIFICATION FAILED:\n" + "\n".join(summary["verification_failures"]), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    """``tools/export.py``: exit status 0 on success, 1 when a converted model fails verification, 2 on
    bad arguments or input files."""
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        return run(args)
    except TfpruneError as exc:  # UsageError, and a failed write (safe_write.WriteError: disk full, ...)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
