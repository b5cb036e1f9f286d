"""Scoring sub-networks: the held-out accuracy that is the agent's reward.

A sub-network is scored by writing its hard masks into the gates and classifying held-out *training*
images (kept out of weight training). BatchNorm runs on batch statistics by default: the moving
averages were collected on the full network and do not fit a sub-network. Scoring in training mode
updates those moving averages, so they are saved and restored around every score, as are the gates:
scoring never changes the model.
"""

from typing import NamedTuple

import gin
import keras
import numpy as np
import tensorflow as tf

from tfprune.structure import masks as mask_lib
from tfprune.search.batched_scoring import BatchedCounter, batching_problem
from tfprune.infra.distribute import Collective
from tfprune.search.head_refit import REWARD_HEADS, HeadRefit, classifier_layer
from tfprune.errors import TfpruneError
from tfprune.metrics import count_correct

REWARD_BN_MODES = ("batch", "moving")


@gin.configurable
class SubnetScorer:
    """Held-out accuracy of any sub-network of one gated model.

    Args:
        model: the gated Keras model.
        graph: its `ChannelGraph` (for the all-open mask of the full network).
        held_out: (images, labels) arrays or a `tf.data.Dataset` of batches.
        reward_bn: "batch" (sub-network's own batch statistics) or "moving" (full network's averages).
        batch_size: images per forward pass; bounds device memory at any held-out size, and is the
            batch whose statistics BatchNorm uses in "batch" mode.
        pass_images: most images in one forward pass of `score_many`, which scores K sub-networks at
            once on K copies of a batch (`tfprune.search.batched_scoring`): K = pass_images // (images in a
            batch). Bounds device memory; a K of 1, or a model that cannot be batched, scores one
            sub-network at a time.
        reward_head: "trained" (the model's classifier as it is) or "refit" (each sub-network's
            classifier refitted on half of the scored images and scored on the other half, and vice
            versa: `tfprune.search.head_refit`, which says why).
    """

    def __init__(self, model, graph, held_out, reward_bn="batch", batch_size=256, pass_images=1024,
                 reward_head="trained"):
        if reward_bn not in REWARD_BN_MODES:
            raise ValueError(f"reward_bn must be 'batch' or 'moving', got {reward_bn!r}.")
        if reward_head not in REWARD_HEADS:
            raise ValueError(f"reward_head must be one of {REWARD_HEADS}, got {reward_head!r}.")
        self.model = model
        self.graph = graph
        self.images, self.labels = as_arrays(held_out)
        self.batch_size = int(batch_size)
        self._bn_moving = [
            v for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)
        ]
        training = reward_bn == "batch"
        self._count = tf.function(lambda images, labels: count_correct(model(images, training=training), labels),
                                  reduce_retracing=True)
        self.pass_images = int(pass_images)
        self.refit = HeadRefit() if reward_head == "refit" else None
        self.classifier = classifier_layer(model) if self.refit else None
        if self.refit:
            features = keras.Model(model.inputs, self.classifier.input)
            self._features = tf.function(lambda images: features(images, training=training), reduce_retracing=True)
        self._batched = None if batching_problem(model) else BatchedCounter(model, training, self.classifier)

    def score_many(self, mask_sets, subset=None):
        """[N] accuracies of N sub-networks (as `score` gives them, K per forward pass when the model
        allows it); the model is left untouched."""
        images, labels = (self.images, self.labels) if subset is None else (self.images[subset], self.labels[subset])
        per_pass = self.pass_images // min(self.batch_size, len(labels))
        if self._batched is None or per_pass <= 1:
            return np.array([self.score(m, subset) for m in mask_sets], np.float32)
        hits = []
        for first in range(0, len(mask_sets), per_pass):
            stacked = self._batched.stack(mask_sets[first:first + per_pass])
            if self.refit:
                features = [self._batched.features(x, stacked) for x, _ in self._chunks(images, labels)]
                hits.append(self._refit_hits(np.concatenate(features, axis=1), labels))
            else:
                hits.append(sum(self._batched.count(x, y, stacked) for x, y in self._chunks(images, labels)))
        return (np.concatenate(hits or [np.zeros(0)]) / len(labels)).astype(np.float32)

    def score(self, masks=None, subset=None):
        """Accuracy of a sub-network (None = the full network) on the held-out images, or on the
        `subset` (indices) of them; gates and BN statistics restored after."""
        saved_gates = mask_lib.read_masks(self.model)
        saved_bn = [v.numpy() for v in self._bn_moving]
        try:
            mask_lib.apply_masks(self.model, masks if masks is not None else mask_lib.open_masks(self.graph))
            if subset is None:
                return self._accuracy(self.images, self.labels)
            return self._accuracy(self.images[subset], self.labels[subset])
        finally:
            mask_lib.apply_masks(self.model, saved_gates)
            for variable, value in zip(self._bn_moving, saved_bn):
                variable.assign(value)

    def _accuracy(self, images, labels):
        if self.refit:
            features = np.concatenate([self._features(x).numpy() for x, _ in self._chunks(images, labels)])
            return float(self._refit_hits(features[None], labels)[0]) / len(labels)
        return sum(float(self._count(x, y)) for x, y in self._chunks(images, labels)) / len(labels)

    def _refit_hits(self, features, labels):
        """[K] hits of K sub-networks' classifier inputs [K, N, C], each with its classifier refitted."""
        kernel = self.classifier.kernel
        bias = self.classifier.bias if self.classifier.use_bias else np.zeros(kernel.shape[-1], np.float32)
        return self.refit.hits(features, labels, kernel, bias).numpy()

    def _chunks(self, images, labels):
        """The forward passes' batches: `batch_size` images each, the batches whose statistics BatchNorm
        uses in "batch" mode, so one-at-a-time and K-at-a-time scoring see the same batches."""
        for start in range(0, len(labels), self.batch_size):
            yield images[start:start + self.batch_size], labels[start:start + self.batch_size]


