"""The kept channel counts each group may take: multiples of `round_to` (`JointPruner.round_to`).

CPU kernels (XNNPACK's, under LiteRT) compute output channels in tiles of 8 or 16 and pad the last one,
so a layer with ``8k - 3`` channels can cost what one with ``8k`` costs (`tfprune.studies.channel_bench` measures
it). Rounding kept counts to multiples of ``round_to`` keeps the pruned model on the tiles. A group may
keep any multiple of ``round_to`` between its floor (the fewest channels `max_ratio` allows, rounded up
to a multiple) and its size, or its full size, which need not be a multiple: the unpruned layer is what
it is. A group smaller than ``round_to`` (or whose rounded floor exceeds its size) therefore stays whole.
``round_to = 1`` is every count from the floor up, i.e. no rounding.

Pure numpy, shared by the budget projection (`tfprune.cost.budget`) and the layer-wise agent's per-step bounds
(`tfprune.search.episode`), so that both step over the same counts.
"""

import gin
import numpy as np

from tfprune.errors import TfpruneError


class RoundingError(TfpruneError, ValueError):
    """`round_to` is not a positive integer."""


def check_round_to(round_to):
    """``round_to`` as an int, or a `RoundingError` naming the setting (checked where it is configured)."""
    number = isinstance(round_to, (int, float, np.integer, np.floating)) and not isinstance(round_to, bool)
    if not number or not float(round_to).is_integer() or int(round_to) < 1:
        raise RoundingError(f"JointPruner.round_to must be a positive integer (1 = no rounding, 8 = multiples "
                            f"of 8 channels), got {round_to!r}.")
    return int(round_to)


@gin.configurable(allowlist=["min_channels"])
class ChannelGrid:
    """Allowed kept counts per group, ascending: ``allowed[i]`` for group i (always holds its size).

    Args:
        sizes: channels of each group.
        max_ratio: largest pruning ratio of any group (its floor is ``max(1, round(size * (1 - max_ratio)))``,
            as without rounding, then rounded up to a multiple of ``round_to``).
        round_to: kept counts are multiples of this (besides the full size).
        min_channels: no group keeps fewer channels than this (a group smaller than it stays whole), on top
            of `max_ratio`'s floor. A ratio floor leaves a narrow layer (a 16-channel stem at 0.95: 1
            channel) a handful of channels, few enough that every one can be a dead ReLU and the network
            a constant; the MobileNetV2 runs at 10% of the FLOPs that fell to chance had such a stem
            (`docs/results.md`). 1: the ratio's floor alone (the default).
    """

    def __init__(self, sizes, max_ratio, round_to=1, min_channels=1):
        self.round_to = check_round_to(round_to)
        self.sizes = np.asarray(sizes, np.int64)
        floors = np.maximum(1, np.round(self.sizes * (1.0 - float(max_ratio)))).astype(np.int64)
        self.min_channels = _checked_min_channels(min_channels)
        floors = np.maximum(floors, np.minimum(self.sizes, self.min_channels))
        self.allowed = [_allowed(int(size), int(floor), self.round_to) for size, floor in zip(self.sizes, floors)]
        self.floor = np.array([a[0] for a in self.allowed], np.int64)

    @property
    def whole(self):
        """Groups that cannot be pruned at all at this rounding (only their full size is allowed)."""
        return np.array([a.size == 1 for a in self.allowed], bool)

    def snap(self, kept):
        """The allowed count nearest to each of ``kept`` [..., T] (ties go to the larger count)."""
        kept = np.asarray(kept, np.float64)
        out = np.empty(kept.shape, np.int64)
        for t in range(len(self.allowed)):
            out[..., t] = self.snap_group(t, kept[..., t])
        return out

    def snap_group(self, t, counts):
        """The allowed count of group t nearest to each of ``counts`` (ties go to the larger count)."""
        allowed, counts = self.allowed[t], np.asarray(counts, np.float64)
        upper = np.clip(np.searchsorted(allowed, counts), 0, allowed.size - 1)
        lower = np.clip(upper - 1, 0, allowed.size - 1)
        take_lower = np.abs(counts - allowed[lower]) < np.abs(allowed[upper] - counts)
        return np.where(take_lower, allowed[lower], allowed[upper])

    def step(self, t, count, direction):
        """The allowed count of group t next to ``count`` upward (+1) or downward (-1); None past the end."""
        allowed = self.allowed[t]
        i = np.searchsorted(allowed, count, side="right") if direction > 0 else np.searchsorted(allowed, count) - 1
        return int(allowed[i]) if 0 <= i < allowed.size else None

    def steps_up(self, kept):
        """[N, T] the next allowed count above each of ``kept`` [N, T] (`step` upward, for many sub-networks
        at once); -1 where the group is at its size."""
        up = np.full(kept.shape, -1, np.int64)
        for t, allowed in enumerate(self.allowed):
            i = np.searchsorted(allowed, kept[:, t], side="right")
            up[:, t] = np.where(i < allowed.size, allowed[np.minimum(i, allowed.size - 1)], -1)
        return up


def _checked_min_channels(min_channels):
    number = isinstance(min_channels, (int, np.integer)) and not isinstance(min_channels, bool)
    if not number or min_channels < 1:
        raise RoundingError(f"ChannelGrid.min_channels must be a positive integer (1 = only max_ratio's floor), "
                            f"got {min_channels!r}.")
    return int(min_channels)


def _allowed(size, floor, round_to):
    first = -(-floor // round_to) * round_to  # the floor rounded up to a multiple
    return np.unique(np.append(np.arange(first, size + 1, round_to, dtype=np.int64), size))


def round_masks(masks, round_to, importance, max_ratio=0.9):
    """Masks whose kept counts are snapped to the grid of ``round_to`` (nearest allowed count, ties up),
    changing as few channels as possible: rounding up adds the most important pruned channels, rounding
    down drops the least important kept ones (``importance``: {group: scores}, e.g.
    `tfprune.structure.masks.channel_importance`). For masks chosen without rounding (an older run's masks.json)
    before export; the FLOPs move with the counts, which the export study reports."""
    names = list(masks)
    sizes = np.array([np.size(masks[name]) for name in names])
    grid = ChannelGrid(sizes, max_ratio, round_to)
    kept = grid.snap(np.array([np.count_nonzero(masks[name]) for name in names]))
    rounded = {}
    for name, count in zip(names, kept):
        mask = np.asarray(masks[name], bool)
        score = np.asarray(importance[name], np.float64)
        order = np.lexsort((-score, ~mask))  # kept channels first, each part by falling importance
        rounded[name] = np.zeros(mask.size, bool)
        rounded[name][order[:count]] = True
    return rounded
