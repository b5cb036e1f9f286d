"""Projecting per-group pruning ratios onto a FLOPs budget.

The agent proposes a ratio per gated group; the sub-network must keep ``target_flops_ratio`` of the
full model's FLOPs. The projection shifts every ratio by one scalar ``t`` (found by bisection, FLOPs
fall monotonically in ``t``), which preserves the agent's *relative* preferences between layers, then
repairs channel-rounding error one channel at a time until FLOPs are within the tolerance.
`global_magnitude_ratios` is the other way to a budget: one importance threshold shared by all groups.
"""

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.masks import channel_importance, check_criterion, kept_from_ratios, masks_from_kept


class BudgetError(TfpruneError, ValueError):
    """No sub-network within the allowed ratios reaches the FLOPs target."""


def _kept(ratios, shift, cost_model, max_ratio):
    return kept_from_ratios(np.clip(ratios + shift, 0.0, max_ratio), cost_model.group_sizes)


def project_to_budget(ratios, cost_model, target_flops_ratio, max_ratio=0.9, tolerance=0.02):
    """Kept channel counts per group whose FLOPs ratio is within ``tolerance`` of the target.

    Returns (kept counts, achieved FLOPs ratio). Raises BudgetError if unreachable.
    """
    if not 0.0 < target_flops_ratio <= 1.0:
        raise BudgetError(f"target_flops_ratio must be in (0, 1], got {target_flops_ratio}.")
    if not 0.0 <= max_ratio < 1.0:
        raise BudgetError(f"max_ratio must be in [0, 1), got {max_ratio}.")
    ratios = np.clip(np.asarray(ratios, dtype=np.float64), 0.0, max_ratio)
    ratio_of = lambda kept: cost_model.flops_ratio(kept)  # noqa: E731

    lowest = ratio_of(_kept(ratios, 1.0, cost_model, max_ratio))
    if lowest > target_flops_ratio + tolerance:
        raise BudgetError(
            f"The FLOPs target {target_flops_ratio:.3f} cannot be reached: pruning every gated group by "
            f"max_ratio={max_ratio} still keeps {lowest:.3f} of the FLOPs (ungated layers stay whole). "
            "Raise target_flops_ratio or max_ratio."
        )
    lo, hi = -1.0, 1.0  # ratio_of(lo) >= target >= ratio_of(hi)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if ratio_of(_kept(ratios, mid, cost_model, max_ratio)) > target_flops_ratio:
            lo = mid
        else:
            hi = mid
    candidates = [_kept(ratios, lo, cost_model, max_ratio), _kept(ratios, hi, cost_model, max_ratio)]
    kept = min(candidates, key=lambda k: abs(ratio_of(k) - target_flops_ratio))
    kept = _repair(kept, cost_model, target_flops_ratio, tolerance, max_ratio)
    achieved = ratio_of(kept)
    if abs(achieved - target_flops_ratio) > tolerance:
        raise BudgetError(
            f"Channel granularity prevents landing within ±{tolerance} of the FLOPs target "
            f"{target_flops_ratio:.3f} (closest: {achieved:.3f}); the model is too small for this tolerance."
        )
    return kept, achieved


def _repair(kept, cost_model, target, tolerance, max_ratio, max_steps=1000):
    """Greedy channel moves toward the target while outside the tolerance: single-channel moves
    first; where none helps (coarse groups), a swap of one channel between two groups."""
    kept = kept.copy()
    sizes = cost_model.group_sizes
    floor = np.maximum(1, np.round(sizes * (1.0 - max_ratio))).astype(np.int64)
    gap = lambda k: abs(cost_model.flops_ratio(k) - target)  # noqa: E731
    n = len(kept)
    for _ in range(max_steps):
        current = gap(kept)
        if current <= tolerance:
            break
        step = -1 if cost_model.flops_ratio(kept) > target else 1
        moves = [{i: step} for i in range(n)]
        best = _best_move(kept, moves, floor, sizes, gap, current)
        if best is None:
            swaps = [{i: 1, j: -1} for i in range(n) for j in range(n) if i != j]
            best = _best_move(kept, swaps, floor, sizes, gap, current)
        if best is None:
            break
        for i, d in best.items():
            kept[i] += d
    return kept


def _best_move(kept, moves, floor, sizes, gap, current):
    best, best_gap = None, current
    for move in moves:
        trial = kept.copy()
        for i, d in move.items():
            trial[i] += d
        if np.any(trial < floor) or np.any(trial > sizes):
            continue
        g = gap(trial)
        if g < best_gap - 1e-12:
            best, best_gap = move, g
    return best


