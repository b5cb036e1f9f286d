"""`PruningCallback` in `model.fit`: its numbers go into Keras' logs and its summary line never lands
inside Keras' progress bar."""

import re

import keras
import numpy as np

import tfprune

from model_fixtures import mixed_model


def test_agent_line_starts_on_its_own_line_after_the_progress_bar(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 16, 16, 3)).astype("float32"), rng.integers(0, 5, 16)
    model = mixed_model()
    pruner = tfprune.JointPruner(model, held_out=(x[:8], y[:8]), max_epochs=2, num_samples=2, dynamics_steps=1,
                                 policy="uniform")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=1, callbacks=[pruner.callback()])
    out = capsys.readouterr().out
    lines = re.split(r"[\r\n]", out)
    agent_lines = [line for line in lines if "agent reward mean" in line]
    assert len(agent_lines) == 2 and all(line.startswith("epoch ") for line in agent_lines), out
    assert out.index("epoch 0: agent") < out.index("Epoch 2/2")  # written before the next epoch's bar
    assert {"agent_reward_mean", "reward_max", "subnet_flops_ratio"} <= set(history.history)


def test_verbose_zero_writes_nothing(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 16, 16, 3)).astype("float32"), rng.integers(0, 5, 8)
    model = mixed_model()
    pruner = tfprune.JointPruner(model, held_out=(x, y), max_epochs=1, num_samples=2, policy="uniform")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[tfprune.PruningCallback(pruner, verbose=0)])
    assert capsys.readouterr().out == ""
