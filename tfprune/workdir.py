"""The run directory: every file name of a run, atomic writes, checkpoint managers and resume discovery.

One place knows where things live, so the trainer, the CLI, `tools/compare.py` and the plots never
spell a file name themselves. Layout of WORKDIR (chief's files; other workers of a multi-worker job
write their own copies under WORKDIR/.<role>/ because they must still save checkpoints in step):

    config.gin                 the full gin configuration of the run
    ckpt_joint/                joint-phase checkpoints + pruner_state-<n>.json (agent, dynamics, target)
    selection.json             the chosen sub-network's record; its presence marks the joint phase done
    masks.json                 the chosen sub-network's masks
    gated_model.keras          the gated model after BatchNorm recalibration, masks applied
    ckpt_finetune/             fine-tuning checkpoints of the compact model
    compact_model.keras        the fine-tuned, physically pruned model
    export/                    SavedModel + TFLite files and export_report.json
    history.json, summary.json one record per agent step; the final metrics (marks the run complete)
    plots/, tb/                PNG plots; TensorBoard events
"""

import json
import os

import tensorflow as tf

from tfprune.errors import TrainingError

CONFIG = "config.gin"
JOINT_CHECKPOINTS = "ckpt_joint"
SELECTION = "selection.json"
MASKS = "masks.json"
GATED_MODEL = "gated_model.keras"
FINETUNE_CHECKPOINTS = "ckpt_finetune"
COMPACT_MODEL = "compact_model.keras"
EXPORT = "export"
HISTORY = "history.json"
SUMMARY = "summary.json"
PLOTS = "plots"
TENSORBOARD = "tb"
LOG = "log.txt"  # written by tfprune.compare around each run


def completed_summary(root):
    """The summary of a finished run in `root`, or None: a finished run is never trained again."""
    path = os.path.join(root, SUMMARY)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def progress(root):
    """Where a run in `root` stands, in words: fresh, resumed from which phase and checkpoint, or complete."""
    if os.path.exists(os.path.join(root, SUMMARY)):
        return "complete: nothing to train"
    if os.path.exists(os.path.join(root, SELECTION)):
        return "resuming: sub-network already selected, fine-tuning continues"
    joint = os.path.join(root, JOINT_CHECKPOINTS)
    latest = tf.train.latest_checkpoint(joint) if os.path.isdir(joint) else None
    if latest is not None:
        return f"resuming from joint-phase checkpoint {_checkpoint_number(latest)}"
    return "fresh run"


class Workdir:
    """The files of one run. Reads come from `root` (the chief's files); writes go to `outdir`: `root`
    on the chief, a private `.<role>` sub-directory on other workers."""

    def __init__(self, root, is_chief=True, role="chief"):
        self.root = root
        self.is_chief = bool(is_chief)
        self.outdir = root if is_chief else os.path.join(root, f".{role}")
        os.makedirs(self.outdir, exist_ok=True)

    def read_path(self, name):
        return os.path.join(self.root, name)

    def write_path(self, name):
        return os.path.join(self.outdir, name)

    def exists(self, name):
        return os.path.exists(self.read_path(name))

    def read_json(self, name):
        with open(self.read_path(name)) as f:
            return json.load(f)

    def write_json(self, name, data):
        write_json_atomic(self.write_path(name), data)

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoint_manager(self, directory, checkpoint, max_to_keep=2):
        return tf.train.CheckpointManager(checkpoint, self.write_path(directory), max_to_keep=max_to_keep)

    def latest_checkpoint_number(self, directory):
        path = tf.train.latest_checkpoint(self.read_path(directory))
        return None if path is None else _checkpoint_number(path)

    def restore(self, directory, checkpoint, on_restore=None):
        """Restores the latest checkpoint in `directory` (if any) and calls `on_restore(number)`; an
        error that says what to do if it does not fit this model and config."""
        path = tf.train.latest_checkpoint(self.read_path(directory)) if os.path.isdir(self.read_path(directory)) else None
        if path is None:
            return
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001  (a damaged file fails in many ways: each means the same here)
            raise TrainingError(
                f"Checkpoint {path} does not match this model/config ({type(e).__name__}: {str(e)[:300]}). It was "
                "written by another model or config, or is corrupt: use a new --workdir or the original config."
            ) from e
        if on_restore is not None:
            on_restore(_checkpoint_number(path))
        print(f"Resumed from {path}.")

    # --- the pruner's JSON state beside each joint checkpoint --------------------------------------
    @staticmethod
    def pruner_state_name(number):
        return os.path.join(JOINT_CHECKPOINTS, f"pruner_state-{number}.json")

    def write_pruner_state(self, number, state):
        self.write_json(self.pruner_state_name(number), state)

    def read_pruner_state(self, number):
        name = self.pruner_state_name(number)
        if not self.exists(name):
            raise TrainingError(f"Checkpoint {number} has no pruner state ({self.read_path(name)}); the workdir is "
                                "corrupt: delete it or use a new --workdir.")
        return self.read_json(name)


def _checkpoint_number(path):
    """The N of a `.../ckpt-N` checkpoint prefix (it also names the pruner state saved beside it)."""
    return int(path.rsplit("-", 1)[-1])


def write_json_atomic(path, data):
    """Write to a temporary name, then rename: a crash never leaves a half-written file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
