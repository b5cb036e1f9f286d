"""FLOPs (multiply-accumulates) and parameter counts of a model and of any of its sub-networks.

The one implementation used everywhere: the agent's budget projection, the trainer's summaries,
export reports and the tests. Costs are sums of terms ``coef * channels(in) * channels(out)`` (see
`registry.Term`), where a layout's channel count is linear in the kept channels of each gated group,
so a sub-network's cost is evaluated in microseconds from a vector of kept counts.

Conventions: FLOPs = MACs of Conv2D, DepthwiseConv2D, SeparableConv2D and Dense layers (what the
pruning literature reports as FLOPs; ResNet-50 = 4.1 G). Params = trainable parameters; BatchNorm
moving statistics and gate masks are not parameters of the deployed model, and the bias the compact model
gives a bias-free consumer of removed constant channels (`tfprune.structure.constant_folds.bias_takers`,
DenseNet's 1x1 convs after concat -> BN) is one.
"""

import dataclasses

import numpy as np

from tfprune.structure import registry
from tfprune.structure.constant_folds import bias_takers
from tfprune.structure.graph import ChannelGraph


@dataclasses.dataclass(frozen=True)
class Cost:
    flops: float
    params: float

    def __str__(self):
        return f"{self.flops / 1e6:.2f} MFLOPs, {self.params / 1e6:.3f} M params"


class CostModel:
    """Cost of sub-networks of a gated model, indexed by the gated groups in `group_names` order.

    Besides FLOPs and params, the interface a budget asks of its cost (`tfprune.cost.budget`, the episode
    bounds of `tfprune.search.episode`): ``group_names``, ``group_sizes``, ``ratio(kept)`` and
    ``ratio_batch(kept)`` (the budgeted cost as a fraction of the full model's; here FLOPs), and
    ``budget_name`` / ``budget_setting`` for messages. `tfprune.cost.latency.LatencyModel` answers the same
    calls with predicted latency: whichever cost is the budget, the projection and the bounds are the same.
    """

    budget_name, budget_setting = "FLOPs", "JointPruner.target_flops_ratio"

    def __init__(self, model, graph=None):
        self.graph = graph if graph is not None else ChannelGraph(model)
        groups = self.graph.gated_groups
        self.group_names = [g.name for g in groups]
        self.group_sizes = np.array([g.size for g in groups], dtype=np.int64)
        self._index = {name: i for i, name in enumerate(self.group_names)}
        self._flops = []  # (coef, [(const, coeff_vector), ...])
        self._params = []
        self._const_params = 0.0
        # Consumers the compact model gives a bias (a removed channel folded in as a constant): counted too.
        self._new_bias = bias_takers(self.graph) if groups else set()
        seen_layers = set()
        for info in self.graph.nodes:
            first_call = id(info.layer) not in seen_layers
            seen_layers.add(id(info.layer))
            self._add_node(info, first_call)
        self.full = self.cost_of_kept(self.group_sizes)
        self._flops_batch = _BatchTerms(self._flops, len(self.group_names))

    def channel_factor(self, layout):
        """A layout's channel count as ``(const, coeffs)``: ``const + coeffs @ kept`` (also what
        `tfprune.cost.latency.LatencyModel` reads each layer's channel counts from)."""
        const, coeffs = 0.0, np.zeros(len(self.group_names))
        for space, size in layout:
            group = self.graph.group_of_space(space)
            if group is not None and group.name in self._index:
                coeffs[self._index[group.name]] += 1.0
            else:
                const += size
        return const, coeffs

    def _add_node(self, info, first_call):
        rule = registry.cost_rule(info.layer)
        if rule is None:
            if first_call:
                self._const_params += sum(
                    float(np.prod(w.shape)) for w in getattr(info.layer, "trainable_weights", [])  # ops: none
                )
            return
        layouts = {"in": info.in_layout, "out": info.out_layout}
        if rule.kind in ("merge", "concat"):
            return  # no weights, no MACs
        for term in rule.flops(info.layer, info.in_shape, info.out_shape):
            self._flops.append((term.coef, [self.channel_factor(layouts[f]) for f in term.factors]))
        if first_call:
            for term in rule.params(info.layer, info.in_shape, info.out_shape):
                self._params.append((term.coef, [self.channel_factor(layouts[f]) for f in term.factors]))
            if info.layer.name in self._new_bias:
                self._params.append((1.0, [self.channel_factor(info.out_layout)]))

    @staticmethod
    def _evaluate(terms, kept):
        total = 0.0
        for coef, factors in terms:
            value = coef
            for const, coeffs in factors:
                value *= const + float(coeffs @ kept)
            total += value
        return total

    def cost_of_kept(self, kept):
        """Cost when group i keeps ``kept[i]`` channels."""
        kept = np.asarray(kept, dtype=np.float64)
        if kept.shape != (len(self.group_names),):
            raise ValueError(f"Expected {len(self.group_names)} kept counts (one per gated group), got {kept.shape}.")
        return Cost(
            flops=self._evaluate(self._flops, kept),
            params=self._evaluate(self._params, kept) + self._const_params,
        )

    def kept_from_masks(self, masks):
        """Kept channel counts per group from a mask dict (missing groups are kept whole)."""
        kept = self.group_sizes.astype(np.float64).copy()
        for name, mask in masks.items():
            if name not in self._index:
                raise ValueError(f"Mask names unknown gate {name!r}; the model's gates are {self.group_names}.")
            kept[self._index[name]] = int(np.count_nonzero(mask))
        return kept

    def cost(self, masks=None):
        """Cost of the full model (masks=None) or of the sub-network a mask dict selects."""
        if masks is None:
            return self.full
        return self.cost_of_kept(self.kept_from_masks(masks))

    def flops_ratio(self, kept):
        return self.cost_of_kept(kept).flops / self.full.flops

    def flops_ratio_batch(self, kept):
        """FLOPs ratios of many sub-networks at once: kept [M, num_groups] -> [M].

        The same terms as `flops_ratio`, evaluated as array operations: the layer-wise agent asks for
        thousands of costs per agent step (its per-step budget bounds), too many for the scalar loop.
        Counts may be fractional or zero (e.g. "this group removed") since the cost is a polynomial.
        """
        kept = np.asarray(kept, dtype=np.float64)
        if kept.ndim != 2 or kept.shape[1] != len(self.group_names):
            raise ValueError(f"Expected kept counts [M, {len(self.group_names)}], got {kept.shape}.")
        return self._flops_batch(kept) / self.full.flops

    ratio, ratio_batch = flops_ratio, flops_ratio_batch  # the budget's interface (class docstring)


class _BatchTerms:
    """Cost terms as matrices: every factor ``const + coeffs @ kept`` is one column, and each term the
    product of its factor columns (padded with a constant-1 column to the longest term)."""

    def __init__(self, terms, num_groups):
        consts, columns, index = [1.0], [np.zeros(num_groups)], []
        for _, factors in terms:
            index.append([])
            for const, coeffs in factors:
                index[-1].append(len(consts))
                consts.append(const)
                columns.append(coeffs)
        width = max((len(i) for i in index), default=1)
        self.index = np.array([i + [0] * (width - len(i)) for i in index] or [[0]], dtype=np.int64)
        self.coefs = np.array([coef for coef, _ in terms] or [0.0])
        self.consts = np.array(consts)
        self.columns = np.stack(columns, axis=1)  # [num_groups, num_factors]

    def __call__(self, kept):
        factors = self.consts + kept @ self.columns  # [M, num_factors]
        return np.prod(factors[:, self.index], axis=-1) @ self.coefs
