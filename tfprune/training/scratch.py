"""`train_from_scratch`: a structure's widths trained from a fresh initialisation (`run.scratch_structure`).

Why: a pruned network's accuracy after joint training mixes two things, the structure (how many channels
each group keeps) and the path its weights took there (alignment toward the sub-network, the agent's
moves, the cut, fine-tuning). Training the same widths dense from scratch for the whole schedule keeps
the first and drops the second (Liu et al., "Rethinking the Value of Network Pruning", ICLR 2019), so a
comparison can tell "a better structure" from "a better way of reaching it" (issue 36).

The structure is a finished run's masks.json; only its kept counts matter: the model is cut to those
counts and every weight drawn afresh (`keras.models.clone_model` re-initialises from the layers' configs,
so each narrower layer gets the initialiser's scale for its own fan-in). The run trains it for the
joint epochs plus the fine-tuning epochs with the joint phase's optimiser, and reports like any run."""

import os
import time

import keras

from tfprune.infra import workdir as files
from tfprune.structure.masks import MaskError, load_masks, save_masks, validate_masks
from tfprune.structure.surgery import compact_model
from tfprune.training.finetune import train_compact
from tfprune.training.joint_phase import Selected

NOT_TRAINED = float("nan")  # the accuracies of a full model that a from-scratch run never trains


def read_structure(structure_path, pruner):
    """The masks of ``structure_path`` (a finished run's masks.json), checked against the pruner's model
    before anything is written: every group present, each mask its group's size and not empty."""
    if not os.path.exists(structure_path):
        raise MaskError(f"run.scratch_structure {structure_path!r} does not exist: give the masks.json of a "
                        "finished run of the same model and config (WORKDIR/masks.json).")
    masks = validate_masks(load_masks(structure_path), pruner.graph)
    missing = sorted(set(pruner.group_names) - set(masks))
    if missing:
        raise MaskError(f"run.scratch_structure {structure_path!r} has no mask for the groups {missing}: it was "
                        "written for another model or width; use a run of this config.")
    return masks


def scratch_selection(ctx, model, pruner, masks, structure_path):
    """``masks`` (`read_structure`) as the run's selection, written once: a resumed run reads its own copy."""
    run_dir = ctx.run_dir
    if run_dir.exists(files.SELECTION):
        return Selected(load_masks(run_dir.read_path(files.MASKS)), run_dir.read_json(files.SELECTION), model)
    record = {"reward": NOT_TRAINED, "flops_ratio": pruner.cost(masks).flops / pruner.cost().flops,
              "val_accuracy_full_model": NOT_TRAINED, "val_accuracy_masked_before_finetune": NOT_TRAINED,
              "scratch_structure": os.path.abspath(structure_path)}
    save_masks(masks, run_dir.write_path(files.MASKS))
    run_dir.write_json(files.SELECTION, record)
    return Selected(masks, record, model)


def train_from_scratch(ctx, selected, epochs):
    """The selected widths, freshly initialised, trained for ``epochs`` (resumable from the fine-tuning
    checkpoints); returns (compact model, accuracy, seconds) as `finetune` does."""
    t0 = time.time()
    with ctx.strategy.scope():
        compact = keras.models.clone_model(compact_model(selected.gated_model, selected.masks))
    return train_compact(ctx, compact, epochs, first_data_epoch=0, started=t0, label="scratch")
