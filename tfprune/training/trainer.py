"""The joint train-and-prune schedule of one run: `run`, which reads as the schedule.

Schedule (`run`): set-up (`tfprune.training.start`) -> warm-up epochs (weights only) and joint epochs
(weights with alignment, then one agent step) -> selection of the final sub-network
(`tfprune.training.joint_phase`) -> physical pruning and fine-tuning of the compact model
(`tfprune.training.finetune`) -> evaluation, SavedModel/TFLite export and `summary.json`
(`tfprune.training.summary`). Each phase returns what the next one needs. `tfprune.training.weight_trainer`
defines the training steps, `tfprune.infra.workdir` every file of the run, `tfprune.training.run_log` what
is printed and logged.

Everything that survives a crash lives in the workdir: a checkpoint per epoch, and optionally every N
steps (model, optimizer, agent, dynamics model, alignment, epoch and step counters) plus the pruner's
JSON state; then the selection, masks and gated model once the sub-network is chosen; then
fine-tuning checkpoints. Re-running the same command resumes from the last of these.
"""

import time

import gin

from tfprune.data import build_datasets
from tfprune.errors import TrainingError
from tfprune.infra import workdir as files
from tfprune.training.context import RunContext
from tfprune.training.finetune import finetune
from tfprune.training.joint_phase import JointPhase
from tfprune.training.run_log import RunLog
from tfprune.training.scratch import read_structure, scratch_selection, train_from_scratch
from tfprune.training.start import (
    build_pruner,
    build_run_model,
    check_epochs,
    record_config,
    report_complete,
    seed_everything,
    start_runtime,
)
from tfprune.training.summary import finish

__all__ = ["TrainingError", "run"]


@gin.configurable
def run(workdir, model_name=gin.REQUIRED, epochs=10, warmup_epochs=2, finetune_epochs=5,
        finetune_learning_rate=0.01, width_multiplier=1.0, export_quantizations=("float", "dynamic", "int8"),
        seed=0, deterministic=False, checkpoint_every_steps=0, strategy=None, scratch_structure=None):
    """Runs (or resumes) the whole joint train-and-prune job in `workdir` (a path); returns the summary dict.

    Args:
        workdir: the run's directory: checkpoints, logs, the summary, the models and the export.
        model_name: a zoo model (`tfprune.models.MODEL_NAMES`), built for the data's classes and image shape.
        epochs: epochs of the joint phase (warm-up included): weight training, then one agent step each.
        warmup_epochs: epochs of weight training before the first agent step; handed to the pruner,
            which holds it for the alignment schedule and the joint phase alike.
        finetune_epochs / finetune_learning_rate: fine-tuning of the compact model after the selection /
            its peak learning rate (`make_optimizer`'s other bindings apply as well).
        width_multiplier: scales every channel count of the zoo model (`build_model`).
        export_quantizations: the TFLite files exported at the end, of "float", "dynamic", "int8".
        seed: seeds the data splits, the weights, the agent and the baselines.
        deterministic: deterministic kernels and one inter-op thread (`tfprune.infra.determinism`), so the
            same seed and config give the same masks and metrics (slower on GPU).
        checkpoint_every_steps: also checkpoint every this many training steps inside an epoch of the
            joint phase (0: only at epoch ends), so a kill on a long ImageNet epoch loses at most that
            many steps. A resumed epoch skips the batches already trained on.
        strategy: a `tf.distribute` strategy (None: `make_strategy()`).
        scratch_structure: a finished run's masks.json: instead of the joint schedule, train those widths
            from a fresh initialisation for `epochs` + `finetune_epochs` (`tfprune.training.scratch`: what
            the structure is worth without the path its weights took there).
    """
    done = files.completed_summary(workdir)
    if done is not None:
        return report_complete(workdir, done)
    check_epochs(epochs, warmup_epochs)
    started = time.time()
    strategy, is_chief, role = start_runtime(workdir, deterministic, strategy)
    seed_everything(seed)
    data = build_datasets(seed=seed)
    model = build_run_model(strategy, model_name, data.info, width_multiplier)
    pruner = build_pruner(strategy, is_chief, model, data, epochs, warmup_epochs, seed)
    structure = read_structure(scratch_structure, pruner) if scratch_structure else None
    # Bad input (data, model, budget) has failed by now, so nothing was written; from here on the
    # chief holds the workdir's lock (released when the run ends, normally or not).
    with files.Workdir(workdir, is_chief, role) as run_dir:
        record_config(run_dir)
        ctx = RunContext(strategy, run_dir, data, RunLog(run_dir.outdir, epochs))
        setup_seconds = time.time() - started
        schedule = {"epochs": epochs, "warmup_epochs": warmup_epochs, "finetune_epochs": finetune_epochs}
        if structure is not None:
            selected = scratch_selection(ctx, model, pruner, structure, scratch_structure)
            compact, accuracy, train_seconds = train_from_scratch(ctx, selected, epochs + finetune_epochs)
            cost = {"schedule": {**schedule, "from_scratch": True},
                    "phase_seconds": {"setup": setup_seconds, "train": train_seconds}}
            return finish(ctx, pruner, compact, selected, accuracy, export_quantizations, cost)
        selected = JointPhase(ctx, model, pruner, epochs, checkpoint_every_steps).run()
        compact, accuracy, finetune_seconds = finetune(ctx, selected, finetune_epochs, finetune_learning_rate,
                                                       first_data_epoch=epochs + 1)
        seconds = {"setup": setup_seconds, **selected.record.get("phase_seconds", {}), "finetune": finetune_seconds}
        cost = {"schedule": schedule, "phase_seconds": seconds}
        return finish(ctx, pruner, compact, selected, accuracy, export_quantizations, cost)
