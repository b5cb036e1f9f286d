"""The distributed custom training loop and the joint train-and-prune schedule.

Schedule (`run`): warm-up epochs (weights only) -> joint epochs (weights with alignment, then one
agent step) -> selection of the final sub-network -> physical pruning -> fine-tuning of the compact
model -> evaluation -> SavedModel/TFLite export and `summary.json`. A custom loop (`strategy.run` in a
`tf.function`), not `model.fit`, so weight updates and agent steps interleave freely.

Everything that survives a crash lives in the workdir: a checkpoint per epoch, and optionally every N
steps (model, optimizer, agent, dynamics model, alignment, epoch and step counters) plus the pruner's
JSON state, then `selection.json`,
`masks.json` and `gated_model.keras` once the sub-network is chosen, then fine-tuning checkpoints.
Re-running the same command resumes from the last of these.
"""

import json
import os
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from tfprune import masks as mask_lib
from tfprune.data import build_datasets
from tfprune.errors import TfpruneError
from tfprune.flops import CostModel
from tfprune.models import build_model
from tfprune.pruner import JointPruner, count_correct
from tfprune.progress import progress
from tfprune.surgery import compact_model


class TrainingError(TfpruneError, RuntimeError):
    """Training cannot continue (non-finite loss, mismatched checkpoint, ...): the message says why."""


@gin.configurable
def make_strategy(kind="auto"):
    """"auto": MultiWorkerMirrored when TF_CONFIG is set, Mirrored over several GPUs (or several
    logical CPUs, as the tests configure), else OneDevice."""
    if kind == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if os.environ.get("TF_CONFIG"):
            kind = "multi_worker"
        elif len(gpus) > 1 or (not gpus and len(tf.config.list_logical_devices("CPU")) > 1):
            kind = "mirrored"
        else:
            kind = "one_device"
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    raise ValueError(f"Unknown strategy {kind!r}; use auto, mirrored, one_device or multi_worker.")


