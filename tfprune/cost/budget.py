"""Projecting per-group pruning ratios onto a FLOPs (or latency) budget.

The agent proposes a ratio per gated group; the sub-network must keep ``target_flops_ratio`` of the
full model's FLOPs. The budgeted cost is whatever cost model the budget is given: `tfprune.cost.flops.CostModel`
(FLOPs) or `tfprune.cost.latency.LatencyModel` (predicted latency, ``JointPruner.budget = "latency"``), both
answering ``ratio(kept)``; below, "FLOPs" stands for that cost. The projection shifts every ratio by one
scalar ``t`` (found by bisection, FLOPs fall monotonically in ``t``), which preserves the agent's
*relative* preferences between layers, then repairs channel-rounding error one channel at a time until
the FLOPs are in the budget's band. With
``round_to`` > 1 every kept count is snapped to a `tfprune.cost.channel_grid.ChannelGrid` (multiples of
``round_to``, or the group's full size) and the repair steps from one allowed count to the next.
`global_magnitude_ratios` is the other way to a budget: one importance threshold shared by all groups.

**One band for every method.** A sub-network lands in ``[target - tolerance, target]``: at most the
budget, the band the layer-wise agent's episodes are built to end in (`tfprune.search.episode`). Only where
channel granularity leaves no sub-network there does it land above the target, within the tolerance.
Before, projections accepted ``target +- tolerance``: the uniform rule's half-width ResNet-20 at 15%
kept 15.3% of the FLOPs while the agent's episodes, capped at the target, kept 14.0-14.6%, and the
comparison set a larger network against a smaller one as if they were equal. Inside the band, every
sub-network then spends the slack up to the target (`fill_to_target`): where it lands in the band was a
difference of its own.
"""

import abc

import numpy as np

from tfprune.cost.channel_grid import ChannelGrid
from tfprune.errors import TfpruneError
from tfprune.structure.importance import as_importance
from tfprune.structure.masks import kept_from_ratios, masks_from_kept


class BudgetError(TfpruneError, ValueError):
    """No sub-network within the allowed ratios reaches the budget's target (or the budget is misconfigured)."""


class BudgetCost(abc.ABC):
    """What a budget needs of a cost model: the cost of a sub-network, given by its kept channel counts
    (one per gated group, in ``group_names`` order), as a ratio of the full model's.

    `tfprune.cost.flops.CostModel` (FLOPs) and `tfprune.cost.latency.LatencyModel` (predicted latency)
    answer it, and so may a user's own model (energy, memory traffic, a lookup table), passed as
    ``JointPruner(budget=my_cost)``: the projection, the landing band and the layer-wise agent's episodes
    only ever use these members. Deriving from this class is optional (the shipped models do not):
    `check_budget_cost` checks the members themselves.

    Members: ``group_names`` and ``group_sizes`` (channels per group), set by the subclass;
    ``ratio(kept) -> float`` and ``ratio_batch(kept [N, T]) -> [N]``, both non-decreasing in every kept
    count (the bisection of `project_to_budget` relies on it); ``budget_name`` / ``budget_setting``, what
    the cost and the setting of its target are called in error messages.
    """

    MEMBERS = ("group_names", "group_sizes", "budget_name", "budget_setting", "ratio", "ratio_batch")
    budget_name, budget_setting = "cost", "JointPruner.target_flops_ratio"

    @abc.abstractmethod
    def ratio(self, kept):
        """Cost of the sub-network keeping ``kept[i]`` channels of group i, over the full model's."""

    def ratio_batch(self, kept):
        """`ratio` of every row of ``kept`` [N, T]; override where it can be vectorised."""
        return np.array([self.ratio(row) for row in np.asarray(kept)])


