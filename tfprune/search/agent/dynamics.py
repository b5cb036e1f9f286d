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


def _check_epochs(epochs, max_epochs):
    """Epoch indices as int32, rejected up front: an out-of-range index would silently gather garbage."""
    epochs = np.asarray(epochs, np.int32)
    if epochs.size and (epochs.min() < 0 or epochs.max() >= max_epochs):
        raise ValueError(f"epochs must lie in [0, {max_epochs}), got {epochs.min()}..{epochs.max()}.")
    return epochs


def _as_samples(epoch, actions, rewards, action_dim, max_epochs):
    """Validates a caller's samples -> (epochs [N], actions [N, D]) or, with rewards, (..., rewards [N]).

    `epoch` is an int (shared by all actions) or one int per action; one action may be a vector [D].
    """
    actions = np.asarray(actions, np.float32)
    if actions.ndim == 1:
        actions = actions[None]
    if actions.ndim != 2 or actions.shape[1] != action_dim:
        raise ValueError(f"actions must be [N, {action_dim}], got {actions.shape}.")
    n = actions.shape[0]
    epochs = _check_epochs(np.broadcast_to(np.asarray(epoch, np.int32), (n,)), max_epochs)
    if rewards is None:
        return epochs, actions
    rewards = np.asarray(rewards, np.float32).reshape(-1)
    if rewards.shape[0] != n:
        raise ValueError(f"got {n} actions but {rewards.shape[0]} rewards.")
    return epochs, actions, rewards


# ----------------------------------------------------------------------------------------------------
# The network: epoch embeddings -> RNN representation -> reward decoder
# ----------------------------------------------------------------------------------------------------


class RewardNetwork:
    """The Keras 3 layers of the dynamics model and the two computations built from them.

    A plain holder, not a `keras.Model`: the layers are checkpointed one by one under the keys of
    `DynamicsModel.checkpoint_items`, and each gets its own seeded initialiser (`seed * 1000 + k`) so
    that seeded runs reproduce. Constructing it creates the decoder's variables; `build()` creates
    the embedding's and the RNN's.
    """

    def __init__(self, action_dim, max_epochs, embed_dim, hidden_dim, rnn, decoder_layers, use_representation,
                 seed):
        self.use_representation = use_representation
        self.embed_dim = embed_dim
        base = 0 if seed is None else int(seed) * 1000

        def init(kind, k, **kw):
            return getattr(keras.initializers, kind)(seed=None if seed is None else base + k, **kw)

        self.embedding = keras.layers.Embedding(
            max_epochs,
            embed_dim,
            embeddings_initializer=init("RandomNormal", 1, stddev=0.1),
            name="epoch_embedding",
        )
        rnn_cls = keras.layers.GRU if rnn == "gru" else keras.layers.LSTM
        self.rnn = rnn_cls(
            hidden_dim,
            return_sequences=True,
            kernel_initializer=init("GlorotUniform", 2),
            recurrent_initializer=init("Orthogonal", 3),
            name=f"epoch_{rnn}",
        )
        decoder = [keras.Input((action_dim + (hidden_dim if use_representation else 0),))]
        for i, units in enumerate(decoder_layers):
            decoder.append(
                keras.layers.Dense(units, activation="relu", kernel_initializer=init("GlorotUniform", 10 + i))
            )
        decoder.append(keras.layers.Dense(1, kernel_initializer=init("GlorotUniform", 99)))
        self.decoder = keras.Sequential(decoder, name="reward_decoder")

    def build(self):
        """Creates the embedding and RNN variables (the decoder has its own since construction)."""
        self.embedding.build((None,))
        self.rnn.build((1, None, self.embed_dim))

    @property
    def trainable_variables(self):
        """The decoder's variables, preceded by the embedding's and RNN's when they are used."""
        variables = list(self.decoder.trainable_variables)
        if self.use_representation:
            variables = self.embedding.trainable_variables + self.rnn.trainable_variables + variables
        return variables

    def representations(self, horizon):
        """Representations of epochs 0..horizon-1 -> [horizon, hidden_dim] (causal: row e sees 0..e)."""
        embedded = self.embedding(ops.arange(horizon))
        return self.rnn(embedded[None])[0]

    def __call__(self, epochs, actions, horizon):
        """Predicted rewards [N] of `actions` taken at `epochs` (all < horizon)."""
        if not self.use_representation:
            return self.decoder(actions)[:, 0]
        reps = ops.take(self.representations(horizon), epochs, axis=0)
        return self.decoder(ops.concatenate([reps, actions], axis=-1))[:, 0]


# ----------------------------------------------------------------------------------------------------
# The replay buffer of (epoch, action, reward)
# ----------------------------------------------------------------------------------------------------


