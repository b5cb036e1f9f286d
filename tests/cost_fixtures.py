"""A pure-numpy stand-in for `tfprune.flops.CostModel`, shared by the episode and rounding tests."""

import numpy as np


class ChainCost:
    """A random CNN-like cost: a chain of convs, conv i maps group i-1 to group i (group -1 = the
    3-channel input), plus a dense head on the last group: FLOPs are products of adjacent kept counts.
    Both interfaces of the cost model: batched (`EpisodeSpace`) and scalar (`project_to_budget`,
    `FlopsBudget`)."""

    def __init__(self, sizes, rng):
        self.group_sizes = np.asarray(sizes, np.int64)
        self.group_names = [f"g{i}" for i in range(len(sizes))]
        self.coef = rng.uniform(1.0, 50.0, len(sizes))  # spatial size x kernel area of each conv
        self.full = float(self._flops(self.group_sizes[None].astype(float))[0])

    def _flops(self, kept):
        previous = np.concatenate([np.full((len(kept), 1), 3.0), kept[:, :-1]], axis=1)
        return (self.coef * previous * kept).sum(1) + 10.0 * kept[:, -1]

    def flops_ratio_batch(self, kept):
        return self._flops(np.asarray(kept, float)) / self.full

    def flops_ratio(self, kept):
        return float(self.flops_ratio_batch(np.asarray(kept, float)[None])[0])

    budget_name, budget_setting = "FLOPs", "target_flops_ratio"
    ratio, ratio_batch = flops_ratio, flops_ratio_batch  # the budget's names for them (CostModel's too)
