"""A pure-numpy stand-in for `tfprune.cost.flops.CostModel`, shared by the episode and rounding tests, and a check
that a sub-network spends its budget's slack (`tfprune.cost.budget.fill_to_target`)."""

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


def no_step_fits(kept, cost, target, grid):
    """True where no group's next allowed count keeps the cost at or under the target."""
    for t in range(kept.shape[1]):
        trial = kept.copy()
        up = [grid.step(t, count, 1) for count in kept[:, t]]
        trial[:, t] = [count if u is None else u for count, u in zip(kept[:, t], up)]
        moved = np.array([u is not None for u in up], bool)
        if np.any(moved & (cost.ratio_batch(trial) <= target + 1e-12)):
            return False
    return True