class ReplayBuffer:
    """Every (epoch, action, reward) observed so far, optionally only the most recent `max_size`.

    The dynamics model is refit on the whole history each agent step (not just the newest epoch),
    which is what lets the representation explain how the reward drifts across epochs.
    """

    def __init__(self, action_dim, max_size=None):
        self.max_size = max_size
        self.epochs = np.zeros((0,), np.int32)
        self.actions = np.zeros((0, action_dim), np.float32)
        self.rewards = np.zeros((0,), np.float32)

    def __len__(self):
        return int(self.rewards.shape[0])

    def append(self, epochs, actions, rewards):
        """Adds validated samples, then drops the oldest beyond `max_size`."""
        self.epochs = np.concatenate([self.epochs, epochs])
        self.actions = np.concatenate([self.actions, actions])
        self.rewards = np.concatenate([self.rewards, rewards])
        if self.max_size is not None and len(self) > self.max_size:
            self.epochs = self.epochs[-self.max_size :]
            self.actions = self.actions[-self.max_size :]
            self.rewards = self.rewards[-self.max_size :]

    def replace(self, epochs, actions, rewards):
        """Replaces the contents with copies of validated arrays of equal length (a state restore)."""
        self.epochs, self.actions, self.rewards = epochs.copy(), actions.copy(), rewards.copy()

    def state(self):
        """Copies of the three arrays, keyed as in `DynamicsModel.get_state()`."""
        return {"epochs": self.epochs.copy(), "actions": self.actions.copy(), "rewards": self.rewards.copy()}

    def sample(self, rng, batch_size):
        """A minibatch of `batch_size` drawn with replacement from `rng`, or everything (drawing
        nothing) when the buffer is not larger than `batch_size`."""
        n = len(self)
        if n > batch_size:
            idx = rng.integers(0, n, batch_size)
            return self.epochs[idx], self.actions[idx], self.rewards[idx]
        return self.epochs, self.actions, self.rewards


# ----------------------------------------------------------------------------------------------------
# The dynamics model
# ----------------------------------------------------------------------------------------------------


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
        self.network = RewardNetwork(self.action_dim, self.max_epochs, self.embed_dim, self.hidden_dim, rnn,
                                     decoder_layers, self.use_representation, seed)
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        # Build every variable now (embedding, RNN, optimizer slots) so that a checkpoint restore
        # assigns values immediately.
        self.network.build()
        self.optimizer.build(self.trainable_variables)
        self.buffer = ReplayBuffer(self.action_dim, max_buffer)

        spec = [
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, self.action_dim], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([], tf.int32),
        ]
        self._train_step = tf.function(self._train_step_impl, input_signature=spec)
        self._predict_fn = tf.function(self.network.__call__, input_signature=spec[:2] + spec[3:])
        self._representations_fn = tf.function(
            self.network.representations, input_signature=[tf.TensorSpec([], tf.int32)]
        )

    # The network's variables and layers, also reachable here (they were attributes of this class).
    @property
    def trainable_variables(self):
        return self.network.trainable_variables

    @property
    def embedding(self):
        return self.network.embedding

    @property
    def rnn(self):
        return self.network.rnn

    @property
    def decoder(self):
        return self.network.decoder

    def _train_step_impl(self, epochs, actions, rewards, horizon):
        """One Adam step on the squared error of the predicted rewards (traced as `_train_step`)."""
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(self.network(epochs, actions, horizon) - rewards))
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def _batch(self, epoch, actions, rewards=None):
        return _as_samples(epoch, actions, rewards, self.action_dim, self.max_epochs)

    def observe(self, epoch, actions, rewards):
        """Appends samples to the replay buffer. `epoch`: an int or one int per action; actions [N, D]; rewards [N]."""
        self.buffer.append(*self._batch(epoch, actions, rewards))

    @property
    def buffer_size(self):
        return len(self.buffer)

    def train(self, steps=100):
        """`steps` Adam steps on the buffer -> mean loss of the last min(steps, 10) steps (nan if empty)."""
        if len(self.buffer) == 0:
            return float("nan")
        horizon = tf.constant(int(self.buffer.epochs.max()) + 1, tf.int32)
        losses = [float(self._train_step(*self.buffer.sample(self._rng, self.batch_size), horizon))
                  for _ in range(int(steps))]
        return float(np.mean(losses[-10:]))

    def evaluate(self, epochs, actions, rewards):
        """Mean squared error of the predicted rewards on the given samples."""
        epochs, actions, rewards = self._batch(epochs, actions, rewards)
        return float(np.mean((self.predict(epochs, actions) - rewards) ** 2))

    def representation(self, epoch):
        """Representation of epoch `epoch` -> float32 [hidden_dim] (the agent's observation)."""
        epoch = int(_check_epochs(epoch, self.max_epochs))
        return self._representations_fn(tf.constant(epoch + 1, tf.int32)).numpy()[epoch].astype(np.float32)

    def predict(self, epoch, actions):
        """Predicted rewards -> float32 [N]. `epoch`: an int or one int per action."""
        epochs, actions = self._batch(epoch, actions)
        horizon = tf.constant(int(epochs.max()) + 1 if epochs.size else 1, tf.int32)
        return self._predict_fn(epochs, actions, horizon).numpy().astype(np.float32)

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
        return {**self.buffer.state(), "rng": self._rng.bit_generator.state}

    def set_state(self, state):
        """Restores what `get_state()` returned (the replay buffer, and the sampling state if present)."""
        rewards = np.asarray(state["rewards"], np.float32).reshape(-1)
        actions = np.asarray(state["actions"], np.float32).reshape(-1, self.action_dim)
        epochs = _check_epochs(np.asarray(state["epochs"], np.int32).reshape(-1), self.max_epochs)
        if not len(epochs) == len(actions) == len(rewards):
            raise ValueError("state: epochs, actions and rewards must have the same length.")
        self.buffer.replace(epochs, actions, rewards)
        if "rng" in state:
            self._rng.bit_generator.state = state["rng"]
