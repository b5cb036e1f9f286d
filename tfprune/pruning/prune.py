"""`tfprune.prune`: the whole method on a user's Keras model in one call.

    result = tfprune.prune(model, (x_train, y_train), val_data=(x_val, y_val), target_flops_ratio=0.5, epochs=20)
    result.model            # the physically smaller, fine-tuned plain Keras model
    print(result.summary()) # FLOPs / params / accuracy before and after

or, with a budget in predicted LiteRT latency instead of FLOPs (`JointPruner.budget = "latency"`,
docs/deploy.md), `target_latency_ratio=0.5`: the two targets are exclusive.

It composes the public pieces, which stay for users who need more control (docs/keras_pipeline.md):
`auto_gate` (skipped for a model that already has gates) -> `split_held_out` (unless `held_out` is data)
-> `JointPruner` + `model.fit(callbacks=[pruner.callback()])` (warm-up epochs, then one agent step per
epoch) -> `pruner.select()` -> `compact_model` -> BatchNorm re-estimated -> fine-tuning `fit` ->
optionally `export_all` (SavedModel + verified TFLite) into `export_dir`.

Cost: each agent step scores `num_samples` sub-networks (the agent's episodes) on `episode_images`
held-out images, and the best `finalists` on all of them; that is the knob that sets the agent's share
of the run time (the shipped configs use 128; 16 is the default here, for a call that should finish).
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from tfprune.cost.flops import CostModel
from tfprune.cost.latency import predicted_latency_ms
from tfprune.data.split import split_held_out
from tfprune.errors import TfpruneError
from tfprune.infra.workdir import COMPACT_MODEL
from tfprune.pruning.pruner import JointPruner
from tfprune.structure import masks as mask_lib
from tfprune.structure.auto_gate import auto_gate
from tfprune.structure.graph import ChannelGraph


class PruneError(TfpruneError, ValueError):
    """A `tfprune.prune` argument that cannot work; the message names the fix."""


@dataclasses.dataclass
class PruneResult:
    """What `prune` returns: the compact model and what it cost and scored before and after.

    `accuracy_before` is the gated model's after joint training (every channel), `accuracy_after` the
    fine-tuned compact model's (BatchNorm statistics re-estimated on training batches for both), both on `val_data` (on the held-out set when there is none:
    `accuracy_on` says which). `cost_before` / `cost_after` are `tfprune.cost.flops.Cost` (MACs, params).
    """

    model: keras.Model  # the compact, fine-tuned plain Keras model
    gated_model: keras.Model  # the gated model after joint training (all channels)
    masks: dict  # group name -> bool array of kept channels: the selected sub-network
    cost_before: object
    cost_after: object
    accuracy_before: float
    accuracy_after: float
    accuracy_on: str  # "val_data" or "held_out"
    pruner: JointPruner
    history: dict  # Keras History.history of the joint phase (agent numbers included)
    export: dict = None  # export_all's report when export_dir was given

    @property
    def flops_ratio(self):
        return self.cost_after.flops / self.cost_before.flops

    @property
    def predicted_latency_ms(self):
        """(full model ms, compact model ms) as the latency budget predicts them (`target_latency_ratio`);
        None under a FLOPs budget. The measured latency is the export's (`export_dir`)."""
        return predicted_latency_ms(self.pruner.budget.cost_model, self.masks)

    @property
    def predicted_latency_ratio(self):
        """The compact model's predicted latency over the full model's (None under a FLOPs budget)."""
        predicted = self.predicted_latency_ms
        return None if predicted is None else predicted[1] / predicted[0]

    def summary(self):
        """A few readable lines: FLOPs, params and accuracy before -> after."""
        b, a = self.cost_before, self.cost_after
        kept = sum(int(np.sum(m)) for m in self.masks.values())
        total = sum(len(m) for m in self.masks.values())
        lines = [f"FLOPs  {b.flops / 1e6:.3f} M -> {a.flops / 1e6:.3f} M ({self.flops_ratio:.1%})",
                 f"params {b.params / 1e6:.4f} M -> {a.params / 1e6:.4f} M ({a.params / b.params:.1%})",
                 f"accuracy ({self.accuracy_on}) {self.accuracy_before:.4f} -> {self.accuracy_after:.4f}",
                 f"channels kept {kept} of {total} in {len(self.masks)} groups"]
        if self.predicted_latency_ms is not None:
            full, pruned = self.predicted_latency_ms
            lines.append(f"latency (predicted, LiteRT) {full:.3f} ms -> {pruned:.3f} ms ({pruned / full:.1%})")
        if self.export:
            lines.append(f"exported to {self.export.get('out_dir', '')}")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def default_warmup(epochs):
    """Plain-training epochs before the first agent step: a tenth of the run (the shipped configs use 10 of
    200 and 5 of 100), at least 1 when there are 3 epochs or more, always leaving one agent step."""
    return int(min(max(round(0.1 * epochs), 1 if epochs >= 3 else 0), max(epochs - 1, 0)))


