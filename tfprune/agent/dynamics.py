"""The dynamics (reward) model: a learned representation of each training epoch.

While the CNN trains, the reward of an action (the accuracy of the sub-network it selects) drifts from
epoch to epoch. The dynamics model learns one embedding per epoch; a recurrent network run over the
embeddings of epochs 0..e summarises that history into the *representation* of epoch e, which is the
agent's observation. A decoder maps (representation, action) to the predicted reward, and the whole
model is trained to reconstruct the rewards observed so far (a replay buffer of (epoch, action,
reward)). With `use_representation=False` the decoder sees the action only (ablation / baseline).

Keras 3 objects only (the agent's tf_keras networks never meet these): the representation leaves
this module as a numpy vector.
"""

import gin
import keras
import numpy as np
import tensorflow as tf
from keras import ops

RNN_TYPES = ("gru", "lstm")


@gin.configurable
class DynamicsModel:
    """Per-epoch embeddings + RNN representation + reward decoder, trained on observed rewards.

    Args:
        action_dim: length of an action vector.
        max_epochs: number of training epochs (one embedding each).
        embed_dim: size of an epoch embedding.
        hidden_dim: RNN units = size of the representation.
        rnn: "gru" or "lstm".
        decoder_layers: hidden layer sizes of the decoder MLP.
        learning_rate: Adam learning rate.
        batch_size: minibatch size of `train()` (full batch when the buffer is smaller).
        use_representation: False = the decoder sees the action only (ablation).
        max_buffer: keep only the most recent `max_buffer` samples (None = all).
        seed: seeds initialisers and minibatch sampling.
    """

    def __init__(
        self,
        action_dim,
        max_epochs,
        embed_dim=16,
        hidden_dim=32,
        rnn="gru",
        decoder_layers=(64, 64),
        learning_rate=3e-3,
        batch_size=256,
        use_representation=True,
        max_buffer=None,
        seed=None,
    ):
        if rnn not in RNN_TYPES:
            raise ValueError(f"rnn must be one of {RNN_TYPES}, got {rnn!r}.")
        self.action_dim = int(action_dim)
        self.max_epochs = int(max_epochs)
        self.embed_dim = int(embed_dim)
        self.hidden_dim = int(hidden_dim)
        self.rnn_type = rnn
        self.batch_size = int(batch_size)
        self.use_representation = bool(use_representation)
        self.max_buffer = max_buffer
        self._rng = np.random.default_rng(seed)
        base = 0 if seed is None else int(seed) * 1000

        def init(kind, k, **kw):
            return getattr(keras.initializers, kind)(seed=None if seed is None else base + k, **kw)

        self.embedding = keras.layers.Embedding(
            self.max_epochs,
            self.embed_dim,
            embeddings_initializer=init("RandomNormal", 1, stddev=0.1),
            name="epoch_embedding",
        )
        rnn_cls = keras.layers.GRU if rnn == "gru" else keras.layers.LSTM
        self.rnn = rnn_cls(
            self.hidden_dim,
            return_sequences=True,
            kernel_initializer=init("GlorotUniform", 2),
            recurrent_initializer=init("Orthogonal", 3),
            name=f"epoch_{rnn}",
        )
        decoder = [keras.Input((self.action_dim + (self.hidden_dim if self.use_representation else 0),))]
        for i, units in enumerate(decoder_layers):
            decoder.append(
                keras.layers.Dense(units, activation="relu", kernel_initializer=init("GlorotUniform", 10 + i))
            )
        decoder.append(keras.layers.Dense(1, kernel_initializer=init("GlorotUniform", 99)))
        self.decoder = keras.Sequential(decoder, name="reward_decoder")
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)

        # Build every variable now (embedding, RNN, decoder, optimizer slots) so that a checkpoint
        # restore assigns values immediately.
        self.embedding.build((None,))
        self.rnn.build((1, None, self.embed_dim))
        self.optimizer.build(self.trainable_variables)

        self._epochs = np.zeros((0,), np.int32)
        self._actions = np.zeros((0, self.action_dim), np.float32)
        self._rewards = np.zeros((0,), np.float32)

        spec = [
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, self.action_dim], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([], tf.int32),
        ]
        self._train_step = tf.function(self._train_step_impl, input_signature=spec)
        self._predict_fn = tf.function(self._predict_impl, input_signature=spec[:2] + spec[3:])
        self._representations_fn = tf.function(
            self._representations, input_signature=[tf.TensorSpec([], tf.int32)]
        )

    # ------------------------------------------------------------------ model
    @property
    def trainable_variables(self):
        variables = list(self.decoder.trainable_variables)
        if self.use_representation:
            variables = self.embedding.trainable_variables + self.rnn.trainable_variables + variables
        return variables

    def _representations(self, horizon):
        """Representations of epochs 0..horizon-1 -> [horizon, hidden_dim] (causal: row e sees 0..e)."""
        embedded = self.embedding(ops.arange(horizon))
        return self.rnn(embedded[None])[0]

    def _forward(self, epochs, actions, horizon):
        if not self.use_representation:
            return self.decoder(actions)[:, 0]
        reps = ops.take(self._representations(horizon), epochs, axis=0)
        return self.decoder(ops.concatenate([reps, actions], axis=-1))[:, 0]

    def _train_step_impl(self, epochs, actions, rewards, horizon):
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(self._forward(epochs, actions, horizon) - rewards))
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def _predict_impl(self, epochs, actions, horizon):
        return self._forward(epochs, actions, horizon)

    # --------------------------------------------------------------- buffer
    def _check_epochs(self, epochs):
        epochs = np.asarray(epochs, np.int32)
        if epochs.size and (epochs.min() < 0 or epochs.max() >= self.max_epochs):
            raise ValueError(f"epochs must lie in [0, {self.max_epochs}), got {epochs.min()}..{epochs.max()}.")
        return epochs

    def _batch(self, epoch, actions, rewards=None):
        actions = np.asarray(actions, np.float32)
        if actions.ndim == 1:
            actions = actions[None]
        if actions.ndim != 2 or actions.shape[1] != self.action_dim:
            raise ValueError(f"actions must be [N, {self.action_dim}], got {actions.shape}.")
        n = actions.shape[0]
        epochs = self._check_epochs(np.broadcast_to(np.asarray(epoch, np.int32), (n,)))
        if rewards is None:
            return epochs, actions
        rewards = np.asarray(rewards, np.float32).reshape(-1)
        if rewards.shape[0] != n:
            raise ValueError(f"got {n} actions but {rewards.shape[0]} rewards.")
        return epochs, actions, rewards

    def observe(self, epoch, actions, rewards):
        """Appends samples to the replay buffer. `epoch`: an int or one int per action; actions [N, D]; rewards [N]."""
        epochs, actions, rewards = self._batch(epoch, actions, rewards)
        self._epochs = np.concatenate([self._epochs, epochs])
        self._actions = np.concatenate([self._actions, actions])
        self._rewards = np.concatenate([self._rewards, rewards])
        if self.max_buffer is not None and len(self._rewards) > self.max_buffer:
            self._epochs = self._epochs[-self.max_buffer :]
            self._actions = self._actions[-self.max_buffer :]
            self._rewards = self._rewards[-self.max_buffer :]

    @property
    def buffer_size(self):
        return int(self._rewards.shape[0])

    def train(self, steps=100):
        """`steps` Adam steps on the buffer -> mean loss of the last min(steps, 10) steps (nan if empty)."""
        n = self.buffer_size
        if n == 0:
            return float("nan")
        horizon = tf.constant(int(self._epochs.max()) + 1, tf.int32)
        losses = []
        for _ in range(int(steps)):
            if n > self.batch_size:
                idx = self._rng.integers(0, n, self.batch_size)
                batch = (self._epochs[idx], self._actions[idx], self._rewards[idx])
            else:
                batch = (self._epochs, self._actions, self._rewards)
            losses.append(float(self._train_step(*batch, horizon)))
        return float(np.mean(losses[-10:]))

    def evaluate(self, epochs, actions, rewards):
        """Mean squared error of the predicted rewards on the given samples."""
        epochs, actions, rewards = self._batch(epochs, actions, rewards)
        return float(np.mean((self.predict(epochs, actions) - rewards) ** 2))

    # -------------------------------------------------------------- queries
    def representation(self, epoch):
        """Representation of epoch `epoch` -> float32 [hidden_dim] (the agent's observation)."""
        epoch = int(self._check_epochs(epoch))
        return self._representations_fn(tf.constant(epoch + 1, tf.int32)).numpy()[epoch].astype(np.float32)

    def predict(self, epoch, actions):
        """Predicted rewards -> float32 [N]. `epoch`: an int or one int per action."""
        epochs, actions = self._batch(epoch, actions)
        horizon = tf.constant(int(epochs.max()) + 1 if epochs.size else 1, tf.int32)
        return self._predict_fn(epochs, actions, horizon).numpy().astype(np.float32)

    # ---------------------------------------------------------- checkpoints
    @property
    def checkpoint_items(self):
        """Trackables to put in a `tf.train.Checkpoint`: embedding, RNN, decoder, optimizer."""
        return {
            "dynamics_embedding": self.embedding,
            "dynamics_rnn": self.rnn,
            "dynamics_decoder": self.decoder,
            "dynamics_optimizer": self.optimizer,
        }

    def get_state(self):
        """The replay buffer (and sampling generator state) as numpy arrays / plain Python."""
        return {
            "epochs": self._epochs.copy(),
            "actions": self._actions.copy(),
            "rewards": self._rewards.copy(),
            "rng": self._rng.bit_generator.state,
        }

    def set_state(self, state):
        """Restores what `get_state()` returned (the replay buffer, and the sampling state if present)."""
        rewards = np.asarray(state["rewards"], np.float32).reshape(-1)
        actions = np.asarray(state["actions"], np.float32).reshape(-1, self.action_dim)
        epochs = self._check_epochs(np.asarray(state["epochs"], np.int32).reshape(-1))
        if not len(epochs) == len(actions) == len(rewards):
            raise ValueError("state: epochs, actions and rewards must have the same length.")
        self._epochs, self._actions, self._rewards = epochs.copy(), actions.copy(), rewards.copy()
        if "rng" in state:
            self._rng.bit_generator.state = state["rng"]
