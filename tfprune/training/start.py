"""The set-up of a run, one step per function, in the order `tfprune.training.trainer.run` calls them:
check the epochs, start the runtime (determinism, strategy, the worker's role, the workdir's lock),
build the model and the pruner. Nothing here writes to the workdir."""

import gin
import keras

from tfprune.errors import TrainingError
from tfprune.infra import determinism
from tfprune.infra import workdir as files
from tfprune.infra.distribute import make_broadcast, make_strategy, worker_role
from tfprune.models import build_model
from tfprune.pruning.pruner import JointPruner


def report_complete(workdir, summary):
    """Says that the run in `workdir` is finished; returns its summary."""
    print(f"{workdir}/{files.SUMMARY} exists: this run is complete (use a new --workdir to train again).")
    return summary


def check_epochs(epochs, warmup_epochs):
    """At least one epoch must follow the warm-up, for at least one agent step."""
    if not 0 <= warmup_epochs < epochs:
        raise TrainingError(f"Need 0 <= warmup_epochs < epochs for at least one agent step; got warmup_epochs="
                            f"{warmup_epochs}, epochs={epochs}.")


def start_runtime(workdir, deterministic, strategy=None):
    """Starts TensorFlow's runtime for this job; returns (strategy, is_chief, role).

    In this order: determinism before the runtime starts (the inter-op pool is fixed from then on), the
    strategy as the first op (multi-worker collectives must be set up before any op), then, on the chief,
    the workdir's lock check, so that a second job on the workdir stops now, not after its set-up."""
    if deterministic:
        determinism.enable()
    strategy = strategy or make_strategy()
    is_chief, role = worker_role(strategy)
    if is_chief:
        files.check_not_busy(workdir)
    return strategy, is_chief, role


def build_run_model(strategy, model_name, info, width_multiplier):
    """The gated zoo model for the data set `info` describes, built in `strategy`'s scope."""
    try:
        with strategy.scope():
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


def build_pruner(strategy, is_chief, model, data, epochs, warmup_epochs, seed):
    """The `JointPruner` of `model` (gin configures the rest), rewarded on `data.held_out`. It holds the
    run's warm-up (`pruner.schedule`, an `AlignmentSchedule`): the one place the joint phase reads it from."""
    with strategy.scope():
        return JointPruner(model, data.held_out, max_epochs=epochs, warmup_epochs=warmup_epochs, seed=seed,
                           broadcast=make_broadcast(strategy, is_chief))


def record_config(run_dir):
    """The run's full gin configuration, as config.gin in the workdir."""
    run_dir.write_text(files.CONFIG, gin.config_str())


def seed_everything(seed):
    """Seeds Python, NumPy and TensorFlow (Keras' global seed) before anything random is built."""
    keras.utils.set_random_seed(seed)