def prune(model, train_data, val_data=None, *, target_flops_ratio=None, target_latency_ratio=None, epochs=10,
          warmup_epochs=None, finetune_epochs=None, held_out=512, num_samples=16, batch_size=64, optimizer=None, loss=None,
          finetune_optimizer=None, export_dir=None, quantizations=("float", "dynamic"), verbose=1, seed=0,
          **pruner_kwargs):
    """Prunes a Keras CNN to `target_flops_ratio` of its FLOPs (or `target_latency_ratio` of its predicted
    latency) with the agent and returns a `PruneResult`.

    Args:
        model: a plain Keras 3 CNN (functional or Sequential; gated here by `auto_gate`, which copies it) or
            an already gated one (zoo model); classification with integer labels.
        train_data: `(images, labels)` arrays or a `tf.data.Dataset` of `(images, labels)` batches.
        val_data: the same kinds, for validation during `fit` and the reported accuracies (None: the held-out set).
        target_flops_ratio: fraction of the FLOPs kept (0.5 = 2x fewer MACs); the default budget, at 0.5 when
            neither target is given.
        target_latency_ratio: instead, fraction of the predicted latency kept (0.5 = half the full model's
            latency): `JointPruner`'s `budget="latency"` at its `target_latency_ratio`, a per-layer LiteRT
            latency table of this CPU calibrated on whole-model timings (`tfprune.cost.latency`; measuring
            it takes a while the first time, then it is cached). Exclusive with `target_flops_ratio`.
            `PruneResult.predicted_latency_ratio` is the compact model's predicted ratio.
        epochs / warmup_epochs / finetune_epochs: joint training epochs / of them, plain training before the
            first agent step (None: `default_warmup`, a tenth) / fine-tuning epochs of the compact model
            (None: a fifth of `epochs`, at least 1).
        held_out: examples split off `train_data` for the agent's reward (an int, or a fraction in (0, 1);
            `tfprune.data.split_held_out`), or the held-out data itself (`(images, labels)` / a dataset).
        num_samples: sub-networks scored per agent step (the cost knob, see the module docstring).
        batch_size: the batch size of array data (a dataset keeps its own batches).
        optimizer / loss: as for `compile` (default SGD(0.01, momentum 0.9) / sparse categorical cross-entropy,
            from logits unless the model ends in a softmax); `finetune_optimizer`: default a fresh copy of it.
        export_dir: if given, SavedModel + TFLite (`quantizations`, verified against Keras), `masks.json`
            and `compact_model.keras` are written there.
        verbose: Keras' `fit` verbosity (also the agent's one line per step; 0: silent).
        **pruner_kwargs: any other `JointPruner` argument (`policy`, `importance`, `round_to`, ...).
    """
    target_flops_ratio, budget = _budget(target_flops_ratio, target_latency_ratio, pruner_kwargs)
    pruner_kwargs.update(budget)
    warmup = default_warmup(epochs) if warmup_epochs is None else int(warmup_epochs)
    _check(epochs, warmup, target_flops_ratio)
    gated = model if ChannelGraph(model, warn=False).gated_groups else auto_gate(model)
    train, held = _held_out(train_data, held_out, seed)
    train, val = _as_dataset(train, batch_size, seed), _as_dataset(val_data, batch_size)
    _check_images(model, train, "train_data")
    pruner = JointPruner(gated, held, target_flops_ratio=target_flops_ratio, max_epochs=epochs,
                         warmup_epochs=warmup, num_samples=num_samples, seed=seed, **pruner_kwargs)
    loss = loss or _default_loss(model)
    gated.compile(optimizer=optimizer or keras.optimizers.SGD(0.01, momentum=0.9), loss=loss, metrics=["accuracy"])
    history = gated.fit(train, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False,
                        callbacks=[pruner.callback(print if verbose else None)])
    masks = pruner.select().masks
    evaluation = val if val is not None else _as_dataset(held, batch_size)
    _recalibrate_batchnorm(gated, train)  # short runs leave BN's moving averages behind the weights
    accuracy_before = _accuracy(gated, evaluation)
    finetune = max(1, round(0.2 * epochs)) if finetune_epochs is None else int(finetune_epochs)
    compact = _cut_and_finetune(pruner, masks, train, val, finetune, _fresh(finetune_optimizer or gated.optimizer),
                                loss, verbose)
    result = PruneResult(compact, gated, masks, CostModel(gated).full, CostModel(compact).full, accuracy_before,
                         _accuracy(compact, evaluation), "val_data" if val is not None else "held_out", pruner,
                         dict(history.history))
    if export_dir:
        result.export = _export(pruner, result, export_dir, quantizations, held)
    return result


