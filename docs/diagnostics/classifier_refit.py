"""Diagnosis (CHANGELOG.md, "Hand-made structures, VGG-11 and reward variants"): is the last group over-valued by the agent's reward because
its pruned channels' means vanish from the logits, or because the classifier is not re-adapted?

For a finished run, on its own held-out training images (never trained on), it cuts a share of the
target's kept channels in the last group and in the third-to-last, and scores each cut three ways:
with the trained classifier, with the pruned GAP features replaced by their means, and with the
Dense layer refitted exactly as the reward option `SubnetScorer.reward_head = "refit"` refits it
(`tfprune.search.head_refit.HeadRefit`, cross-fitted on the two halves). Batch-statistics BatchNorm, as the
reward uses.

    python docs/diagnostics/classifier_refit.py runs/vgg5/uniform/seed0
"""

import sys
from pathlib import Path

import gin
import keras
import numpy as np

import tfprune  # noqa: F401  (registers the gate layer and the gin configurables)
from tfprune.structure import masks as mask_lib
from tfprune.data import build_datasets
from tfprune.structure.gates import gates_of
from tfprune.search.head_refit import HeadRefit


def main(run_dir):
    run_dir = Path(run_dir)
    gin.parse_config_files_and_bindings([str(run_dir / "config.gin")], [], skip_unknown=True)
    seed = gin.query_parameter("run.seed") if "run.seed" in gin.config_str() else 0
    data = build_datasets(seed=seed)
    x, y = (np.concatenate(part) for part in zip(*[(a.numpy(), b.numpy()) for a, b in data.held_out]))
    y = y.ravel()
    model = keras.saving.load_model(run_dir / "gated_model.keras")
    gates = gates_of(model)
    names = list(gates)
    target = {name: gate.get_mask().copy() for name, gate in gates.items()}
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    dense = model.get_layer("logits")

    def gap(masks):
        mask_lib.apply_masks(model, masks)
        return features(x, training=True).numpy()

    means = gap({**target, names[-1]: np.ones_like(target[names[-1]])}).mean(0)
    refit = HeadRefit()
    print(f"target: {_accuracy(gap(target), y, dense.kernel.numpy(), dense.bias.numpy()):.3f}")
    rng = np.random.default_rng(0)
    for share in (0.25, 0.5, 0.75):
        for group in (names[-1], names[-3]):
            masks = dict(target)
            masks[group] = target[group].copy()
            masks[group][rng.choice(np.flatnonzero(target[group]), int(target[group].sum() * share), False)] = 0
            f = gap(masks)
            plain = _accuracy(f, y, dense.kernel.numpy(), dense.bias.numpy())
            replaced = f.copy()
            if group == names[-1]:
                replaced[:, masks[group] == 0] = means[masks[group] == 0]
            mean_replaced = _accuracy(replaced, y, dense.kernel.numpy(), dense.bias.numpy())
            refitted = float(refit.hits(f[None], y, dense.kernel, dense.bias)[0]) / len(y)
            print(f"cut {share:.2f} of {group}'s kept channels: trained classifier {plain:.3f}, means replaced "
                  f"{mean_replaced:.3f}, refitted {refitted:.3f}")


def _accuracy(features, labels, kernel, bias):
    return float(((features @ kernel + bias).argmax(1) == labels).mean())


if __name__ == "__main__":
    main(sys.argv[1])
