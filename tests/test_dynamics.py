"""DynamicsModel: the epoch representation explains a drifting reward; LSTM; state/checkpoint round trips."""

import numpy as np
import pytest
import tensorflow as tf

from tfprune.search.agent import DynamicsModel

EPOCHS, DIM, MAX_RATIO = 8, 4, 0.7
C0 = np.array([0.1, 0.6, 0.1, 0.6])
C1 = np.array([0.6, 0.1, 0.6, 0.1])


def _center(epoch):
    return C0 + (C1 - C0) * epoch / (EPOCHS - 1)


def _samples(rng, per_epoch):
    """reward(epoch, a) = 1 - ||a - c(epoch)||^2, c moving linearly across epochs."""
    epochs = np.repeat(np.arange(EPOCHS), per_epoch).astype(np.int32)
    actions = rng.uniform(0.0, MAX_RATIO, (len(epochs), DIM)).astype(np.float32)
    centers = np.stack([_center(e) for e in epochs])
    rewards = (1.0 - ((actions - centers) ** 2).sum(axis=1)).astype(np.float32)
    return epochs, actions, rewards


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return _samples(rng, 64), _samples(rng, 32)


def _fit(train, use_representation, rnn="gru", steps=400):
    model = DynamicsModel(DIM, max_epochs=EPOCHS, rnn=rnn, use_representation=use_representation, seed=0)
    for epoch in range(EPOCHS):  # one epoch at a time, as the trainer does
        sel = train[0] == epoch
        model.observe(epoch, train[1][sel], train[2][sel])
    loss = model.train(steps)
    return model, loss


def test_representation_explains_drift(data):
    train, held_out = data
    with_rep, loss = _fit(train, True)
    without_rep, _ = _fit(train, False)
    mse_with = with_rep.evaluate(*held_out)
    mse_without = without_rep.evaluate(*held_out)
    print(f"held-out MSE with representation {mse_with:.5f}, without {mse_without:.5f}")
    assert np.isfinite(loss)
    assert mse_with * 5 < mse_without
    assert mse_with < 0.005
    rep = with_rep.representation(3)
    assert rep.shape == (32,) and rep.dtype == np.float32
    # Representations differ across epochs (they carry the drift).
    assert np.abs(with_rep.representation(0) - with_rep.representation(EPOCHS - 1)).max() > 1e-3


def test_lstm_builds_and_trains(data):
    train, held_out = data
    model = DynamicsModel(DIM, max_epochs=EPOCHS, rnn="lstm", hidden_dim=8, seed=1)
    model.observe(train[0], train[1], train[2])
    before = model.evaluate(*held_out)
    model.train(60)
    after = model.evaluate(*held_out)
    assert after < before
    assert model.representation(EPOCHS - 1).shape == (8,)
    assert model.predict(2, train[1][:5]).shape == (5,)


def test_bad_arguments():
    with pytest.raises(ValueError):
        DynamicsModel(DIM, max_epochs=EPOCHS, rnn="transformer")
    model = DynamicsModel(DIM, max_epochs=EPOCHS)
    with pytest.raises(ValueError):
        model.observe(EPOCHS, np.zeros((2, DIM)), np.zeros(2))
    with pytest.raises(ValueError):
        model.observe(0, np.zeros((2, DIM + 1)), np.zeros(2))
    assert np.isnan(model.train(3))


def test_state_and_checkpoint_round_trip(data, tmp_path):
    train, held_out = data
    model = DynamicsModel(DIM, max_epochs=EPOCHS, hidden_dim=8, seed=2)
    model.observe(train[0][:100], train[1][:100], train[2][:100])
    model.train(20)
    state = model.get_state()
    ckpt = tf.train.Checkpoint(**model.checkpoint_items)
    path = ckpt.save(str(tmp_path / "dyn"))
    reference = model.predict(held_out[0], held_out[1])
    rep = model.representation(5)

    model.observe(train[0][100:], train[1][100:], train[2][100:])
    model.train(20)
    assert not np.allclose(model.predict(held_out[0], held_out[1]), reference)

    ckpt.restore(path).assert_consumed()
    model.set_state(state)
    np.testing.assert_allclose(model.predict(held_out[0], held_out[1]), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.representation(5), rep, rtol=1e-6, atol=1e-6)
    assert model.buffer_size == 100

    # A fresh model restored from the checkpoint + state continues identically.
    fresh = DynamicsModel(DIM, max_epochs=EPOCHS, hidden_dim=8, seed=99)
    tf.train.Checkpoint(**fresh.checkpoint_items).restore(path).assert_consumed()
    fresh.set_state(state)
    np.testing.assert_allclose(fresh.predict(held_out[0], held_out[1]), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fresh.train(5), model.train(5), rtol=1e-5)


def test_empty_state_round_trip():
    model = DynamicsModel(DIM, max_epochs=EPOCHS, hidden_dim=8)
    state = model.get_state()
    model.observe(1, np.zeros((3, DIM)), np.ones(3))
    model.set_state(state)
    assert model.buffer_size == 0


def test_replay_buffer_keeps_recent_and_samples():
    from tfprune.search.agent.dynamics import ReplayBuffer

    buffer = ReplayBuffer(DIM, max_size=5)
    for epoch in range(3):
        buffer.append(np.full(3, epoch, np.int32), np.full((3, DIM), epoch, np.float32), np.full(3, epoch, np.float32))
    assert len(buffer) == 5
    np.testing.assert_array_equal(buffer.epochs, [1, 1, 2, 2, 2])
    assert set(buffer.state()) == {"epochs", "actions", "rewards"}

    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    epochs, _, _ = buffer.sample(rng, batch_size=8)  # not larger than the batch: everything, no draw
    np.testing.assert_array_equal(epochs, buffer.epochs)
    assert rng.bit_generator.state == before
    epochs, actions, rewards = buffer.sample(rng, batch_size=4)
    assert epochs.shape == (4,) and actions.shape == (4, DIM) and rewards.shape == (4,)
    np.testing.assert_array_equal(actions[:, 0], rewards)


def test_max_buffer_and_layer_attributes():
    model = DynamicsModel(DIM, max_epochs=EPOCHS, hidden_dim=8, max_buffer=4, seed=0)
    model.observe(0, np.zeros((3, DIM)), np.zeros(3))
    model.observe(1, np.ones((3, DIM)), np.ones(3))
    assert model.buffer_size == 4
    np.testing.assert_array_equal(model.get_state()["epochs"], [0, 1, 1, 1])
    items = model.checkpoint_items
    assert items["dynamics_embedding"] is model.embedding and items["dynamics_rnn"] is model.rnn
    assert items["dynamics_decoder"] is model.decoder
    assert len(model.trainable_variables) == len(model.network.trainable_variables) > 0