def check_budget_cost(cost, group_names):
    """``cost`` itself, if it has every `BudgetCost` member and prices exactly these gated groups, in
    this order: a cost built for another model would otherwise price the wrong channels silently."""
    missing = [m for m in BudgetCost.MEMBERS if not hasattr(cost, m)]
    if missing:
        raise BudgetError(f"JointPruner.budget must be 'flops', 'latency' or a tfprune.cost.budget.BudgetCost; "
                          f"{type(cost).__name__} lacks {missing}.")
    if list(cost.group_names) != list(group_names):
        raise BudgetError(f"The budget's cost model prices groups {list(cost.group_names)}, the model's gated "
                          f"groups are {list(group_names)}: build it from the same gated model.")
    return cost


class _Band:
    """An interval of cost ratios a sub-network may land in, and how far a ratio is from it."""

    def __init__(self, low, high, target):
        self.low, self.high, self.target = low, high, target

    def miss(self, ratio):
        """Distance from the band (0 inside it)."""
        return max(0.0, self.low - ratio, ratio - self.high)

    def key(self, ratio):
        """Sort key: nearest the band first; inside it, nearest the target."""
        return self.miss(ratio), abs(ratio - self.target)


def landing_bands(target, tolerance):
    """The bands to land in, preferred first: at most the target (module docstring), then, where channel
    granularity leaves no sub-network there, within the tolerance on either side."""
    return _Band(target - tolerance, target, target), _Band(target - tolerance, target + tolerance, target)


def fill_to_target(kept, cost_model, target, grid):
    """Kept counts [N, T] with the budget's slack spent: while some group's next allowed count keeps the
    cost at or under ``target``, the group left with the smallest kept share takes it (ties: the smaller
    cost). Sub-networks already above the target are returned as they are.

    Why: a sub-network anywhere in ``[target - tolerance, target]`` is on the budget, but accuracy rises
    with the FLOPs kept, so where it lands inside the band is part of what is compared. Measured on the
    half-width ResNet-20 at 15% (commit 1baf74b): the agent's episodes ended at 14.2-14.5% of the FLOPs,
    the projections at 14.6-15.0%, and the uniform rule lost 0.88 pp of accuracy to 0.7% of the FLOPs.
    Every method (projection, landing, the agent's episodes) now ends as near the target as one more
    allowed channel step allows. Smallest share first, as `_balancing_step` going up: the added channels
    go where the sub-network is thinnest; when only a cheap group's channels still fit, that group takes
    them, up to whole (on a tiny test model the uniform rule's 6-channel side group goes 4 -> 6), so a
    rule's shares hold up to rounding before the fill, not after. Vectorised over sub-networks
    (``cost_model.ratio_batch``): the agent fills 128 episodes per step.
    """
    kept = np.array(kept, np.int64, ndmin=2)
    sizes = np.asarray(cost_model.group_sizes, np.float64)
    active = np.arange(len(kept))
    groups, rows = np.arange(kept.shape[1]), np.arange(len(kept))
    while active.size:
        current = kept[active]
        up = grid.steps_up(current)  # [A, T], -1 where a group is whole
        trials = np.repeat(current[:, None, :], len(groups), axis=1)  # [A, T, T]: row t moves group t
        trials[:, groups, groups] = np.where(up >= 0, up, current)
        cost = cost_model.ratio_batch(trials.reshape(-1, len(groups))).reshape(up.shape)
        fits = (up >= 0) & (cost <= target + 1e-12)
        chosen = np.lexsort((np.where(fits, cost, np.inf), np.where(fits, up / sizes, np.inf)), axis=-1)[:, 0]
        here = rows[:active.size]
        moved = fits[here, chosen]
        kept[active[moved], chosen[moved]] = up[here, chosen][moved]
        active = active[moved]
    return kept


def _kept(ratios, shift, cost_model, max_ratio, grid):
    return grid.snap(kept_from_ratios(np.clip(ratios + shift, 0.0, max_ratio), cost_model.group_sizes))


