"""The layer-wise pruning episode: one decision per channel group, always landing on the FLOPs budget.

The paper's agent (an AMC-style formulation) builds a sub-network group by group. At step *t* it sees
group *t*'s state and chooses that group's pruning ratio; the ratio is clipped to the interval that
still lets the episode end within the FLOPs tolerance:

* the **most** channels group *t* may keep is the largest count for which the FLOPs still fit under
  the **target** itself if every later group were pruned as much as allowed (`max_ratio`);
* the **fewest** it may keep is the smallest count for which the FLOPs still reach
  ``target - tolerance`` if every later group were kept whole.

FLOPs fall monotonically in every kept count, so both bounds are found by bisection over the group's
allowed counts (`tfprune.cost.channel_grid.ChannelGrid`: every count from the floor up, or with `round_to` > 1
the multiples of it and the full size; vectorised over all episodes with the cost model's `ratio_batch`),
and choosing inside them keeps the next step's interval non-empty: every episode ends on the budget with
no projection afterwards. Only channel granularity can open a gap (one allowed step changing the FLOPs by
more than the tolerance); then the group keeps its lower bound, a count that bounds with the ceiling
``target + tolerance`` would still admit, so the episode may end above the target; `FlopsBudget.land`
then repairs the last channels into ``[target - tolerance, target]`` where channel steps allow it (the
band every method lands in, `tfprune.cost.budget`), else within the tolerance above.

After the last step the episode's slack is spent (`tfprune.cost.budget.fill_to_target`): channels are added,
thinnest group first, while the FLOPs stay at or under the target, as every baseline's projection does.
The bounds let an episode end anywhere in the band, and without this the agent's sub-networks ended lower
in it than the baselines' (ResNet-20 at 15%: 14.2-14.5% against 14.6-15.0%), a smaller network compared as
equal. The stored actions stay the policy's; the reward is the filled sub-network's.

Why the ceiling is the target and not ``target + tolerance``: the reward (accuracy) rises with the FLOPs
kept, so the agent learns to spend any room above the target. With ``+ tolerance`` it did: MobileNetV2 on
Fashion-MNIST (30% FLOPs, tolerance 0.01) chose sub-networks at 0.310 of the FLOPs while the uniform rule,
projected onto the target, kept 0.300, a 3% larger model compared as equal. Episodes now land in
``[target - tolerance, target]``, the resource constraint "at most the budget" of AMC.

"FLOPs" here (bounds and state features alike) is the budget's cost, ``cost_model.ratio_batch``: the
FLOPs of a `tfprune.cost.flops.CostModel`, or the predicted latency of a `tfprune.cost.latency.LatencyModel` under
``JointPruner.budget = "latency"``; the feature names keep "flops" so that stored episodes keep their meaning.

Pure numpy: no TensorFlow, so the bounds are cheap to test exhaustively.
"""

import dataclasses

import gin
import numpy as np

from tfprune.cost.budget import fill_to_target, landing_bands
from tfprune.cost.channel_grid import ChannelGrid

# Columns of a step's state, in order (documented here once; `EpisodeSpace.features` fills them).
STATIC_FEATURES = ("position", "in_channels", "out_channels", "kernel", "stride", "group_flops")
DYNAMIC_FEATURES = ("flops_kept_so_far", "flops_to_come", "previous_ratio", "ratio_low", "ratio_high")
FEATURES = STATIC_FEATURES + DYNAMIC_FEATURES


@dataclasses.dataclass
class Episodes:
    """A batch of finished episodes: what the agent saw and did at each step, and what it built."""

    observations: np.ndarray  # [N, T, len(FEATURES) + context size] state of each step
    actions: np.ndarray  # [N, T] the policy's raw actions (before centring and the feasibility clip)
    kept: np.ndarray  # [N, T] channels kept per group
    flops_ratio: np.ndarray  # [N]
    sizes: np.ndarray  # [T] group sizes

    @property
    def ratios(self):
        """Applied pruning ratios per group, [N, T]."""
        return 1.0 - self.kept / self.sizes


