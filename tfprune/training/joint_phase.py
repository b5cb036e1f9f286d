"""`JointPhase`: warm-up and joint epochs (weights, alignment, one agent step per epoch), then the
selection of the sub-network (`Selected`), resumable from the run directory at every step."""

import dataclasses
import time

import keras
import tensorflow as tf

from tfprune.infra import workdir as files
from tfprune.search.policy import check_resumable
from tfprune.structure.masks import apply_masks, load_masks, save_masks
from tfprune.training.weight_trainer import WeightTrainer, make_optimizer

JOINT_PHASES = ("train", "agent")  # the joint phase's wall time: weight training (+ per-epoch validation), agent steps


@dataclasses.dataclass
class Selected:
    """The joint phase's result: the sub-network, its record (selection.json) and the gated model."""

    masks: dict
    record: dict
    gated_model: keras.Model


class JointPhase:
    """Warm-up and joint epochs (weights, alignment, one agent step per epoch), then the selection."""

    def __init__(self, ctx, model, pruner, epochs, checkpoint_every_steps=0):
        self.ctx = ctx
        self.model = model
        self.pruner = pruner
        self.epochs = int(epochs)
        self.checkpoint_every_steps = int(checkpoint_every_steps)
        with ctx.strategy.scope():
            optimizer = make_optimizer(total_steps=epochs * ctx.data.steps_per_epoch)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
            # wall seconds of the finished epochs, checkpointed with them: a resumed run reports every one
            self.seconds = {phase: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=f"{phase}_seconds")
                            for phase in JOINT_PHASES}
        self.trainer = WeightTrainer(ctx.strategy, model, optimizer, ctx.data.batch_size, regularizer=pruner.penalty)
        items = dict(model=model, optimizer=optimizer, epoch=self.epoch, step_in_epoch=self.step_in_epoch,
                     **pruner.checkpoint_items())
        timings = {f"{p}_seconds": v for p, v in self.seconds.items()}  # added to the format later
        self.checkpoint = tf.train.Checkpoint(**items, **timings)
        self._required = tf.train.Checkpoint(**items)  # what a checkpoint from before the timings has
        self.manager = ctx.run_dir.checkpoint_manager(files.JOINT_CHECKPOINTS, self.checkpoint)

    def run(self):
        """Trains (resuming from the workdir) and selects; returns a `Selected`."""
        run_dir = self.ctx.run_dir
        if run_dir.exists(files.SELECTION):
            return self._already_selected()
        for newest in run_dir.checkpoints(files.JOINT_CHECKPOINTS)[:1]:
            check_resumable(self.pruner.policy, newest)
        run_dir.restore(files.JOINT_CHECKPOINTS, self.checkpoint, self._load_pruner_state, required=self._required)
        for epoch in range(int(self.epoch.numpy()), self.epochs):
            self._train_epoch(epoch)
        return self._select()

    def _already_selected(self):
        print("Sub-network already selected; skipping to fine-tuning.")
        run_dir = self.ctx.run_dir
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
                                         after_step=self._mid_epoch_checkpoint,
                                         step_marks=self.checkpoint_every_steps)
        weight_seconds = time.time() - t0
        agent = None if self.pruner.schedule.in_warmup(epoch) else self.pruner.agent_step(epoch)
        agent_seconds = time.time() - t0 - weight_seconds
        val = self.trainer.evaluate(data.val)
        seconds = time.time() - t0
        self.ctx.log.joint_epoch(epoch, stats, val, strength, seconds, weight_seconds, agent, self.pruner)
        self.seconds["agent"].assign_add(agent_seconds)
        self.seconds["train"].assign_add(seconds - agent_seconds)  # weight steps and the epoch's validation
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
        self.ctx.run_dir.write_pruner_state(int(self.checkpoint.save_counter.numpy()) + 1, self.pruner.get_state())
        self.manager.save()

    def _load_pruner_state(self, number):
        self.pruner.set_state(self.ctx.run_dir.read_pruner_state(number))

    def _select(self):
        run_dir, data = self.ctx.run_dir, self.ctx.data
        t0 = time.time()
        val_full = self.trainer.evaluate(data.val)
        choice = self.pruner.select(self.epochs - 1)
        apply_masks(self.model, choice.masks)
        # The compact model starts from these statistics; epoch index `epochs` is the recalibration's.
        self.trainer.recalibrate_batchnorm(data.train_epoch(self.epochs))
        record = {"reward": choice.reward, "flops_ratio": choice.flops_ratio, "val_accuracy_full_model": val_full,
                  "val_accuracy_masked_before_finetune": self.trainer.evaluate(data.val)}
        record["phase_seconds"] = {**{p: float(v.numpy()) for p, v in self.seconds.items()},
                                   "select": time.time() - t0}
        save_masks(choice.masks, run_dir.write_path(files.MASKS))
        run_dir.save_model(files.GATED_MODEL, self.model)
        run_dir.write_json(files.SELECTION, record)  # last: marks the phase as done
        print(f"Selected sub-network: FLOPs ratio {choice.flops_ratio:.3f}, held-out reward {choice.reward:.3f}, "
              f"full-model val accuracy {val_full:.4f}")
        return Selected(choice.masks, record, self.model)