def project_to_budget(ratios, cost_model, target_flops_ratio, max_ratio=0.9, tolerance=0.02, round_to=1,
                      anchor=None):
    """Kept channel counts per group whose FLOPs ratio is in ``[target - tolerance, target]`` (or, where
    channel granularity allows nothing there, within ``tolerance`` above the target), each a multiple of
    ``round_to`` (or the group's full size).

    ``anchor``: kept counts known to be on this budget (`FlopsBudget.uniform_kept`); where coarse groups
    stall the repair, the counts are moved toward it until they land, so that a reachable budget is never
    missed. Returns (kept counts, achieved FLOPs ratio). Raises BudgetError if unreachable.
    """
    name, setting = cost_model.budget_name, cost_model.budget_setting
    if not 0.0 < target_flops_ratio <= 1.0:
        raise BudgetError(f"{setting} must be in (0, 1], got {target_flops_ratio}.")
    if not 0.0 <= max_ratio < 1.0:
        raise BudgetError(f"max_ratio must be in [0, 1), got {max_ratio}.")
    grid = ChannelGrid(cost_model.group_sizes, max_ratio, round_to)
    ratios = np.clip(np.asarray(ratios, dtype=np.float64), 0.0, max_ratio)
    ratio_of = lambda kept: cost_model.ratio(kept)  # noqa: E731
    kept_at = lambda shift: _kept(ratios, shift, cost_model, max_ratio, grid)  # noqa: E731

    lowest = ratio_of(grid.floor)
    if lowest > target_flops_ratio + tolerance:
        raise BudgetError(
            f"The {name} target {target_flops_ratio:.3f} cannot be reached: pruning every gated group by "
            f"max_ratio={max_ratio}{_rounded(grid)} still keeps {lowest:.3f} of the {name} (ungated layers stay "
            f"whole). Raise {setting} or max_ratio{' or lower round_to' if grid.round_to > 1 else ''}"
            f"{' or lower ChannelGrid.min_channels' if grid.min_channels > 1 else ''}."
        )
    lo, hi = -1.0, 1.0  # ratio_of(lo) >= target >= ratio_of(hi)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if ratio_of(kept_at(mid)) > target_flops_ratio:
            lo = mid
        else:
            hi = mid
    kept = _land([kept_at(hi), kept_at(lo)], cost_model, landing_bands(target_flops_ratio, tolerance), grid, anchor)
    achieved = ratio_of(kept)
    if abs(achieved - target_flops_ratio) > tolerance + 1e-9:
        raise BudgetError(
            f"Channel granularity{_rounded(grid)} prevents landing within ±{tolerance} of the {name} target "
            f"{target_flops_ratio:.3f} (closest: {achieved:.3f}); the model is too small for this tolerance. "
            + ("Lower JointPruner.round_to or raise flops_tolerance." if grid.round_to > 1
               else "Raise flops_tolerance.")
        )
    return kept, achieved


def _rounded(grid):
    """The rounding, as a clause of an error message ('' without rounding)."""
    floor = f" (no group below min_channels={grid.min_channels})" if grid.min_channels > 1 else ""
    if grid.round_to == 1:
        return floor
    return floor + (f" (kept counts rounded to multiples of round_to={grid.round_to}; {int(grid.whole.sum())} of "
            f"{grid.whole.size} groups too small to prune at that rounding)")


def _land(candidates, cost_model, bands, grid, anchor=None):
    """For each band in turn (preferred first): the candidates, nearest the band first, that `_repair`
    brings into it; failing those, blends of the nearest with ``anchor`` (on the budget by construction),
    from 10% to all of it. Returns the nearest result when nothing lands (the caller raises)."""
    best = None
    for band in bands:
        miss = lambda k: band.miss(cost_model.ratio(k))  # noqa: E731,B023
        ordered = sorted(candidates, key=lambda k: band.key(cost_model.ratio(k)))  # noqa: B023
        if anchor is not None:
            ordered += [grid.snap((1.0 - a) * ordered[0] + a * np.asarray(anchor)) for a in np.linspace(0.1, 1.0, 10)]
        for kept in ordered:
            kept = _repair(kept, cost_model, band, grid)
            if miss(kept) <= 1e-12:
                return fill_to_target(kept, cost_model, band.high, grid)[0] if band.high <= band.target else kept
            best = kept if best is None or miss(kept) < miss(best) else best
    return best


