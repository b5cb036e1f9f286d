"""The joint train-and-prune schedule: phases, checkpoints and results of one run.

Schedule (`run`): warm-up epochs (weights only) -> joint epochs (weights with alignment, then one
agent step) -> selection of the final sub-network -> physical pruning -> fine-tuning of the compact
model -> evaluation -> SavedModel/TFLite export and `summary.json`. Each phase returns what the next
one needs. `tfprune.training.weight_trainer` defines the training steps, `tfprune.infra.workdir` every file of the
run, `tfprune.training.run_log` what is printed and logged.

Everything that survives a crash lives in the workdir: a checkpoint per epoch, and optionally every N
steps (model, optimizer, agent, dynamics model, alignment, epoch and step counters) plus the pruner's
JSON state; then the selection, masks and gated model once the sub-network is chosen; then
fine-tuning checkpoints. Re-running the same command resumes from the last of these.
"""

import dataclasses
import json
import time

import gin
import keras
import tensorflow as tf

from tfprune.infra import determinism
from tfprune.infra import workdir as files
from tfprune.data import build_datasets
from tfprune.infra.distribute import make_broadcast, make_strategy, worker_role
from tfprune.infra.environment import environment
from tfprune.errors import TrainingError
from tfprune.cost.flops import CostModel
from tfprune.cost.latency import predicted_latency_ms
from tfprune.deploy.latency_report import summary_latency
from tfprune.structure.masks import apply_masks, kept_counts, load_masks, save_masks
from tfprune.models import build_model
from tfprune.search.policy import check_resumable
from tfprune.pruning.pruner import JointPruner
from tfprune.training.run_log import RunLog
from tfprune.structure.surgery import compact_model
from tfprune.training.weight_trainer import WeightTrainer, make_optimizer

__all__ = ["TrainingError", "run"]


@dataclasses.dataclass
class RunContext:
    """What every phase of one run shares."""

    strategy: tf.distribute.Strategy
    workdir: files.Workdir
    data: object  # tfprune.data.Datasets
    log: RunLog


@dataclasses.dataclass
class Selected:
    """The joint phase's result: the sub-network, its record (selection.json) and the gated model."""

    masks: dict
    record: dict
    gated_model: keras.Model


@gin.configurable
def run(workdir, model_name=gin.REQUIRED, epochs=10, warmup_epochs=2, finetune_epochs=5,
        finetune_learning_rate=0.01, width_multiplier=1.0, export_quantizations=("float", "dynamic", "int8"),
        seed=0, deterministic=False, checkpoint_every_steps=0, strategy=None):
    """Runs (or resumes) the whole joint train-and-prune job in `workdir`; returns the summary dict.

    Args:
        deterministic: deterministic kernels and one inter-op thread (`tfprune.infra.determinism`), so the
            same seed and config give the same masks and metrics (slower on GPU).
        checkpoint_every_steps: also checkpoint every this many training steps inside an epoch of the
            joint phase (0: only at epoch ends), so a kill on a long ImageNet epoch loses at most that
            many steps. A resumed epoch skips the batches already trained on.
    """
    done = files.completed_summary(workdir)
    if done is not None:
        print(f"{workdir}/{files.SUMMARY} exists: this run is complete (use a new --workdir to train again).")
        return done
    if not 0 <= warmup_epochs < epochs:
        raise TrainingError(f"Need 0 <= warmup_epochs < epochs for at least one agent step; got warmup_epochs="
                            f"{warmup_epochs}, epochs={epochs}.")
    if deterministic:
        determinism.enable()  # before TensorFlow's runtime starts: the inter-op pool is fixed from then on
    strategy = strategy or make_strategy()  # first op: multi-worker collectives must be set up before any op
    is_chief, role = worker_role(strategy)
    if is_chief:
        files.check_not_busy(workdir)  # a second job on the workdir stops now, not after its set-up
    keras.utils.set_random_seed(seed)
    data = build_datasets(seed=seed)
    with strategy.scope():
        model = _build_model(model_name, data.info, width_multiplier)
    with strategy.scope():
        pruner = JointPruner(model, data.held_out, max_epochs=epochs, warmup_epochs=warmup_epochs, seed=seed,
                             broadcast=make_broadcast(strategy, is_chief))
    # Bad input (data, model, budget) has failed by now, so nothing was written; from here on the
    # chief holds the workdir's lock (released when the run ends, normally or not).
    with files.Workdir(workdir, is_chief, role) as run_dir:
        run_dir.write_text(files.CONFIG, gin.config_str())
        ctx = RunContext(strategy, run_dir, data, RunLog(run_dir.outdir, epochs))
        selected = JointPhase(ctx, model, pruner, epochs, warmup_epochs, checkpoint_every_steps).run()
        compact, accuracy = finetune(ctx, selected, finetune_epochs, finetune_learning_rate,
                                     first_data_epoch=epochs + 1)
        return finish(ctx, pruner, compact, selected, accuracy, export_quantizations)


