"""Property test of the core (issue 33 item 5): random functional graphs through
auto_gate -> random masks -> compact_model.

For every graph `tests/graph_generator.py` builds (residual adds, concats, depthwise / grouped /
separable convs, squeeze-excite multiplies, keras.ops operator nodes, BN, pooling, dense heads, nested
sub-models): no exception anywhere; the gated model with open gates computes what the model computes;
with random masks (each gated group keeps a random non-empty subset) the compact model computes what
the masked model computes (relative 1e-4) and costs what the counter predicts; and a graph with no
gated group has a barrier warning that says why.
"""

import time
import warnings

import keras
import numpy as np
import pytest

from tfprune.cost.flops import CostModel
from tfprune.structure import masks as mask_lib
from tfprune.structure.auto_gate import auto_gate
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.surgery import compact_model

from graph_generator import SHAPE, random_model

# --- what the generator found -------------------------------------------------------------------------


def _shared_conv_model():
    """Found by the generator: one Conv2D called on two tensors of different groups. Its input channels
    were pruned by one call's mask and the compact model failed (ValueError: expected axis -1 of input
    shape to have value 2). A layer whose weights serve several calls is now a barrier, with a warning."""
    inp = keras.Input(SHAPE)
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(inp)
    shared = keras.layers.Conv2D(5, 3, padding="same", name="shared")
    y = keras.layers.Concatenate()([shared(a), shared(keras.ops.relu(b))])
    y = keras.layers.Conv2D(4, 1, name="mix")(y)
    return keras.Model(inp, keras.layers.Dense(3, name="fc")(keras.layers.GlobalAveragePooling2D()(y)))


def _shared_sub_model():
    """The same through a nested model called twice (auto_gate inlines both calls onto one set of layers)."""
    sub_in = keras.Input((8, 8, 4))
    sub_out = keras.layers.Conv2D(4, 3, padding="same", name="sub_b")(keras.layers.Conv2D(6, 1, name="sub_a")(sub_in))
    sub = keras.Model(sub_in, sub_out, name="sub")
    inp = keras.Input(SHAPE)
    y = sub(sub(keras.layers.Conv2D(4, 3, padding="same", name="stem")(inp)))
    y = keras.layers.Conv2D(5, 1, name="post")(y)
    return keras.Model(inp, keras.layers.Dense(3, name="fc")(keras.layers.GlobalAveragePooling2D()(y)))


@pytest.mark.parametrize("build", [_shared_conv_model, _shared_sub_model])
def test_layer_shared_by_two_calls_is_a_warned_barrier(build):
    model = build()
    randomize(model, 0)
    x = np.random.default_rng(0).normal(size=(2, *SHAPE)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gated = auto_gate(model)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "shared by 2 calls" in messages[0], messages
    graph = ChannelGraph(gated, warn=False)
    assert graph.gated_groups  # the rest of the model is still pruned
    mask_lib.apply_masks(gated, _random_masks(graph, np.random.default_rng(1)))
    masked = gated(x, training=False)
    assert _relative(compact_model(gated, graph=graph)(x, training=False), masked) <= 1e-4


# Seeds, in chunks that pytest-xdist spreads over the cores: 50 graphs in the quick suite, 500 other
# graphs in the slow one.
CHUNK = 10
QUICK_CHUNKS = 5
SLOW_CHUNKS = 50


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def randomize(model, seed):
    """Nonzero biases and BN statistics everywhere (nested models too): a wrongly sliced or folded
    channel then changes the output."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.normal(1, 0.3, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2, var.shape)])
        elif getattr(layer, "bias", None) is not None and not isinstance(layer, keras.Model):
            weights = layer.get_weights()
            layer.set_weights([w if w.ndim > 1 else rng.normal(0, 0.3, w.shape) for w in weights])


def _random_masks(graph, rng):
    masks = {}
    for group in graph.gated_groups:
        mask = rng.random(group.size) < rng.uniform(0.2, 0.9)
        if group.size > 1 and mask.all():
            mask[rng.integers(group.size)] = False  # something is removed
        mask[rng.integers(group.size)] = True  # something is kept
        masks[group.name] = mask
    return masks


def _relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / max(1e-6, np.abs(b).max()))


def check_graph(seed):
    """One random graph through the core; returns (gated groups, barrier warnings). Raises on any failure."""
    keras.utils.clear_session()
    model = random_model(seed)
    randomize(model, seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *SHAPE)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gated = auto_gate(model)
        graph = ChannelGraph(gated)
    messages = [str(w.message) for w in caught]
    reference = model(x, training=False)
    assert _relative(gated(x, training=False), reference) < 1e-5, f"seed {seed}: open gates change the output"
    groups = graph.gated_groups
    assert groups or messages, f"seed {seed}: nothing prunable and no warning saying why"
    masks = _random_masks(graph, rng)
    mask_lib.apply_masks(gated, masks)
    masked = gated(x, training=False)
    compact = compact_model(gated, graph=graph)
    error = _relative(compact(x, training=False), masked)
    assert error <= 1e-4, f"seed {seed}: compact differs from masked by {error:.2e} (relative)"
    predicted = CostModel(gated, graph).cost(masks)
    assert CostModel(compact, ChannelGraph(compact, warn=False)).full == predicted, f"seed {seed}: cost"
    changed = _relative(masked, reference) > 1e-3
    return len(groups), len(messages), changed


def _sweep(seeds):
    failures, groups, warned, changed = [], 0, 0, 0
    start = time.perf_counter()
    for seed in seeds:
        try:
            g, w, c = check_graph(seed)
            groups += g
            warned += bool(w)
            changed += c
        except Exception as exc:  # noqa: BLE001 - every failure is collected and reported with its seed
            failures.append(f"seed {seed}: {type(exc).__name__}: {str(exc)[:300]}")
    elapsed = time.perf_counter() - start
    print(
        f"{len(seeds)} graphs in {elapsed:.1f} s: {groups} gated groups, {warned} with barrier warnings, "
        f"{changed} whose output the masks changed"
    )
    assert not failures, "\n".join(failures)
    # Not vacuous: most graphs have something to prune, and pruning it changes what they compute (in
    # the others every group may sit behind a barrier, or a removed channel hardly moves the output).
    assert changed >= 0.5 * len(seeds), f"the masks changed only {changed} of {len(seeds)} graphs"


@pytest.mark.parametrize("chunk", range(QUICK_CHUNKS))
def test_random_graphs_quick(chunk):
    _sweep(range(chunk * CHUNK, (chunk + 1) * CHUNK))


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(SLOW_CHUNKS))
def test_random_graphs_many(chunk):
    _sweep(range(1000 + chunk * CHUNK, 1000 + (chunk + 1) * CHUNK))