def _cut_and_finetune(pruner, masks, train, val, epochs, optimizer, loss, verbose):
    """The compact model of ``masks``, fine-tuned for ``epochs`` epochs (BN statistics re-estimated
    after the cut and after the fine-tuning)."""
    compact = pruner.compact_model(masks)
    _recalibrate_batchnorm(compact, train)
    compact.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    if epochs:
        compact.fit(train, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False)
        _recalibrate_batchnorm(compact, train)
    return compact


def _budget(target_flops_ratio, target_latency_ratio, pruner_kwargs):
    """(the FLOPs target JointPruner gets, the budget's JointPruner arguments) for the target given: FLOPs
    (0.5 when none is) or latency, never both."""
    if target_flops_ratio is not None and target_latency_ratio is not None:
        raise PruneError(f"prune: target_flops_ratio={target_flops_ratio!r} and target_latency_ratio="
                         f"{target_latency_ratio!r} are two budgets; give one of them (FLOPs or predicted latency).")
    budget = pruner_kwargs.get("budget", "flops" if target_latency_ratio is None else "latency")
    if target_latency_ratio is None:
        if budget == "latency":
            raise PruneError("prune: budget='latency' needs target_latency_ratio=... (the fraction of the predicted "
                             "latency kept, e.g. 0.5); pass that instead of budget.")
        return 0.5 if target_flops_ratio is None else target_flops_ratio, {}
    if budget != "latency":
        raise PruneError(f"prune: target_latency_ratio needs the latency budget, but budget={budget!r} was given; "
                         "drop budget=.")
    number = isinstance(target_latency_ratio, (int, float)) and not isinstance(target_latency_ratio, bool)
    if not number or not 0 < float(target_latency_ratio) <= 1:
        raise PruneError("prune: target_latency_ratio is the fraction of the predicted latency kept, in (0, 1]; "
                         f"got {target_latency_ratio!r}.")
    return 0.5, {"budget": "latency", "target_latency_ratio": float(target_latency_ratio)}


def _check(epochs, warmup, target):
    if int(epochs) < 1 or not 0 <= warmup < int(epochs):
        raise PruneError(f"prune: epochs={epochs} with warmup_epochs={warmup} leaves no agent step; the agent "
                         "needs warmup_epochs < epochs.")
    if not 0 < float(target) < 1:
        raise PruneError(f"prune: target_flops_ratio is the fraction of FLOPs kept, in (0, 1); got {target!r}.")


def _held_out(train_data, held_out, seed):
    """(training data, held-out (images, labels)): split off `train_data`, or `held_out` given as data."""
    if isinstance(held_out, (int, float)) and not isinstance(held_out, bool):
        return split_held_out(train_data, held_out, seed)
    return train_data, held_out


def _as_dataset(data, batch_size, seed=None):
    """Array data as batches (shuffled each epoch when `seed` is given); a dataset or None as it is."""
    if data is None or isinstance(data, tf.data.Dataset):
        return data
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise PruneError("prune: data must be (images, labels) arrays or a tf.data.Dataset of (images, labels) "
                         f"batches; got {type(data).__name__}.")
    images, labels = np.asarray(data[0], np.float32), np.asarray(data[1])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if seed is not None:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _check_images(model, dataset, what):
    """A `PruneError` when the data's image shape cannot feed the model's input (None matches anything)."""
    expected = tuple(model.inputs[0].shape[1:])
    got = tuple(dataset.element_spec[0].shape[1:])
    if len(expected) != len(got) or any(e is not None and g is not None and e != g for e, g in zip(expected, got)):
        raise PruneError(f"prune: {what} has images of shape {got} but the model takes {expected}; resize the "
                         "images (or build the model for their size).")


def _default_loss(model):
    """Sparse categorical cross-entropy; from logits unless the model's last layer is a softmax."""
    last = model.layers[-1]
    softmax = isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) is keras.activations.softmax
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)


def _fresh(optimizer):
    """A new optimizer of the same kind and settings (a Keras optimizer is built for one model's variables)."""
    optimizer = keras.optimizers.get(optimizer)
    config = optimizer.get_config()
    config.pop("iterations", None)
    return type(optimizer).from_config(config)


def _accuracy(model, dataset):
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def _recalibrate_batchnorm(model, dataset, steps=50):
    """Re-estimates BatchNorm statistics of the compact model (forward passes in training mode, no weight
    update, averaging fast): the full network's statistics do not fit the pruned one."""
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.5
    for images, _ in dataset.take(steps):
        model(images, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def _export(pruner, result, out_dir, quantizations, held):
    """SavedModel + TFLite of the compact model, its masks and its .keras file in `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    mask_lib.save_masks(result.masks, os.path.join(out_dir, mask_lib.EXPORTED_MASKS))
    result.model.save(os.path.join(out_dir, COMPACT_MODEL))
    report = pruner.export(out_dir, model=result.model, quantizations=quantizations,
                           representative_data=[held[0][i:i + 32] for i in range(0, min(len(held[0]), 128), 32)],
                           latency=False)
    report.setdefault("out_dir", out_dir)
    return report