def _repair(kept, cost_model, band, grid, max_steps=1000):
    """Moves toward the band while outside it, one allowed count at a time.

    A single group move that lands in the band wins (nearest the target first). Otherwise a step that
    stays on this side of the band and evens out the kept shares (`_balancing_step`): greedy "nearest
    the band" moves on coarse groups jumped over it and stalled on the other side. Where no single move
    helps, one group up and another down."""
    kept = kept.copy()
    ratio = cost_model.ratio
    n = len(kept)
    for _ in range(max_steps):
        current = ratio(kept)
        if band.miss(current) <= 1e-12:
            break
        direction = -1 if current > band.high else 1
        ups = {i: grid.step(i, kept[i], 1) for i in range(n)}
        downs = {i: grid.step(i, kept[i], -1) for i in range(n)}
        singles = _with_ratios(kept, [{i: c} for i, c in (ups if direction > 0 else downs).items() if c is not None],
                               ratio)
        best = _best_move(singles, band, 1e-12) or _balancing_step(singles, band, current, cost_model.group_sizes)
        if best is None:
            swaps = _with_ratios(kept, [{i: ups[i], j: downs[j]} for i in range(n) for j in range(n)
                                        if i != j and ups[i] is not None and downs[j] is not None], ratio)
            best = _best_move(swaps, band, band.miss(current) - 1e-12)
        if best is None:
            break
        for i, count in best.items():
            kept[i] = count
    return kept


def _with_ratios(kept, moves, ratio):
    """[(move, cost ratio after it)] for moves ({group: new count}) from ``kept``: each costed once."""
    scored = []
    for move in moves:
        trial = kept.copy()
        for i, count in move.items():
            trial[i] = count
        scored.append((move, ratio(trial)))
    return scored


def _best_move(scored, band, limit):
    """The move nearest the band, then the target, among those whose miss of the band is under ``limit``
    (1e-12: the moves that land in it; the current miss: those that get nearer it)."""
    keyed = [(band.key(r), k) for k, (_, r) in enumerate(scored) if band.miss(r) < limit]
    return scored[min(keyed)[1]][0] if keyed else None


def _balancing_step(scored, band, current, sizes):
    """Among the single moves that stay on ``current``'s side of the band (so that steps smaller than its
    width cannot jump over it), the one that evens out the kept shares: going down, the cut that leaves
    its group the largest share; going up, the channel that leaves its group the smallest; ties to the
    smaller cost change. None if every move crosses the band."""
    below = current < band.low
    steps = []
    for move, r in scored:
        ((group, count),) = move.items()
        if (r < band.low if below else r > band.high) and abs(r - current) > 1e-15:
            share = count / sizes[group]
            steps.append(((share if below else -share), abs(r - current), move))
    return min(steps, key=lambda step: step[:2])[2] if steps else None


def uniform_kept(cost_model, target_flops_ratio, max_ratio=0.9, tolerance=0.02, round_to=1):
    """The same pruning ratio for every group, at the FLOPs target (the uniform baseline)."""
    return project_to_budget(np.zeros(len(cost_model.group_names)), cost_model, target_flops_ratio, max_ratio,
                             tolerance, round_to)