class StepScores(NamedTuple):
    """The scores of one agent step.

    rewards: [N] what the policy learns from (every candidate on one shared image subset);
    finalists: indices of the candidates also scored on every held-out image, with `final` [F] those
    scores (the alignment target is chosen on them); incumbent: the current target rescored on every
    image (None when not asked); images: images per candidate reward.
    """

    rewards: np.ndarray
    finalists: np.ndarray
    final: np.ndarray
    incumbent: object
    images: int


def score_step(scorer, candidates, incumbent=None, episode_images=None, finalists=4, seed=0, broadcast=None):
    """Scores many candidate mask sets cheaply, the final choice carefully.

    With `episode_images` below the held-out size and more than `finalists` candidates, every
    candidate is scored on the same random subset of that many held-out images (drawn from `seed`:
    a new subset each agent step; shared, so differences between candidates are not blurred by
    differences between subsets), and only the `finalists` best are rescored on every image.
    Otherwise every candidate is scored on every image. With several workers (`broadcast`, a
    `tfprune.infra.distribute.Collective`; None is the local one) each scores its share of the candidates
    and of the finalists and all get every score, so that every worker takes the same decisions.
    """
    collective = Collective() if broadcast is None else broadcast
    n_images = len(scorer.labels)
    cheap = episode_images is not None and int(episode_images) < n_images and len(candidates) > finalists
    subset = None
    if cheap:
        subset = np.sort(np.random.default_rng(seed).choice(n_images, int(episode_images), replace=False))
    rewards = _score_shares(scorer, candidates, subset, collective)
    if cheap:
        chosen = np.argsort(-np.nan_to_num(rewards, nan=-np.inf), kind="stable")[:finalists]
        final = _score_shares(scorer, [candidates[i] for i in chosen], None, collective)
    else:
        chosen, final = np.arange(len(candidates)), rewards
    extra = None if incumbent is None else float(collective(np.array([scorer.score(incumbent)]))[0])
    return StepScores(rewards, chosen, final, extra, int(episode_images) if cheap else n_images)


def _score_shares(scorer, mask_sets, subset, collective):
    """Every worker scores its share of `mask_sets`; every worker gets all the scores."""
    mine = collective.share(len(mask_sets))
    scores = np.zeros(len(mask_sets), np.float32)
    scores[mine] = scorer.score_many([mask_sets[i] for i in mine], subset)
    return collective.gather(scores)


def as_arrays(held_out):
    """The held-out data as two host arrays: small, scored many times, fed in bounded chunks."""
    if isinstance(held_out, tf.data.Dataset):
        if not (isinstance(held_out.element_spec, tuple) and len(held_out.element_spec) == 2):
            _pair(f"a tf.data.Dataset of {held_out.element_spec}")
        images, labels = [], []
        for x, y in held_out:
            images.append(np.asarray(x))
            labels.append(np.asarray(y))
        if not images:
            raise ValueError("The held-out dataset is empty: the reward needs at least one batch of examples.")
        held_out = (np.concatenate(images), np.concatenate(labels))
    images, labels = _pair(held_out)
    if len(images) != len(labels) or len(labels) == 0:
        raise ValueError(f"held_out needs as many labels as images (got {len(images)} and {len(labels)}), at least one.")
    return np.asarray(images, np.float32), np.asarray(labels).reshape(-1).astype(np.int32)


class HeldOutError(TfpruneError, ValueError):
    """`held_out` is not (images, labels) nor a dataset of (images, labels) batches."""


def _pair(held_out):
    """`held_out` as (images, labels), or a `HeldOutError` naming the two forms it may take."""
    if isinstance(held_out, (tuple, list)) and len(held_out) == 2:
        return held_out
    what = (held_out if isinstance(held_out, str) else f"an array of shape {tuple(np.shape(held_out))}"
            if hasattr(held_out, "shape") else type(held_out).__name__)
    raise HeldOutError(f"held_out must be (images, labels): a pair of arrays, or a tf.data.Dataset of "
                       f"(images, labels) batches; got {what}. Pass the labels too, e.g. held_out=(x_held, y_held), "
                       "or split them off your training data with tfprune.data.split_held_out.")