@gin.configurable
def make_optimizer(total_steps, learning_rate=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True, warmup_steps=0):
    """SGD with momentum and a cosine learning-rate schedule (the standard CIFAR/ImageNet recipe)."""
    total_steps = max(1, int(total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate if not warmup_steps else 0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    return keras.optimizers.SGD(schedule, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay or None)


@gin.configurable
class WeightTrainer:
    """Trains a model's weights for epochs under a `tf.distribute` strategy.

    Args:
        nan_policy: "stop" raises on a non-finite loss or gradient, naming the step; "skip" drops the
            update (zero gradients) and counts it.
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(self, strategy, model, optimizer, global_batch_size, regularizer=None, nan_policy="stop",
                 label_smoothing=0.0):
        if nan_policy not in ("stop", "skip"):
            raise ValueError(f"nan_policy must be 'stop' or 'skip', got {nan_policy!r}.")
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.global_batch_size = int(global_batch_size)
        self.regularizer = regularizer
        self.nan_policy = nan_policy
        self.label_smoothing = float(label_smoothing)
        self.skipped_steps = 0
        with strategy.scope():
            optimizer.build(model.trainable_variables)
        self._train_step = tf.function(self._distributed_train_step)
        self._eval_step = tf.function(self._distributed_eval_step)

    def _loss(self, labels, logits):
        num_classes = tf.shape(logits)[-1]
        onehot = tf.one_hot(labels, num_classes)
        if self.label_smoothing:
            onehot = onehot * (1 - self.label_smoothing) + self.label_smoothing / tf.cast(num_classes, tf.float32)
        return tf.nn.softmax_cross_entropy_with_logits(onehot, logits)

    def _replica_train_step(self, images, labels):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            loss = tf.nn.compute_average_loss(self._loss(labels, logits), global_batch_size=self.global_batch_size)
            penalty = tf.constant(0.0)
            if self.regularizer is not None:
                penalty = self.regularizer() / self.strategy.num_replicas_in_sync
            total = loss + penalty
        grads = tape.gradient(total, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]) & tf.math.is_finite(total)
        grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables))
        correct = count_correct(logits, labels)
        return loss, penalty, correct, 1.0 - tf.cast(finite, tf.float32)

    def _distributed_train_step(self, batch):
        results = self.strategy.run(self._replica_train_step, args=batch)
        # loss, penalty, correct predictions, replicas with a non-finite loss/gradient
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None) for x in results]

    def _replica_eval_step(self, images, labels):
        logits = self.model(images, training=False)
        correct = count_correct(logits, labels)
        return correct, tf.cast(tf.shape(labels)[0], tf.float32)

    def _distributed_eval_step(self, batch):
        correct, count = self.strategy.run(self._replica_eval_step, args=batch)
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None))

    def train_epoch(self, dataset, steps=None, description="train", step_offset=0, start_step=0, after_step=None):
        """One pass over `dataset` (global batches); returns mean loss, penalty and accuracy.

        `start_step` skips the batches a resumed epoch already trained on; `after_step(done)` is called
        after every step with the number of steps done in the epoch (mid-epoch checkpoints)."""
        totals = np.zeros(3)
        seen = 0
        bar = progress(total=steps, desc=description, initial=start_step)
        dataset = dataset.skip(start_step) if start_step else dataset
        for step, batch in enumerate(self.strategy.experimental_distribute_dataset(dataset), start=start_step):
            loss, penalty, correct, non_finite = self._train_step(batch)
            if float(non_finite) > 0:
                if self.nan_policy == "stop":
                    bar.close()
                    raise TrainingError(
                        f"Non-finite loss or gradient at step {step_offset + step} ({description}); "
                        "the last good checkpoint is in the workdir. Lower the learning rate, or set "
                        "WeightTrainer.nan_policy = 'skip' to drop such steps."
                    )
                self.skipped_steps += 1
            totals += [float(loss), float(penalty), float(correct)]
            seen += 1
            bar.update(1)
            bar.set_postfix(loss=f"{totals[0] / seen:.3f}", acc=f"{totals[2] / (seen * self.global_batch_size):.3f}")
            if after_step is not None:
                after_step(step + 1)
        bar.close()
        if seen == 0:
            raise TrainingError(f"The {description} dataset yielded no batch: is it empty or smaller than a batch?")
        return {"loss": totals[0] / seen, "penalty": totals[1] / seen,
                "accuracy": totals[2] / (seen * self.global_batch_size), "steps": seen}

    def recalibrate_batchnorm(self, dataset, steps=50):
        """Re-estimates BatchNorm moving statistics for the current sub-network (forward passes in
        training mode, no weight update): the full network's statistics do not fit a pruned one."""
        if not hasattr(self, "_bn_step"):
            self._bn_step = tf.function(
                lambda batch: self.strategy.run(lambda images, labels: self.model(images, training=True), args=batch))
        for step, batch in enumerate(self.strategy.experimental_distribute_dataset(dataset)):
            if step >= steps:
                break
            self._bn_step(batch)

    def evaluate(self, dataset):
        correct = count = 0.0
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            c, n = self._eval_step(batch)
            correct += float(c)
            count += float(n)
        if count == 0:
            raise TrainingError("The validation dataset is empty.")
        return correct / count


@gin.configurable
def run(workdir, model_name=gin.REQUIRED, epochs=10, warmup_epochs=2, finetune_epochs=5,
        finetune_learning_rate=0.01, width_multiplier=1.0, export_quantizations=("float", "dynamic", "int8"),
        seed=0, deterministic=False, checkpoint_every_steps=0, strategy=None):
    """Runs (or resumes) the whole joint train-and-prune job in `workdir`; returns the summary dict.

    Args:
        deterministic: enable TensorFlow's deterministic ops, so the same seed and config give the
            same masks and metrics (slower on GPU).
        checkpoint_every_steps: also checkpoint every this many training steps inside an epoch of the
            joint phase (0: only at epoch ends), so a kill on a long ImageNet epoch loses at most that
            many steps. A resumed epoch skips the batches already trained on.
    """
    os.makedirs(workdir, exist_ok=True)
    summary_path = os.path.join(workdir, "summary.json")
    if os.path.exists(summary_path):
        print(f"{summary_path} exists: this run is complete (use a new --workdir to train again).")
        with open(summary_path) as f:
            return json.load(f)
    if not 0 <= warmup_epochs < epochs:
        raise TrainingError(f"Need 0 <= warmup_epochs < epochs for at least one agent step; got warmup_epochs="
                            f"{warmup_epochs}, epochs={epochs}.")
    strategy = strategy or make_strategy()  # first: multi-worker collectives must be set up before any op
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    data = build_datasets(seed=seed)
    with strategy.scope():
        model = _build_model(model_name, data.info, width_multiplier)
    job = _Job(workdir, strategy, model, data, epochs, warmup_epochs, seed, checkpoint_every_steps)
    masks, selection = job.joint_phase()
    compact = job.finetune_phase(masks, finetune_epochs, finetune_learning_rate)
    return job.finish(compact, masks, selection, export_quantizations)


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


def worker_role(strategy):
    """(is_chief, name) of this process: the chief writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return True, "chief"
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return is_chief, f"{task_type}_{task_id}"


def make_broadcast(strategy, is_chief):
    """A function that gives every worker the chief's copy of a numpy array (identity on one worker).

    Implemented as an all-reduce in which only the chief contributes, so the agent's decisions are made
    once and every worker applies the same mask."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return lambda array: array
    local_replicas = len(strategy.extended.worker_devices)

    def broadcast(array):
        array = np.asarray(array, np.float32)
        value = tf.constant(array if is_chief else np.zeros_like(array)) / local_replicas
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)), axis=None)
        return total.numpy()

    return broadcast


