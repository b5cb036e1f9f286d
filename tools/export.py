#!/usr/bin/env python
"""Prune a gated model physically and export it (SavedModel + TFLite float / dynamic / int8).

Examples::

    # a trained gated model written by training (masks stored in its gates, or from a mask file)
    python tools/export.py --model_file WORKDIR/gated_model.keras --masks WORKDIR/masks.json \\
        --output_dir WORKDIR/export

    # size / latency study of a zoo architecture with untrained weights
    python tools/export.py --model resnet20 --masks masks.json --output_dir /tmp/resnet20_export

Writes into --output_dir: the pruned model's ``saved_model/``, ``model_<quantization>.tflite``,
``export_report.json`` (tfprune.export.export_all), the unpruned baseline's exports under ``full/``
(unless --no_baseline), and ``export_summary.json`` with the full-vs-pruned comparison printed at the end.

Exit status: 0 on success, 1 when a converted model fails verification, 2 on bad arguments or input
files (missing model/mask file, masks that do not fit the model, unavailable data).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfprune  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

QUANTIZATIONS = ("float", "dynamic", "int8")
SOURCES = ("digits", "synthetic", "random")


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit status 2."""


def build_parser():
    p = argparse.ArgumentParser(
        prog="tools/export.py",
        description=(
            "Physically prune a gated tfprune model with its channel masks "
            "(tfprune.surgery.compact_model) and export the smaller model as a TF SavedModel and TFLite "
            "flatbuffers (float, dynamic-range, full int8), verify each against the Keras model, and print "
            "full-vs-pruned params, FLOPs, file sizes and TFLite latency."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_argument_group("model (exactly one of --model_file / --model)")
    g = src.add_mutually_exclusive_group(required=True)
    g.add_argument("--model_file", metavar="PATH",
                   help="A .keras file of a gated model (with ChannelGate layers), e.g. WORKDIR/gated_model.keras.")
    g.add_argument("--model", metavar="NAME",
                   help="Build this zoo model (tfprune.models.build_model) with UNTRAINED weights, for a "
                        "size/latency study; requires --masks.")
    src.add_argument("--masks", metavar="PATH",
                     help="JSON mask file {gate_name: [0/1, ...]} (tfprune.masks.save_masks). With --model_file "
                          "it defaults to the masks stored in the model's gates; gates missing from the file "
                          "keep all channels.")
    src.add_argument("--num_classes", type=int, default=10, help="Logits of the zoo model (--model only).")
    src.add_argument("--input_shape", metavar="H,W,C", default=None,
                     help="Input shape of the zoo model (--model only); default: the zoo's (32,32,3 for CIFAR "
                          "models, 224,224,3 for ImageNet ones).")
    src.add_argument("--width_multiplier", type=float, default=1.0,
                     help="Channel width multiplier of the zoo model (--model only).")

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

    lat = p.add_argument_group("latency (TFLite interpreter on this machine's CPU, batch 1)")
    lat.add_argument("--threads", type=int, default=1, help="Interpreter threads.")
    lat.add_argument("--runs", type=int, default=50, help="Timed runs (median reported); 0 skips latency.")
    return p


# ------------------------------------------------------------------------------------------ inputs


def _parse_args(parser, argv):
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
    if args.threads < 1 or args.runs < 0 or args.num_calibration < 1 or args.num_verify < 1:
        parser.error("--threads, --num_calibration and --num_verify must be >= 1 and --runs >= 0.")
    return args


def load_gated_model(args):
    import keras

    import tfprune.gates  # noqa: F401  (registers ChannelGate for deserialisation)

    if args.model_file is not None:
        try:
            return keras.saving.load_model(args.model_file, compile=False)
        except Exception as exc:  # corrupt file, unknown custom layer, ...
            raise UsageError(f"cannot load --model_file {args.model_file!r}: {exc}") from exc
    from tfprune.models import build_model

    try:
        return build_model(
            args.model, num_classes=args.num_classes, input_shape=args.input_shape,
            width_multiplier=args.width_multiplier,
        )
    except ValueError as exc:
        raise UsageError(f"--model {args.model!r}: {exc}") from exc


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
        raise UsageError(f"--representative_source {source}: tfprune.data is not available ({exc}); "
                         "use --representative_source random.") from exc
    h, w, c = input_shape
    kwargs = {"channels": c} if source == "synthetic" else {}
    try:
        data = build_datasets(source, batch_size=64, image_size=(h, w), seed=seed, augment=False,
                              held_out_examples=min(num_calibration, 512), **kwargs)
    except DataError as exc:
        raise UsageError(f"--representative_source {source}: {exc}") from exc
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


# ------------------------------------------------------------------------------------------ report


def _fmt_bytes(n):
    return "-" if n is None else (f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB")


def _fmt_ms(ms):
    return "-" if ms is None else f"{ms:.3f} ms"


def print_table(summary, quantizations, stream=sys.stdout):
    full, pruned = summary["full"], summary["pruned"]

    def ratio(a, b):
        return f"{b / a:.3f}x" if a and b is not None else "-"

    rows = [
        ("params", f"{full['params'] / 1e6:.4f} M", f"{pruned['params'] / 1e6:.4f} M",
         ratio(full["params"], pruned["params"])),
        ("FLOPs (MACs)", f"{full['flops'] / 1e6:.2f} M", f"{pruned['flops'] / 1e6:.2f} M",
         ratio(full["flops"], pruned["flops"])),
    ]
    for key, label in (("saved_model_bytes", "SavedModel size"),):
        rows.append((label, _fmt_bytes(full.get(key)), _fmt_bytes(pruned.get(key)),
                     ratio(full.get(key), pruned.get(key))))
    for q in quantizations:
        fs, ps = full.get("tflite", {}).get(q, {}), pruned["tflite"].get(q, {})
        rows.append((f"TFLite {q} size", _fmt_bytes(fs.get("size_bytes")), _fmt_bytes(ps.get("size_bytes")),
                     ratio(fs.get("size_bytes"), ps.get("size_bytes"))))
        rows.append((f"TFLite {q} latency", _fmt_ms(fs.get("latency_ms")), _fmt_ms(ps.get("latency_ms")),
                     ratio(fs.get("latency_ms"), ps.get("latency_ms"))))
    for q in quantizations:
        v = pruned["tflite"].get(q, {}).get("verification")
        if v:
            rows.append((f"verify {q} (pruned)",
                         f"max|d| {v['max_abs_diff']:.2g}", f"top-1 {v['top1_agreement']:.3f}",
                         "ok" if v["passed"] else "FAILED"))
    header = ("", "full", "pruned", "pruned/full")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header), file=stream)
    print("  ".join("-" * w for w in widths), file=stream)
    for r in rows:
        print(line.format(*r), file=stream)


# ------------------------------------------------------------------------------------------ main


def run(args):
    import numpy as np

    from tfprune import export as ex
    from tfprune.flops import CostModel
    from tfprune.graph import ChannelGraph
    from tfprune.masks import MaskError, apply_masks, load_masks, open_masks, read_masks
    from tfprune.surgery import compact_model

    gated = load_gated_model(args)
    graph = ChannelGraph(gated, warn=False)
    if args.masks is not None:
        try:
            masks = load_masks(args.masks)
        except (OSError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
    else:
        masks = read_masks(gated)
    try:
        pruned = compact_model(gated, masks, graph=graph)
        full = compact_model(gated, open_masks(graph), graph=graph) if not args.no_baseline else None
        apply_masks(gated, masks)  # the gated model now computes the pruned sub-network
    except MaskError as exc:
        raise UsageError(f"masks do not fit the model: {exc}") from exc

    cost_model = CostModel(gated, graph=graph)
    full_cost, pruned_cost = cost_model.cost(), cost_model.cost(masks)
    input_shape = tuple(int(d) for d in gated.inputs[0].shape[1:])

    calibration, samples = representative_images(
        args.representative_source, input_shape, args.num_calibration, args.num_verify)

    # Surgery sanity check: the compact model computes what the masked gated model computes.
    surgery_diff = float(np.max(np.abs(
        ex._keras_outputs(gated, samples[:16]) - ex._keras_outputs(pruned, samples[:16])
    )))

    min_agreement = args.min_int8_agreement
    if min_agreement is None:
        min_agreement = ex.DEFAULT_MIN_TOP1_AGREEMENT if args.model_file else 0.0
        if args.model is not None and "int8" in args.quantize and not args.no_verify:
            print("note: --model builds untrained weights (near-tied logits): int8 top-1 agreement is "
                  "reported, not enforced (set --min_int8_agreement to enforce).")

    common = dict(
        quantizations=args.quantize,
        representative_data=[calibration] if "int8" in args.quantize else None,
        sample_inputs=samples,
        verify=not args.no_verify,
        int8_io=not args.float_io,
        min_top1_agreement=min_agreement,
        latency=args.runs > 0,
        num_threads=args.threads,
        latency_runs=args.runs,
    )
    failures = []

    def export(model, out_dir, label):
        print(f"exporting {label} model -> {out_dir}", flush=True)
        try:
            return ex.export_all(model, out_dir, **common)
        except ex.ExportVerificationError as exc:
            failures.append(f"{label}: {exc}")
            return exc.report
        except ex.TFLiteConversionError as exc:
            raise UsageError(f"{label} model: {exc}") from exc

    pruned_report = export(pruned, args.output_dir, "pruned")
    full_report = export(full, os.path.join(args.output_dir, "full"), "full") if full is not None else None

    def side(cost, report, model):
        entry = {"flops": float(cost.flops), "params": float(cost.params)}
        if model is not None:
            entry["keras_trainable_params"] = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
        if report is not None:
            entry["saved_model_bytes"] = report["saved_model"]["size_bytes"]
            entry["tflite"] = report["tflite"]
        return entry

    summary = {
        "source": {"model_file": args.model_file, "model": args.model, "masks": args.masks},
        "input_shape": list(input_shape),
        "representative_source": args.representative_source,
        "kept_channels": {k: int(np.count_nonzero(v)) for k, v in masks.items()},
        "surgery_max_abs_diff": surgery_diff,
        "full": side(full_cost, full_report, full),
        "pruned": side(pruned_cost, pruned_report, pruned),
        "latency": {"num_threads": args.threads, "runs": args.runs, "batch_size": 1},
        "verification_failures": failures,
    }
    with open(os.path.join(args.output_dir, "export_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print()
    print_table(summary, args.quantize)
    print(f"\ncompact vs masked gated model: max |diff| = {surgery_diff:.2g}")
    print(f"wrote {args.output_dir} (export_report.json, export_summary.json)")
    if failures:
        print("\nVERIFICATION FAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = build_parser()
    args = _parse_args(parser, argv)
    try:
        return run(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
