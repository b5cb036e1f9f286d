"""The alignment regulariser: which weights it sees, its value, and that it empties unselected channels."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfprune.structure.keras_internals import outbound_nodes
from tfprune.pruning.alignment import AlignmentSchedule, GroupLassoAlignment
from tfprune.structure.graph import ChannelGraph

from model_fixtures import mixed_model


def test_penalty_counts_only_channels_outside_the_target():
    model = mixed_model()
    align = GroupLassoAlignment(ChannelGraph(model))
    align.strength.assign(1.0)
    assert float(align.penalty()) == pytest.approx(0.0, abs=1e-3)  # all-ones targets: nothing outside
    mask = np.ones(6, bool)
    mask[[1, 4]] = False
    align.set_targets({"side_gate": mask})
    conv = model.get_layer("side").kernel.numpy()
    bn = outbound_nodes(model.get_layer("side"))[0].operation
    expected = sum(
        np.sqrt((conv[..., c] ** 2).sum() + bn.gamma.numpy()[c] ** 2 + bn.beta.numpy()[c] ** 2) for c in (1, 4)
    )
    assert float(align.penalty()) == pytest.approx(expected, rel=1e-4)


def test_depthwise_kernel_is_part_of_its_expansion_group():
    model = mixed_model()
    align = GroupLassoAlignment(ChannelGraph(model))
    names = [v.path for v, _ in align._slices["exp_gate"]]
    assert any("dw" in n for n in names) and any("expand" in n for n in names)


def test_penalty_gradient_shrinks_unselected_channels_during_training():
    model = mixed_model()
    align = GroupLassoAlignment(ChannelGraph(model))
    align.strength.assign(0.1)
    mask = np.zeros(12, bool)
    mask[:6] = True
    align.set_targets({"b1_gate": mask})
    before = align.channel_norms("b1_gate").numpy()
    optimizer = keras.optimizers.SGD(0.5)
    for _ in range(40):
        with tf.GradientTape() as tape:
            loss = align.penalty()
        variables = model.trainable_variables
        pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables) if g is not None]
        optimizer.apply(*zip(*pairs))
    after = align.channel_norms("b1_gate").numpy()
    np.testing.assert_allclose(after[:6], before[:6], rtol=1e-6)
    assert np.all(after[6:] < 0.2 * before[6:])


def test_proximal_step_zeroes_small_groups_exactly_and_keeps_selected():
    model = mixed_model()
    align = GroupLassoAlignment(ChannelGraph(model))
    align.strength.assign(1.0)
    mask = np.array([1, 0, 1, 0, 1, 0], bool)
    align.set_targets({"side_gate": mask})
    before = align.channel_norms("side_gate").numpy()
    align.proximal_step(step_size=1e3)
    after = align.channel_norms("side_gate").numpy()
    np.testing.assert_allclose(after[mask], before[mask], rtol=1e-6)
    assert np.all(after[~mask] < 1e-3)
    assert align.outside_mass() < 1e-3


def test_schedule():
    schedule = AlignmentSchedule(warmup_epochs=2, ramp_epochs=2, max_strength=1.0)
    assert schedule.in_warmup(1) and not schedule.in_warmup(2)
    assert schedule.strength(0) == 0.0
    assert schedule.strength(2) == 0.5
    assert schedule.strength(5) == 1.0