@gin.configurable
class EpisodeSpace:
    """The environment of the layer-wise agent over one model's gated groups.

    Args:
        cost_model: the model's `tfprune.cost.flops.CostModel` (groups in its order are the steps).
        target_flops_ratio / tolerance / max_ratio: the budget, as in `tfprune.cost.budget.FlopsBudget`.
        layer_facts: optional [T, 3] (input channels, kernel size, stride) of each group's first
            producer; zeros when unknown (the bounds never need them).
        center: optional [T] ratios the actions are centred on (the uniform rule's at this budget):
            step t applies ``center[t] + action - max_ratio / 2`` (then the feasibility clip), so a
            fresh policy, whose mean sits mid-range, explores around that rule instead of around a
            ratio of max_ratio / 2 everywhere, which the bounds would turn into "prune the last
            groups to the floor". None: the action is the ratio itself.
        round_to: kept counts are multiples of it or the group's full size (`JointPruner.round_to`); the
            bounds and the chosen counts step over those counts only.
        recentre (gin): with `center`, centre step t on the one ratio that, applied to groups t, t+1, ...,
            lands the episode on the target given the groups already decided (`rest_center`), instead
            of on the uniform rule's ratio for group t. Why: with fixed centres, whatever the earlier
            steps kept above or below uniform falls on the last group alone (its bounds must land the
            budget), so a slight lean of the early groups fills or empties the last group; recentred,
            that slack is spread over every group still to come, as the uniform projection spreads it.
            At step 0, and along an episode that follows the centres, the two agree.
    """

    def __init__(self, cost_model, target_flops_ratio, tolerance, max_ratio, layer_facts=None, center=None,
                 round_to=1, recentre=False):
        self.cost_model = cost_model
        self.max_ratio = float(max_ratio)
        self.target = float(target_flops_ratio)  # the bounds' ceiling (the module's docstring says why)
        self.recentre = bool(recentre) and center is not None
        self.sizes = np.asarray(cost_model.group_sizes, np.int64)
        self.num_steps = len(self.sizes)
        self.grid = ChannelGrid(self.sizes, max_ratio, round_to)
        self.floor = self.grid.floor
        preferred, fallback = landing_bands(self.target, float(tolerance))  # the band every method lands in
        self.low = preferred.low
        self.high = fallback.high  # what `within_budget` accepts: above the target only where granularity forces it
        self.static = self._static_features(layer_facts)
        self.offset = np.zeros(self.num_steps)
        if center is not None:
            self.centre_on(center)

    def centre_on(self, center):
        """Centres the actions on the ratios `center` [T] from now on (see `center` above)."""
        self.offset = np.asarray(center, np.float64) - self.max_ratio / 2

    def _static_features(self, layer_facts):
        """[T, 6]: position, in/out channels (over the largest), kernel / 7, stride / 2, group FLOPs share."""
        facts = np.zeros((self.num_steps, 3)) if layer_facts is None else np.asarray(layer_facts, np.float64)
        widest = float(max(self.sizes.max(), facts[:, 0].max(), 1))
        zeroed = np.tile(self.sizes.astype(np.float64), (self.num_steps, 1))
        np.fill_diagonal(zeroed, 0.0)
        share = 1.0 - self.cost_model.ratio_batch(zeroed)  # FLOPs that depend on each group
        position = np.arange(self.num_steps) / max(1, self.num_steps - 1)
        return np.stack([position, facts[:, 0] / widest, self.sizes / widest, facts[:, 1] / 7.0,
                         facts[:, 2] / 2.0, share], axis=1)

    def _flops(self, kept, t, count, rest):
        """FLOPs ratios with groups < t as in `kept`, group t keeping `count`, later groups `rest`."""
        trial = kept.astype(np.float64).copy()
        trial[:, t] = count
        trial[:, t + 1:] = rest[t + 1:]
        return self.cost_model.ratio_batch(trial)

    def bounds(self, kept, t):
        """(fewest, most) channels group t may keep in each episode, given groups < t in `kept` [N, T];
        both are allowed counts of the grid."""
        n, allowed = kept.shape[0], self.grid.allowed[t]
        first, last = np.zeros(n, np.int64), np.full(n, allowed.size - 1, np.int64)  # indices into `allowed`
        # fewest: smallest count reaching `low` with later groups whole (monotone increasing in count)
        reaches = self._flops(kept, t, allowed[first], self.sizes) >= self.low
        fewest = np.where(reaches, first, self._bisect(kept, t, first, last, self.sizes, lambda f: f >= self.low))
        # most: largest count staying under the target with later groups at their floor
        under = lambda f: f <= self.target + 1e-12  # noqa: E731
        fits = under(self._flops(kept, t, allowed[last], self.floor))
        most = np.where(fits, last, self._bisect(kept, t, first, last, self.floor, under, True))
        most = np.maximum(most, fewest)  # a granularity gap: keep the lower bound's count
        return allowed[fewest], allowed[most]

    def _bisect(self, kept, t, lo, hi, rest, ok, last=False):
        """Per episode, the index of the first allowed count of group t in [lo, hi] where `ok` holds (or,
        with `last`, of the last one)."""
        allowed = self.grid.allowed[t]
        lo, hi = lo.copy(), hi.copy()
        while np.any(hi - lo > 1):
            mid = (lo + hi) // 2
            good = ok(self._flops(kept, t, allowed[mid], rest))
            keep_low = good if last else ~good  # the answer lies above mid
            lo, hi = np.where(keep_low, mid, lo), np.where(keep_low, hi, mid)
        if last:
            return np.where(ok(self._flops(kept, t, allowed[hi], rest)), hi, lo)
        return np.where(ok(self._flops(kept, t, allowed[lo], rest)), lo, hi)

    def features(self, kept, t, previous_ratio, fewest, most):
        """The state of step t for each episode, [N, len(FEATURES)]."""
        n = kept.shape[0]
        undecided = kept.astype(np.float64).copy()
        undecided[:, t:] = 0.0
        so_far = self.cost_model.ratio_batch(undecided)
        undecided[:, t:] = self.sizes[t:]
        to_come = self.cost_model.ratio_batch(undecided) - so_far
        size = float(self.sizes[t])
        dynamic = np.stack([so_far, to_come, previous_ratio, 1.0 - most / size, 1.0 - fewest / size], axis=1)
        return np.concatenate([np.broadcast_to(self.static[t], (n, self.static.shape[1])), dynamic], axis=1)

    def rollout(self, act, num_episodes, context=()):
        """Runs `num_episodes` episodes in lockstep; `act(t, state [N, F]) -> raw actions [N]`.

        A step's state is `features` followed by `context`, a vector shared by every step and episode
        (the dynamics model's representation of the epoch): what the policy acts on is what is stored.
        """
        n, steps = int(num_episodes), self.num_steps
        context = np.asarray(context, np.float32).reshape(-1)
        kept = np.tile(self.sizes, (n, 1))
        observations = np.zeros((n, steps, len(FEATURES) + context.size), np.float32)
        observations[:, :, len(FEATURES):] = context
        actions = np.zeros((n, steps), np.float32)
        previous = np.zeros(n)
        for t in range(steps):
            fewest, most = self.bounds(kept, t)
            observations[:, t, :len(FEATURES)] = self.features(kept, t, previous, fewest, most)
            actions[:, t] = act(t, observations[:, t])
            offset = self.rest_center(kept, t) - self.max_ratio / 2 if self.recentre else self.offset[t]
            wanted = np.round(self.sizes[t] * (1.0 - np.clip(actions[:, t] + offset, 0.0, 1.0)))
            kept[:, t] = np.clip(self.grid.snap_group(t, wanted), fewest, most)  # bounds are allowed counts
            previous = 1.0 - kept[:, t] / self.sizes[t]
        kept = fill_to_target(kept, self.cost_model, self.target, self.grid)  # spend the band's slack
        return Episodes(observations, actions, kept, self.cost_model.ratio_batch(kept), self.sizes)

    def rest_center(self, kept, t, iterations=30):
        """[N] the ratio that, applied to every group from t on (groups < t as in `kept` [N, T]), lands
        each episode on the target: the uniform rule for what is left of the budget, in [0, max_ratio]
        (bisection over continuous counts; FLOPs fall monotonically in the ratio)."""
        lo, hi = np.zeros(kept.shape[0]), np.full(kept.shape[0], self.max_ratio)
        trial = kept.astype(np.float64).copy()
        for _ in range(iterations):
            mid = (lo + hi) / 2
            trial[:, t:] = self.sizes[t:] * (1.0 - mid[:, None])
            over = self.cost_model.ratio_batch(trial) > self.target  # too much kept: prune more
            lo, hi = np.where(over, mid, lo), np.where(over, hi, mid)
        return (lo + hi) / 2

    def within_budget(self, flops_ratio):
        return (flops_ratio >= self.low - 1e-9) & (flops_ratio <= self.high + 1e-9)


def layer_facts(graph):
    """[T, 3] (input channels, kernel size, stride) of each gated group's first producer layer."""
    model, facts = graph.model, []
    for group in graph.gated_groups:
        layer = model.get_layer(group.producers[0])
        kernel = getattr(layer, "kernel_size", (1,))
        stride = getattr(layer, "strides", (1,))
        in_shape = layer.input.shape if hasattr(layer, "input") else (None,)
        facts.append([float(in_shape[-1] or 0), float(max(kernel)), float(max(stride))])
    return np.array(facts)
