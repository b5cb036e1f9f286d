"""The reward with a refitted classifier (`tfprune.search.head_refit`): cross-fitted, K at once, the same batched
and one at a time, and it recovers what the trained classifier loses when its inputs are pruned."""

import keras
import numpy as np
import pytest

from model_fixtures import random_masks
from tfprune.structure import masks as mask_lib
from tfprune.structure.graph import ChannelGraph
from tfprune.search.head_refit import HeadRefit, classifier_layer
from tfprune.search.scoring import SubnetScorer


def _two_cue_features(n=200, seed=0):
    """Two classes, told apart by channel 0 and, independently, by channel 1; channels 2-5 are noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    features = rng.normal(size=(n, 6)).astype(np.float32) * 0.3
    features[:, 0] += 2.0 * labels - 1.0
    features[:, 1] += 2.0 * labels - 1.0
    kernel = np.zeros((6, 2), np.float32)
    kernel[0] = [-1.0, 1.0]  # the trained classifier reads channel 0 only
    return features, labels, kernel, np.zeros(2, np.float32)


def test_refitting_recovers_a_pruned_cue_the_trained_classifier_relied_on():
    features, labels, kernel, bias = _two_cue_features()
    pruned = features.copy()
    pruned[:, 0] = 0.0  # the sub-network lost channel 0; channel 1 still carries the class
    stacked = np.stack([features, pruned])
    trained = HeadRefit(steps=0).hits(stacked, labels, kernel, bias).numpy() / len(labels)
    refitted = HeadRefit().hits(stacked, labels, kernel, bias).numpy() / len(labels)
    assert trained[0] > 0.95 and trained[1] < 0.6  # the trained classifier is lost without channel 0
    assert refitted[0] > 0.95 and refitted[1] > 0.95  # refitted, both sub-networks are as good


def test_no_steps_is_the_trained_classifier_on_every_image():
    features, labels, kernel, bias = _two_cue_features(n=31)
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=kernel.shape).astype(np.float32)
    stacked = np.stack([features, features * rng.uniform(0, 1, 6).astype(np.float32)])
    expected = [np.sum(np.argmax(f @ kernel + bias, -1) == labels) for f in stacked]
    np.testing.assert_array_equal(HeadRefit(steps=0).hits(stacked, labels, kernel, bias).numpy(), expected)


def test_cross_fitting_does_not_score_what_it_memorised():
    """Pure-noise features with many channels: fitted and scored on the same images a classifier reaches
    ~100%; cross-fitted, each half scored by a fit on the other, it stays near chance."""
    rng = np.random.default_rng(2)
    features = rng.normal(size=(16, 40, 64)).astype(np.float32)
    labels = rng.integers(0, 2, 40)
    kernel, bias = np.zeros((64, 2), np.float32), np.zeros(2, np.float32)
    refit = HeadRefit(steps=200, anchor=0.0)
    w, b = refit.fit(features, labels, kernel, bias)
    memorised = np.mean(np.argmax(np.einsum("knc,kcd->knd", features, w) + b[:, None], -1) == labels)
    cross_fitted = refit.hits(features, labels, kernel, bias).numpy().mean() / len(labels)
    assert memorised > 0.95
    assert cross_fitted < 0.65


@pytest.mark.slow
def test_batched_refit_scores_equal_one_at_a_time(tmp_path):
    from tfprune.models import build_model

    model = build_model("resnet8", input_shape=(8, 8, 3), num_classes=4, width_multiplier=0.5)
    graph = ChannelGraph(model)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(40, 8, 8, 3)).astype(np.float32)
    labels = np.argmax(model(images, training=True), -1)
    scorer = SubnetScorer(model, graph, (images, labels), batch_size=16, pass_images=48, reward_head="refit")
    assert scorer._batched is not None
    mask_sets = [random_masks(graph, seed=s, keep=0.3 + 0.1 * s) for s in range(4)] + [mask_lib.open_masks(graph)]
    before = [np.array(v) for v in model.weights]
    batched = scorer.score_many(mask_sets)
    alone = [scorer.score(m) for m in mask_sets]
    np.testing.assert_allclose(batched, alone, atol=1.01 / len(labels))  # float order may flip one tie
    for now, then in zip(model.weights, before):
        np.testing.assert_array_equal(np.array(now), then)  # the classifier is refitted on copies only
    trained = SubnetScorer(model, graph, (images, labels), batch_size=16, pass_images=48)
    assert not np.allclose(trained.score_many(mask_sets), batched)  # the refit changes the scores


def test_refit_needs_a_dense_classifier_and_a_known_head():
    inputs = keras.Input((8, 8, 3))
    conv_out = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="Dense layer.*reward_head = 'trained'"):
        classifier_layer(conv_out)
    with pytest.raises(ValueError, match="reward_head must be one of"):
        SubnetScorer(conv_out, None, (np.zeros((2, 8, 8, 3)), np.zeros(2)), reward_head="retrained")
    with pytest.raises(ValueError, match="steps >= 0"):
        HeadRefit(steps=-1)