class _Job:
    """State of one `run`: the phases share the model, data, pruner and workdir layout.

    Reads come from `workdir` (the chief's files); writes go to `outdir`, which is `workdir` on the
    chief and a private sub-directory on other workers (they must still save checkpoints in step)."""

    def __init__(self, workdir, strategy, model, data, epochs, warmup_epochs, seed, checkpoint_every_steps=0):
        self.workdir = workdir
        self.strategy = strategy
        self.is_chief, role = worker_role(strategy)
        self.outdir = workdir if self.is_chief else os.path.join(workdir, f".{role}")
        os.makedirs(self.outdir, exist_ok=True)
        self.model = model
        self.data = data
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.writer = tf.summary.create_file_writer(os.path.join(self.outdir, "tb"))
        with strategy.scope():
            self.pruner = JointPruner(model, data.held_out, max_epochs=epochs, warmup_epochs=warmup_epochs, seed=seed)
            self.optimizer = make_optimizer(total_steps=epochs * data.steps_per_epoch)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        self.checkpoint_every_steps = int(checkpoint_every_steps)
        self.pruner.broadcast = make_broadcast(strategy, self.is_chief)
        self.trainer = WeightTrainer(strategy, model, self.optimizer, data.batch_size,
                                     regularizer=self.pruner.alignment.penalty)
        self.full_cost = self.pruner.cost_model.full

    def _read(self, name):
        return os.path.join(self.workdir, name)

    def _write(self, name):
        return os.path.join(self.outdir, name)

    # --- joint phase -----------------------------------------------------------------------------
    def joint_phase(self):
        """Returns the selected masks and the selection record (resuming from the workdir)."""
        if os.path.exists(self._read("selection.json")):
            print("Sub-network already selected; skipping to fine-tuning.")
            latest = tf.train.latest_checkpoint(self._read("ckpt_joint"))
            if latest is not None:  # the agent's history, for history.json and the plots
                self._load_pruner_state(int(latest.rsplit("-", 1)[-1]))
            with open(self._read("selection.json")) as f:
                return mask_lib.load_masks(self._read("masks.json")), json.load(f)
        checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, epoch=self.epoch,
                                         step_in_epoch=self.step_in_epoch, **self.pruner.checkpoint_items())
        manager = tf.train.CheckpointManager(checkpoint, self._write("ckpt_joint"), max_to_keep=2)
        _restore(self._read("ckpt_joint"), checkpoint, self._load_pruner_state)

        def save():
            # The pruner's JSON state first: a checkpoint never exists without its state.
            self._save_pruner_state(int(checkpoint.save_counter.numpy()) + 1)
            manager.save()

        def mid_epoch_checkpoint(done):
            every = self.checkpoint_every_steps
            if every and done % every == 0 and done < self.data.steps_per_epoch:
                self.step_in_epoch.assign(done)
                save()

        for epoch in range(int(self.epoch.numpy()), self.epochs):
            t0 = time.time()
            start = int(self.step_in_epoch.numpy())
            if start:
                print(f"Resuming epoch {epoch + 1} at step {start}.")
            strength = self.pruner.update_alignment(epoch)
            stats = self.trainer.train_epoch(self.data.train, self.data.steps_per_epoch,
                                             f"epoch {epoch + 1}/{self.epochs}", epoch * self.data.steps_per_epoch,
                                             start_step=start, after_step=mid_epoch_checkpoint)
            t_weights = time.time() - t0
            agent = self.pruner.agent_step(epoch) if epoch >= self.warmup_epochs else None
            val = self.trainer.evaluate(self.data.val)
            self._log_epoch(epoch, stats, agent, val, strength, time.time() - t0, t_weights)
            self.epoch.assign(epoch + 1)
            self.step_in_epoch.assign(0)
            save()
        return self._select()

    def _select(self):
        val_full = self.trainer.evaluate(self.data.val)
        choice = self.pruner.select(self.epochs - 1)
        mask_lib.apply_masks(self.model, choice.masks)
        self.trainer.recalibrate_batchnorm(self.data.train)  # the compact model starts from these statistics
        selection = {"reward": choice.reward, "flops_ratio": choice.flops_ratio, "val_accuracy_full_model": val_full,
                     "val_accuracy_masked_before_finetune": self.trainer.evaluate(self.data.val)}
        mask_lib.save_masks(choice.masks, self._write("masks.json"))
        self.model.save(self._write("gated_model.keras"))
        _write_json(self._write("selection.json"), selection)  # last: marks the phase as done
        print(f"Selected sub-network: FLOPs ratio {choice.flops_ratio:.3f}, held-out reward {choice.reward:.3f}, "
              f"full-model val accuracy {val_full:.4f}")
        self._gated_in_memory = True
        return choice.masks, selection

    def _log_epoch(self, epoch, stats, agent, val, strength, seconds, t_weights):
        line = (f"epoch {epoch + 1}/{self.epochs}: loss {stats['loss']:.4f} train acc {stats['accuracy']:.4f} "
                f"val acc {val:.4f} align {strength:.2e}")
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("train/loss", stats["loss"])
            tf.summary.scalar("train/accuracy", stats["accuracy"])
            tf.summary.scalar("train/alignment_penalty", stats["penalty"])
            tf.summary.scalar("train/alignment_strength", strength)
            tf.summary.scalar("val/accuracy_full_model", val)
            tf.summary.scalar("time/epoch_seconds", seconds)
            if agent is not None:
                for key in ("reward_mean", "reward_max", "dynamics_loss", "dynamics_prediction_mse", "agent_loss",
                            "flops_ratio"):
                    tf.summary.scalar(f"agent/{key}", agent[key])
                tf.summary.scalar("time/agent_fraction", 1.0 - t_weights / seconds)
                for name, ratio in zip(self.pruner.group_names, agent["mean_action"]):
                    tf.summary.scalar(f"ratio/{name}", ratio)
                for name, kept in agent["best_kept"].items():
                    tf.summary.scalar(f"kept/{name}", kept)
                tf.summary.scalar("alignment/outside_mass", self.pruner.alignment.outside_mass())
                line += (f" | reward mean {agent['reward_mean']:.3f} max {agent['reward_max']:.3f} "
                         f"FLOPs {agent['flops_ratio']:.3f}")
        self.writer.flush()
        print(line, flush=True)

    def _save_pruner_state(self, number):
        _write_json(os.path.join(self.outdir, "ckpt_joint", f"pruner_state-{number}.json"), self.pruner.get_state())

    def _load_pruner_state(self, number):
        path = os.path.join(self.workdir, "ckpt_joint", f"pruner_state-{number}.json")
        if not os.path.exists(path):
            raise TrainingError(f"Checkpoint {number} has no pruner state ({path}); the workdir is corrupt: "
                                "delete it or use a new --workdir.")
        with open(path) as f:
            self.pruner.set_state(json.load(f))

    # --- fine-tuning -----------------------------------------------------------------------------
    def finetune_phase(self, masks, finetune_epochs, learning_rate):
        """Physically prunes the gated model and fine-tunes the compact model (resumable)."""
        with self.strategy.scope():
            gated = self.model if getattr(self, "_gated_in_memory", False) else keras.saving.load_model(
                self._read("gated_model.keras"))
            compact = compact_model(gated, masks)
            optimizer = make_optimizer(total_steps=max(1, finetune_epochs * self.data.steps_per_epoch),
                                       learning_rate=learning_rate)
            epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="finetune_epoch")
        trainer = WeightTrainer(self.strategy, compact, optimizer, self.data.batch_size)
        checkpoint = tf.train.Checkpoint(model=compact, optimizer=optimizer, epoch=epoch)
        manager = tf.train.CheckpointManager(checkpoint, self._write("ckpt_finetune"), max_to_keep=2)
        _restore(self._read("ckpt_finetune"), checkpoint)
        for e in range(int(epoch.numpy()), finetune_epochs):
            stats = trainer.train_epoch(self.data.train, self.data.steps_per_epoch, f"finetune {e + 1}/{finetune_epochs}")
            val = trainer.evaluate(self.data.val)
            with self.writer.as_default(step=self.epochs + e):
                tf.summary.scalar("finetune/loss", stats["loss"])
                tf.summary.scalar("val/accuracy_pruned", val)
            print(f"finetune {e + 1}/{finetune_epochs}: loss {stats['loss']:.4f} val acc {val:.4f}", flush=True)
            epoch.assign(e + 1)
            manager.save()
        self.finetune_trainer = trainer
        return compact

    # --- the end ---------------------------------------------------------------------------------
    def finish(self, compact, masks, selection, quantizations):
        """Final evaluation, then (chief only) the compact model, exports, summary.json and plots."""
        val_pruned = self.finetune_trainer.evaluate(self.data.val)
        pruned_cost = self.pruner.cost_model.cost(masks)
        compact_cost = CostModel(compact).full
        if abs(compact_cost.flops - pruned_cost.flops) > 1e-6 * max(1.0, pruned_cost.flops):
            raise TrainingError(f"Compact model FLOPs {compact_cost.flops} differ from the counter's {pruned_cost.flops}.")
        summary = {
            "model": self.model.name,
            "dataset": self.data.info.name,
            "flops_full": self.full_cost.flops,
            "flops_pruned": pruned_cost.flops,
            "flops_ratio": pruned_cost.flops / self.full_cost.flops,
            "params_full": self.full_cost.params,
            "params_pruned": pruned_cost.params,
            "val_accuracy_full_model": selection["val_accuracy_full_model"],
            "val_accuracy_masked_before_finetune": selection["val_accuracy_masked_before_finetune"],
            "val_accuracy_pruned": val_pruned,
            "kept_channels": self.pruner.kept_channels(masks),
        }
        if not self.is_chief:
            return summary
        summary.update(self._export(compact, quantizations))
        _write_json(self._write("history.json"), self.pruner.history)
        _write_json(self._write("summary.json"), summary)
        try:  # plots are a convenience: never fail a finished run over them
            from tfprune.plots import write_run_plots

            write_run_plots(self.workdir, summary, self.pruner.history)
        except Exception as e:  # noqa: BLE001
            print(f"warning: run plots not written: {type(e).__name__}: {e}", flush=True)
        print(json.dumps({k: v for k, v in summary.items() if k != "kept_channels"}, indent=2))
        return summary

    def _export(self, compact, quantizations):
        from tfprune.export import export_all

        compact_path = self._write("compact_model.keras")
        compact.save(compact_path)
        held_out_images = self.pruner.held_out[0]
        val_images = next(iter(self.data.val))[0].numpy()
        report = export_all(compact, self._write("export"), quantizations=quantizations,
                            representative_data=[held_out_images[i:i + 32] for i in range(0, len(held_out_images), 32)],
                            sample_inputs=val_images, latency_runs=20)
        return {
            "compact_model": compact_path,
            "saved_model": report["saved_model"]["path"],
            "tflite": {q: entry["path"] for q, entry in report["tflite"].items()},
            "tflite_latency_ms": {q: entry.get("latency_ms") for q, entry in report["tflite"].items()},
        }


def _restore(directory, checkpoint, on_restore=None):
    """Restores the latest checkpoint in `directory`, with an error that says what to do if it does not fit."""
    path = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    if path is None:
        return
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except Exception as e:  # noqa: BLE001  (a damaged file fails in many ways: each means the same here)
        raise TrainingError(
            f"Checkpoint {path} does not match this model/config ({type(e).__name__}: {str(e)[:300]}). "
            "It was written by another model or config, or is corrupt: use a new --workdir or the original config."
        ) from e
    if on_restore is not None:
        on_restore(int(path.rsplit("-", 1)[-1]))
    print(f"Resumed from {path}.")


def _write_json(path, data):
    """Atomic write: a crash never leaves a half-written file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
