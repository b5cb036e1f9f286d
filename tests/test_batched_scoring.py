"""Scoring K sub-networks in one forward pass gives what scoring each alone gives, and leaves the model
as it was (issue 9: the K-mask batched scoring)."""

import keras
import numpy as np
import pytest

from model_fixtures import mixed_model, random_masks
from tfprune.structure import masks as mask_lib
from tfprune.search.batched_scoring import batching_problem
from tfprune.infra.distribute import Collective
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.masks import MaskError
from tfprune.search.scoring import SubnetScorer


def _held_out(n, shape, classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, classes, n)


def _neutral_moving_statistics(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
            layer.moving_variance.assign(np.ones(layer.moving_variance.shape, np.float32))


def _model_state(model):
    return [np.array(v) for v in model.non_trainable_weights]


@pytest.mark.parametrize("reward_bn", ["batch", "moving"])
@pytest.mark.parametrize("which", ["mixed", "resnet8"])
def test_k_masks_in_one_pass_equal_scoring_each_mask_alone(which, reward_bn):
    """Residual-shared gates, depthwise-coupled gates, concat: the per-copy masks and the per-copy BN
    statistics reproduce each sub-network's own score exactly, on a subset and on every image, across
    several passes (7 masks, 3 per pass of 72 images) and several image chunks (batch_size 24 of 60 or 45
    images)."""
    from tfprune.models import build_model

    if which == "mixed":
        model, shape, classes = mixed_model(), (16, 16, 3), 5
    else:
        model, shape, classes = build_model("resnet8", input_shape=(8, 8, 3), num_classes=4, width_multiplier=0.5), \
            (8, 8, 3), 4
    graph = ChannelGraph(model)
    images, _ = _held_out(60, shape, classes)
    _neutral_moving_statistics(model)  # randomised ones make every image one class in "moving" mode
    labels = np.argmax(model(images, training=reward_bn == "batch"), -1)  # the full network's answers
    scorer = SubnetScorer(model, graph, (images, labels), reward_bn, batch_size=24, pass_images=72)
    assert scorer._batched is not None
    mask_sets = [random_masks(graph, seed=s, keep=0.3 + 0.1 * s) for s in range(6)] + [None]
    mask_sets[-1] = mask_lib.open_masks(graph)
    before = _model_state(model)
    subset = np.arange(5, 50)
    for images in (None, subset):
        batched = scorer.score_many(mask_sets, images)
        alone = [scorer.score(m, images) for m in mask_sets]
        np.testing.assert_allclose(batched, alone, atol=1e-6)
        assert len(set(np.round(alone, 4))) > 2  # the sub-networks really differ
    for now, then in zip(_model_state(model), before):
        np.testing.assert_array_equal(now, then)  # gates and BN moving averages untouched
    assert scorer.score_many([]).shape == (0,)


def test_masks_that_do_not_fit_are_refused_by_name():
    model = mixed_model()
    graph = ChannelGraph(model)
    scorer = SubnetScorer(model, graph, _held_out(8, (16, 16, 3), 5), pass_images=32)
    with pytest.raises(MaskError, match="nope"):
        scorer.score_many([{"nope": np.ones(3, bool)}])
    with pytest.raises(MaskError, match="b1_gate.*5 entries.*12 channels"):
        scorer.score_many([{"b1_gate": np.ones(5, bool)}])


def test_a_model_with_gates_inside_a_nested_model_is_scored_one_mask_at_a_time():
    inner = mixed_model()
    outer_input = keras.Input((16, 16, 3))
    outer = keras.Model(outer_input, inner(outer_input))
    assert "nested model" in batching_problem(outer)
    assert batching_problem(inner) is None


class _RecordingWorker(Collective):
    """Worker `index` of `count`, in one process: records what it contributes to every collective and
    answers with what the whole cluster would (`answers`, from a one-worker run)."""

    def __init__(self, index, count, answers):
        super().__init__(index, count, sum_over_workers=self._answer)
        self.contributed, self._answers = [], iter(answers)

    def _answer(self, array):
        self.contributed.append(np.array(array))
        return next(self._answers)


def test_each_worker_scores_its_share_and_every_worker_gets_every_score():
    """Scoring split across workers: worker w scores candidates w, w+W, ... (and its share of the
    finalists); the parts add up to the one-worker scores; the chief's incumbent score is broadcast."""
    from tfprune.models import build_model
    from tfprune.pruning.pruner import JointPruner
    from tfprune.search.scoring import score_step

    model = build_model("resnet8", input_shape=(8, 8, 3), num_classes=4, width_multiplier=0.5)
    pruner = JointPruner(model, _held_out(48, (8, 8, 3), 4), target_flops_ratio=0.5, max_epochs=2, num_samples=4,
                         dynamics_steps=2)
    rng = np.random.default_rng(3)
    candidates = [pruner.budget.masks(rng.uniform(0, 0.8, len(pruner.group_names)))[0] for _ in range(7)]
    whole = score_step(pruner.scorer, candidates, candidates[0], episode_images=20, finalists=3, seed=5)
    answers = [whole.rewards, whole.final, np.array([whole.incumbent], np.float32)]
    workers = [_RecordingWorker(w, 3, answers) for w in range(3)]
    for worker in workers:
        scored = score_step(pruner.scorer, candidates, candidates[0], episode_images=20, finalists=3, seed=5,
                            broadcast=worker)
        np.testing.assert_array_equal(scored.rewards, whole.rewards)
        np.testing.assert_array_equal(scored.finalists, whole.finalists)
        rewards_part, final_part, _ = worker.contributed
        assert np.flatnonzero(rewards_part).tolist() == [i for i in range(7) if i % 3 == worker.index and whole.rewards[i]]
        assert np.count_nonzero(final_part) <= 1  # 3 finalists over 3 workers
    for k, total in enumerate([whole.rewards, whole.final]):
        np.testing.assert_allclose(sum(w.contributed[k] for w in workers), total, atol=1e-6)
    incumbent = [w.contributed[2][0] for w in workers]
    assert incumbent[0] == pytest.approx(whole.incumbent) and incumbent[1:] == [0.0, 0.0]  # the chief's copy
