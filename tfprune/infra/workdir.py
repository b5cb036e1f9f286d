"""The run directory: every file name of a run, its lock, safe writes, checkpoints and resume discovery.

One place knows where things live, so the trainer, the CLI, `tools/compare.py` and the plots never
spell a file name themselves. Layout of WORKDIR (chief's files; other workers of a multi-worker job
write their own copies under WORKDIR/.<role>/ because they must still save checkpoints in step):

    run.lock                   the running job's host, pid and start time (one job per workdir)
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

Every JSON and model file is written under a temporary name and renamed into place
(`tfprune.infra.safe_write`); a failed write keeps the previous file. Resuming skips a damaged newest
checkpoint (one that does not restore, or whose pruner state is missing or unreadable) and uses the
one before it, saying so.
"""

import glob
import json
import os

import tensorflow as tf

from tfprune.infra import safe_write
from tfprune.errors import TrainingError
from tfprune.infra.run_lock import WorkdirLock

LOCK = "run.lock"
CONFIG = "config.gin"
JOINT_CHECKPOINTS = "ckpt_joint"
CHECKPOINT_PREFIX = "ckpt"  # checkpoints are <folder>/ckpt-<n>.index and .data-*
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
LOG = "log.txt"  # written by tfprune.studies.compare around each run