def global_magnitude_ratios(importance, budget, iterations=60):
    """Per-group pruning ratios of one global threshold on normalised channel importance.

    Each group's scores are divided by the group's mean score (the default normaliser of Torch-Pruning's
    global pruning), so that groups whose raw scores differ in scale (wide vs narrow layers, coupled
    producers summed) compete fairly; a group's ratio is the fraction of its channels under the
    threshold, capped at ``budget.max_ratio``. The threshold is bisected (FLOPs fall monotonically as it
    rises) to the one whose FLOPs ratio is closest to ``budget.target_ratio``; channel granularity
    leaves a small gap that `FlopsBudget.masks` closes as for any ratios.
    """
    cost_model, target = budget.cost_model, budget.target_ratio
    normalised = [_normalised(importance[name]) for name in cost_model.group_names]
    ratios_at = lambda t: np.array([min(budget.max_ratio, float(np.mean(s < t))) for s in normalised])  # noqa: E731
    kept_of = lambda ratios: budget.grid.snap(kept_from_ratios(ratios, cost_model.group_sizes))  # noqa: E731
    flops_of = lambda ratios: cost_model.ratio(kept_of(ratios))  # noqa: E731
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
    """Turns per-group pruning ratios into channel masks that keep `target_ratio` of the budgeted cost:
    the FLOPs of a `tfprune.cost.flops.CostModel`, or the predicted latency of a `tfprune.cost.latency.LatencyModel`.

    The kept channels of each group are those with the largest importance (by default the L1 norm of
    the producing kernels; `importance` is a `tfprune.structure.importance.Importance`, or its name);
    their number is a multiple of `round_to` or the group's full size (`grid`). Construction fails at
    once (`BudgetError`, `ImportanceError`, `RoundingError`) when the target is unreachable (at this
    rounding and tolerance) or a setting is unknown, before any training time is spent.
    """

    def __init__(self, cost_model, graph, target_flops_ratio=0.5, max_ratio=0.9, tolerance=0.02, importance="l1",
                 round_to=1):
        self.cost_model = cost_model
        self.graph = graph
        self.target_ratio = float(target_flops_ratio)
        self.max_ratio = float(max_ratio)
        self.tolerance = float(tolerance)
        self.criterion = as_importance(importance, graph)  # an `Importance`
        self.grid = ChannelGrid(cost_model.group_sizes, self.max_ratio, round_to)
        self.round_to = self.grid.round_to
        # Projecting all-zero ratios checks the target is reachable, and is the uniform rule's sub-network
        # (then the anchor every later projection can fall back toward).
        self.uniform_kept = None
        self.uniform_kept, _ = self.project(np.zeros(len(cost_model.group_names)))

    def project(self, ratios):
        """(kept channel counts, achieved FLOPs ratio) of the ratios moved onto the budget."""
        return project_to_budget(ratios, self.cost_model, self.target_ratio, self.max_ratio, self.tolerance,
                                 self.round_to, self.uniform_kept)

    def importance(self):
        """Today's channel importance by the configured criterion ({group name: scores})."""
        return self.criterion(self.graph)

    def land(self, ratios):
        """(kept counts, achieved FLOPs ratio) of ratios that already aim at the budget (the layer-wise
        agent's episodes): taken as they are (snapped to the grid), only repaired when rounding left them
        outside the budget's band; unlike `project`, never shifted. An episode arrives with its slack
        already spent (`EpisodeSpace.rollout`), so the fill here finds no step that fits: one batched cost
        evaluation, kept so that ratios from any other source land as filled as a projection's."""
        kept = self.grid.snap(kept_from_ratios(np.clip(ratios, 0.0, self.max_ratio), self.cost_model.group_sizes))
        kept = _land([kept], self.cost_model, landing_bands(self.target_ratio, self.tolerance), self.grid, self.uniform_kept)
        achieved = self.cost_model.ratio(kept)
        if abs(achieved - self.target_ratio) > self.tolerance + 1e-9:
            raise BudgetError(f"Ratios land at {achieved:.3f} of the {self.cost_model.budget_name}, outside "
                              f"±{self.tolerance} of the target {self.target_ratio:.3f}, and channel repairs cannot bring them back.")
        return kept, achieved

    def masks(self, ratios, importance=None, project=True):
        """(masks, achieved FLOPs ratio); pass `importance` to reuse one ranking for many ratios, and
        `project=False` for ratios already on the budget (`land`)."""
        kept, achieved = self.project(ratios) if project else self.land(ratios)
        importance = importance if importance is not None else self.importance()
        return masks_from_kept(kept, self.cost_model.group_names, importance), achieved