def uniform_kept(cost_model, target_flops_ratio, max_ratio=0.9, tolerance=0.02):
    """The same pruning ratio for every group, at the FLOPs target (the uniform baseline)."""
    return project_to_budget(np.zeros(len(cost_model.group_names)), cost_model, target_flops_ratio, max_ratio, tolerance)


def global_magnitude_ratios(importance, budget, iterations=60):
    """Per-group pruning ratios of one global threshold on normalised channel importance.

    Each group's scores are divided by the group's mean score (the default normaliser of Torch-Pruning's
    global pruning), so that groups whose raw scores differ in scale (wide vs narrow layers, coupled
    producers summed) compete fairly; a group's ratio is the fraction of its channels under the
    threshold, capped at ``budget.max_ratio``. The threshold is bisected (FLOPs fall monotonically as it
    rises) to the one whose FLOPs ratio is closest to ``budget.target_flops_ratio``; channel granularity
    leaves a small gap that `FlopsBudget.masks` closes as for any ratios.
    """
    cost_model, target = budget.cost_model, budget.target_flops_ratio
    normalised = [_normalised(importance[name]) for name in cost_model.group_names]
    ratios_at = lambda t: np.array([min(budget.max_ratio, float(np.mean(s < t))) for s in normalised])  # noqa: E731
    flops_of = lambda ratios: cost_model.flops_ratio(kept_from_ratios(ratios, cost_model.group_sizes))  # noqa: E731
    lo, hi = 0.0, 1.0 + max(float(s.max()) for s in normalised)  # nothing pruned at lo; every group capped at hi
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if flops_of(ratios_at(mid)) > target:
            lo = mid
        else:
            hi = mid
    return min((ratios_at(lo), ratios_at(hi)), key=lambda ratios: abs(flops_of(ratios) - target))


def _normalised(score):
    mean = float(np.mean(score))
    return score / mean if mean > 0 else np.ones_like(score)  # all-zero group: no channel stands out


class FlopsBudget:
    """Turns per-group pruning ratios into channel masks that keep `target_flops_ratio` of the FLOPs.

    The kept channels of each group are those with the largest importance (by default the L1 norm of
    the producing kernels; `importance` names the criterion, see `tfprune.masks.channel_importance`).
    Construction fails at once (`BudgetError`, `ImportanceError`) when the target is unreachable or the
    criterion unknown, before any training time is spent.
    """

    def __init__(self, cost_model, graph, target_flops_ratio=0.5, max_ratio=0.9, tolerance=0.02, importance="l1"):
        self.cost_model = cost_model
        self.graph = graph
        self.target_flops_ratio = float(target_flops_ratio)
        self.max_ratio = float(max_ratio)
        self.tolerance = float(tolerance)
        self.criterion = check_criterion(importance)
        # Projecting all-zero ratios checks the target is reachable, and is the uniform rule's sub-network.
        self.uniform_kept, _ = self.project(np.zeros(len(cost_model.group_names)))

    def project(self, ratios):
        """(kept channel counts, achieved FLOPs ratio) of the ratios moved onto the budget."""
        return project_to_budget(ratios, self.cost_model, self.target_flops_ratio, self.max_ratio, self.tolerance)

    def importance(self):
        """Today's channel importance by the configured criterion ({group name: scores})."""
        return channel_importance(self.graph, self.criterion)

    def land(self, ratios):
        """(kept counts, achieved FLOPs ratio) of ratios that already aim at the budget (the layer-wise
        agent's episodes): taken as they are, only repaired channel by channel when rounding left them
        outside the tolerance; unlike `project`, never shifted."""
        kept = kept_from_ratios(np.clip(ratios, 0.0, self.max_ratio), self.cost_model.group_sizes)
        kept = _repair(kept, self.cost_model, self.target_flops_ratio, self.tolerance, self.max_ratio)
        achieved = self.cost_model.flops_ratio(kept)
        if abs(achieved - self.target_flops_ratio) > self.tolerance + 1e-9:
            raise BudgetError(f"Ratios land at {achieved:.3f} of the FLOPs, outside ±{self.tolerance} of the target "
                              f"{self.target_flops_ratio:.3f}, and channel repairs cannot bring them back.")
        return kept, achieved

    def masks(self, ratios, importance=None, project=True):
        """(masks, achieved FLOPs ratio); pass `importance` to reuse one ranking for many ratios, and
        `project=False` for ratios already on the budget (`land`)."""
        kept, achieved = self.project(ratios) if project else self.land(ratios)
        importance = importance if importance is not None else self.importance()
        return masks_from_kept(kept, self.cost_model.group_names, importance), achieved