def check_not_busy(root):
    """`run_lock.WorkdirBusy` if a job holds `root`'s lock now; writes nothing (`Workdir` takes the lock)."""
    WorkdirLock(os.path.join(root, LOCK)).check()


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
    on the chief, a private `.<role>` sub-directory on other workers.

    Used as a context manager, the chief holds the workdir's lock (`LOCK`) inside the `with` block, so a
    second job on the same workdir stops (`tfprune.infra.run_lock.WorkdirBusy`) instead of writing over this
    one; the lock is released when the block ends, normally or by an exception."""

    def __init__(self, root, is_chief=True, role="chief"):
        self.root = root
        self.is_chief = bool(is_chief)
        self.outdir = root if is_chief else os.path.join(root, f".{role}")
        self.lock = WorkdirLock(os.path.join(root, LOCK)) if self.is_chief else None
        os.makedirs(self.outdir, exist_ok=True)

    def __enter__(self):
        if self.lock is not None:
            self.lock.acquire()
            # What a killed job was writing (nobody else writes here now): our temporary files and
            # TensorFlow's half-saved checkpoint folders (<prefix>_temp/part-*).
            safe_write.remove_leftovers(self.outdir, (".*.tmp-*", f"{CHECKPOINT_PREFIX}-*_temp"), depth=2)
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()
        return False

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
        safe_write.write_json(self.write_path(name), data)

    def write_text(self, name, text):
        safe_write.write_text(self.write_path(name), text)

    def save_model(self, name, model):
        """Saves a Keras model as `name` (a .keras file) safely; returns its path."""
        path = self.write_path(name)
        safe_write.save_keras_model(model, path)
        return path

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoint_manager(self, directory, checkpoint, max_to_keep=2):
        return _CheckpointManager(checkpoint, self.write_path(directory), max_to_keep=max_to_keep,
                                  checkpoint_name=CHECKPOINT_PREFIX)

    def restore(self, directory, checkpoint, on_restore=None, required=None):
        """Restores the newest usable checkpoint in `directory` (if any) into `checkpoint` (the one its
        manager saves, so that its save counter, and with it the numbering, goes on) and calls
        `on_restore(number)` (which loads what is saved beside it). A newest checkpoint that fails either
        step is skipped for the one before it, with a warning that says why; an error that says what to do
        when none fits this model and config.

        `required` (a `tf.train.Checkpoint` of some of `checkpoint`'s values under the same names; default
        all of them) is what every checkpoint of this format has and must match; the rest (what the format
        gained since, the phase timings) is restored where a checkpoint has it and left as it is where a
        checkpoint written by an earlier version does not, so users' half-finished runs still resume."""
        failures = []
        for path in self.checkpoints(directory):
            try:
                if required is None:
                    checkpoint.restore(path).assert_existing_objects_matched()
                else:
                    required.restore(path).assert_existing_objects_matched()
                    checkpoint.restore(path).expect_partial()
                if on_restore is not None:
                    on_restore(_checkpoint_number(path))
            except Exception as e:  # noqa: BLE001  (a damaged file fails in many ways: each means the same here)
                failures.append(f"{path} ({type(e).__name__}: {' '.join(str(e).split())[:300]})")
                continue
            if failures:
                print(f"warning: skipped the damaged checkpoint {'; '.join(failures)}.", flush=True)
            print(f"Resumed from {path}" + (" (the newest usable checkpoint)." if failures else "."), flush=True)
            return
        if failures:
            raise TrainingError(
                f"No checkpoint in {self.read_path(directory)} can be restored: {'; '.join(failures)}. A checkpoint "
                "that does not match this model/config was written by another model or config, or is corrupt: use "
                "a new --workdir or the original config.")

    def checkpoints(self, directory):
        """The checkpoint prefixes in `directory`, newest first: those TensorFlow's index file lists and
        those with an `.index` file (so a damaged index file does not hide the older ones)."""
        folder = self.read_path(directory)
        if not os.path.isdir(folder):
            return []
        numbers = {_checkpoint_number(p[:-len(".index")])
                   for p in glob.glob(os.path.join(glob.escape(folder), f"{CHECKPOINT_PREFIX}-*.index"))}
        try:
            state = tf.train.get_checkpoint_state(folder)
        except Exception:  # noqa: BLE001  (an unreadable index file: the .index files above still count)
            state = None
        if state is not None:
            numbers.update(_checkpoint_number(p) for p in state.all_model_checkpoint_paths)
        return [os.path.join(folder, f"{CHECKPOINT_PREFIX}-{n}") for n in sorted(numbers, reverse=True)]

    # --- the pruner's JSON state beside each joint checkpoint --------------------------------------
    @staticmethod
    def pruner_state_name(number):
        return os.path.join(JOINT_CHECKPOINTS, f"pruner_state-{number}.json")

    def write_pruner_state(self, number, state):
        self.write_json(self.pruner_state_name(number), state)

    def newest_pruner_state(self):
        """The newest readable pruner state beside the joint checkpoints (None when there is no checkpoint).
        Once the sub-network is selected only the agent's history is read from it, so, as in `restore`,
        a damaged newest one is skipped with a warning; none readable is an error."""
        skipped = []
        for path in self.checkpoints(JOINT_CHECKPOINTS):
            try:
                state = self.read_pruner_state(_checkpoint_number(path))
            except TrainingError as e:
                skipped.append(str(e))
                continue
            if skipped:
                print(f"warning: skipped a damaged pruner state: {' '.join(skipped)} Using checkpoint "
                      f"{_checkpoint_number(path)}'s (its agent history may miss the last agent steps).", flush=True)
            return state
        if skipped:
            raise TrainingError(skipped[0])
        return None

    def read_pruner_state(self, number):
        name = self.pruner_state_name(number)
        if not self.exists(name):
            raise TrainingError(f"Checkpoint {number} has no pruner state ({self.read_path(name)}); the workdir is "
                                "corrupt: delete it or use a new --workdir.")
        try:
            return self.read_json(name)
        except ValueError as e:
            raise TrainingError(f"The pruner state {self.read_path(name)} is not valid JSON ({e}).") from e


class _CheckpointManager(tf.train.CheckpointManager):
    """A failed save (disk full, quota) raises `safe_write.WriteError` naming the folder and the cause.
    The previous checkpoints stay loadable: TensorFlow writes the new one under temporary names, lists it
    in the folder's `checkpoint` file last and deletes the oldest only after that."""

    def save(self, *args, **kwargs):
        try:
            return super().save(*args, **kwargs)
        except (OSError, tf.errors.OpError) as e:
            number = int(self.checkpoint.save_counter.numpy())  # counted before the write
            raise safe_write.write_error(os.path.join(self.directory, f"{CHECKPOINT_PREFIX}-{number}"), e) from e


def _checkpoint_number(path):
    """The N of a `.../ckpt-N` checkpoint prefix (it also names the pruner state saved beside it)."""
    return int(path.rsplit("-", 1)[-1])

