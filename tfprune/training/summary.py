"""`finish`: the run's results. The summary (FLOPs, parameters, accuracies, kept channels); on the chief
also the compact model, its SavedModel/TFLite exports and their latency, history.json, summary.json (last:
it marks the run complete) and the plots."""

import json
import time

from tfprune.cost.flops import CostModel
from tfprune.cost.latency import predicted_latency_ms
from tfprune.deploy.latency_report import summary_latency
from tfprune.errors import TrainingError
from tfprune.infra import workdir as files
from tfprune.infra.environment import environment
from tfprune.structure.masks import kept_counts
from tfprune.structure.surgery import compact_model


def finish(ctx, pruner, compact, selected, accuracy, quantizations, cost=None):
    """The summary; on the chief also the compact model, exports, history.json, summary.json, plots.

    ``cost``: the run's schedule and the wall seconds of its phases so far ({"schedule": ...,
    "phase_seconds": ...}), completed here with the export's: what a cost study reads."""
    summary = _summary(ctx, pruner, compact, selected, accuracy)
    summary.update(cost or {})
    if not ctx.run_dir.is_chief:
        return summary
    t0 = time.time()
    summary.update(_export(ctx, compact, pruner.held_out_images, quantizations))
    if "float" in summary["tflite"]:  # measured LiteRT latency of the full and compact models, beside the FLOPs
        summary.update(summary_latency(compact_model(pruner.model, graph=pruner.graph), summary["tflite"]["float"],
                                       predicted_latency_ms(pruner.budget.cost_model, selected.masks)))
    if "phase_seconds" in summary:
        summary["phase_seconds"] = {**summary["phase_seconds"], "export": time.time() - t0}
    ctx.run_dir.write_json(files.HISTORY, pruner.history)
    ctx.run_dir.write_json(files.SUMMARY, summary)
    try:  # plots are a convenience: never fail a finished run over them
        from tfprune.training.plots import write_run_plots

        write_run_plots(ctx.run_dir.root, summary, pruner.history)
    except Exception as e:  # noqa: BLE001
        print(f"warning: run plots not written: {type(e).__name__}: {e}", flush=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "kept_channels"}, indent=2))
    return summary


def _summary(ctx, pruner, compact, selected, accuracy):
    full, pruned = pruner.cost(), pruner.cost(selected.masks)
    compact_flops = CostModel(compact).full.flops
    if abs(compact_flops - pruned.flops) > 1e-6 * max(1.0, pruned.flops):
        raise TrainingError(f"Compact model FLOPs {compact_flops} differ from the counter's {pruned.flops}.")
    return {
        "model": pruner.model.name,
        "dataset": ctx.data.info.name,
        "flops_full": full.flops,
        "flops_pruned": pruned.flops,
        "flops_ratio": pruned.flops / full.flops,
        "params_full": full.params,
        "params_pruned": pruned.params,
        "val_accuracy_full_model": selected.record["val_accuracy_full_model"],
        "val_accuracy_masked_before_finetune": selected.record["val_accuracy_masked_before_finetune"],
        "val_accuracy_pruned": accuracy["val"],
        "held_out_accuracy_pruned": accuracy["held_out"],  # training images never trained on: for choosing settings
        "kept_channels": kept_counts(selected.masks),
        "environment": environment(),  # a deterministic run repeats on one machine and stack, not across them
    }


def _export(ctx, compact, held_out_images, quantizations):
    """The compact model saved and exported; a TFLite file that fails its verification is recorded
    (``export_verification_failures``, also in the export's report) instead of losing the finished run:
    the accuracies stand, and `tfprune train` exits with status 3 on such a run (`tfprune.cli.commands`)."""
    from tfprune.deploy.export import ExportVerificationError, export_all

    compact_path = ctx.run_dir.save_model(files.COMPACT_MODEL, compact)
    val_images = next(iter(ctx.data.val))[0].numpy()
    try:
        report = export_all(compact, ctx.run_dir.write_path(files.EXPORT), quantizations=quantizations,
                            representative_data=[held_out_images[i:i + 32] for i in range(0, len(held_out_images), 32)],
                            sample_inputs=val_images, latency_runs=20)
    except ExportVerificationError as e:  # raised once every file and the report are written
        print(f"warning: {e}", flush=True)
        report = e.report
    return {
        "compact_model": compact_path,
        "saved_model": report["saved_model"]["path"],
        "tflite": {q: entry["path"] for q, entry in report["tflite"].items()},
        "tflite_latency_ms": {q: entry.get("latency_ms") for q, entry in report["tflite"].items()},
        "export_verification_failures": report["verification_failures"],
    }