def _build_model(model_name, info, width_multiplier):
    try:
        return build_model(model_name, num_classes=info.num_classes, input_shape=info.image_shape,
                           width_multiplier=width_multiplier)
    except ValueError as e:
        if "Unknown model" in str(e):
            raise TrainingError(f"{e} (gin: run.model_name)") from e
        raise TrainingError(
            f"Cannot build {model_name} for {info.name} images of shape {info.image_shape}: {e}. The images may be "
            "too small for the model's downsampling (ImageNet models need about 32x32 or more): set "
            "build_datasets.image_size."
        ) from e


class JointPhase:
    """Warm-up and joint epochs (weights, alignment, one agent step per epoch), then the selection."""

    def __init__(self, ctx, model, pruner, epochs, warmup_epochs, checkpoint_every_steps=0):
        self.ctx = ctx
        self.model = model
        self.pruner = pruner
        self.epochs = int(epochs)
        self.warmup_epochs = int(warmup_epochs)
        self.checkpoint_every_steps = int(checkpoint_every_steps)
        with ctx.strategy.scope():
            optimizer = make_optimizer(total_steps=epochs * ctx.data.steps_per_epoch)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        self.trainer = WeightTrainer(ctx.strategy, model, optimizer, ctx.data.batch_size, regularizer=pruner.penalty)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch,
                                              step_in_epoch=self.step_in_epoch, **pruner.checkpoint_items())
        self.manager = ctx.workdir.checkpoint_manager(files.JOINT_CHECKPOINTS, self.checkpoint)

    def run(self):
        """Trains (resuming from the workdir) and selects; returns a `Selected`."""
        run_dir = self.ctx.workdir
        if run_dir.exists(files.SELECTION):
            return self._already_selected()
        for newest in run_dir.checkpoints(files.JOINT_CHECKPOINTS)[:1]:
            check_resumable(self.pruner.policy, newest)
        run_dir.restore(files.JOINT_CHECKPOINTS, self.checkpoint, self._load_pruner_state)
        for epoch in range(int(self.epoch.numpy()), self.epochs):
            self._train_epoch(epoch)
        return self._select()

    def _already_selected(self):
        print("Sub-network already selected; skipping to fine-tuning.")
        run_dir = self.ctx.workdir
        state = run_dir.newest_pruner_state()
        if state is not None:  # the agent's history, for history.json and the plots
            self.pruner.set_state(state)
        with self.ctx.strategy.scope():
            gated = keras.saving.load_model(run_dir.read_path(files.GATED_MODEL))
        return Selected(load_masks(run_dir.read_path(files.MASKS)), run_dir.read_json(files.SELECTION), gated)

    def _train_epoch(self, epoch):
        data = self.ctx.data
        t0 = time.time()
        start = int(self.step_in_epoch.numpy())
        if start:
            print(f"Resuming epoch {epoch + 1} at step {start}.")
        strength = self.pruner.update_alignment(epoch)
        stats = self.trainer.train_epoch(data.train_epoch(epoch), data.steps_per_epoch,
                                         f"epoch {epoch + 1}/{self.epochs}",
                                         epoch * data.steps_per_epoch, start_step=start,
                                         after_step=self._mid_epoch_checkpoint)
        weight_seconds = time.time() - t0
        agent = self.pruner.agent_step(epoch) if epoch >= self.warmup_epochs else None
        val = self.trainer.evaluate(data.val)
        self.ctx.log.joint_epoch(epoch, stats, val, strength, time.time() - t0, weight_seconds, agent, self.pruner)
        self.epoch.assign(epoch + 1)
        self.step_in_epoch.assign(0)
        self._save()

    def _mid_epoch_checkpoint(self, done):
        every = self.checkpoint_every_steps
        if every and done % every == 0 and done < self.ctx.data.steps_per_epoch:
            self.step_in_epoch.assign(done)
            self._save()

    def _save(self):
        # The pruner's JSON state first: a checkpoint never exists without its state.
        self.ctx.workdir.write_pruner_state(int(self.checkpoint.save_counter.numpy()) + 1, self.pruner.get_state())
        self.manager.save()

    def _load_pruner_state(self, number):
        self.pruner.set_state(self.ctx.workdir.read_pruner_state(number))

    def _select(self):
        run_dir, data = self.ctx.workdir, self.ctx.data
        val_full = self.trainer.evaluate(data.val)
        choice = self.pruner.select(self.epochs - 1)
        apply_masks(self.model, choice.masks)
        # The compact model starts from these statistics; epoch index `epochs` is the recalibration's.
        self.trainer.recalibrate_batchnorm(data.train_epoch(self.epochs))
        record = {"reward": choice.reward, "flops_ratio": choice.flops_ratio, "val_accuracy_full_model": val_full,
                  "val_accuracy_masked_before_finetune": self.trainer.evaluate(data.val)}
        save_masks(choice.masks, run_dir.write_path(files.MASKS))
        run_dir.save_model(files.GATED_MODEL, self.model)
        run_dir.write_json(files.SELECTION, record)  # last: marks the phase as done
        print(f"Selected sub-network: FLOPs ratio {choice.flops_ratio:.3f}, held-out reward {choice.reward:.3f}, "
              f"full-model val accuracy {val_full:.4f}")
        return Selected(choice.masks, record, self.model)


def finetune(ctx, selected, finetune_epochs, learning_rate, first_data_epoch=0):
    """Physically prunes the gated model and fine-tunes the compact model (resumable); returns the
    compact model and its accuracy {"val": on the validation split, "held_out": on the held-out
    training images}. The held-out one is what settings may be chosen on: it sees the whole pipeline
    (search, alignment, cut, fine-tuning) yet never the validation split. Fine-tuning epoch e reads
    the data of epoch `first_data_epoch + e` (`Datasets.train_epoch`), after the joint phase's."""
    data = ctx.data
    with ctx.strategy.scope():
        compact = compact_model(selected.gated_model, selected.masks)
        optimizer = make_optimizer(total_steps=max(1, finetune_epochs * data.steps_per_epoch),
                                   learning_rate=learning_rate)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="finetune_epoch")
    trainer = WeightTrainer(ctx.strategy, compact, optimizer, data.batch_size)
    checkpoint = tf.train.Checkpoint(model=compact, optimizer=optimizer, epoch=epoch)
    manager = ctx.workdir.checkpoint_manager(files.FINETUNE_CHECKPOINTS, checkpoint)
    ctx.workdir.restore(files.FINETUNE_CHECKPOINTS, checkpoint)
    for e in range(int(epoch.numpy()), finetune_epochs):
        stats = trainer.train_epoch(data.train_epoch(first_data_epoch + e), data.steps_per_epoch,
                                    f"finetune {e + 1}/{finetune_epochs}")
        ctx.log.finetune_epoch(e, finetune_epochs, stats, trainer.evaluate(data.val))
        epoch.assign(e + 1)
        manager.save()
    return compact, {"val": trainer.evaluate(data.val), "held_out": trainer.evaluate(data.held_out)}


def finish(ctx, pruner, compact, selected, accuracy, quantizations):
    """The summary; on the chief also the compact model, exports, history.json, summary.json, plots."""
    summary = _summary(ctx, pruner, compact, selected, accuracy)
    if not ctx.workdir.is_chief:
        return summary
    summary.update(_export(ctx, compact, pruner.held_out_images, quantizations))
    if "float" in summary["tflite"]:  # measured LiteRT latency of the full and compact models, beside the FLOPs
        summary.update(summary_latency(compact_model(pruner.model, graph=pruner.graph), summary["tflite"]["float"],
                                       predicted_latency_ms(pruner.budget.cost_model, selected.masks)))
    ctx.workdir.write_json(files.HISTORY, pruner.history)
    ctx.workdir.write_json(files.SUMMARY, summary)
    try:  # plots are a convenience: never fail a finished run over them
        from tfprune.training.plots import write_run_plots

        write_run_plots(ctx.workdir.root, summary, pruner.history)
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
    from tfprune.deploy.export import export_all

    compact_path = ctx.workdir.save_model(files.COMPACT_MODEL, compact)
    val_images = next(iter(ctx.data.val))[0].numpy()
    report = export_all(compact, ctx.workdir.write_path(files.EXPORT), quantizations=quantizations,
                        representative_data=[held_out_images[i:i + 32] for i in range(0, len(held_out_images), 32)],
                        sample_inputs=val_images, latency_runs=20)
    return {
        "compact_model": compact_path,
        "saved_model": report["saved_model"]["path"],
        "tflite": {q: entry["path"] for q, entry in report["tflite"].items()},
        "tflite_latency_ms": {q: entry.get("latency_ms") for q, entry in report["tflite"].items()},
    }
