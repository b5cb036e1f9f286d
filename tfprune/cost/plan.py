"""The pruning plan of a model, before any training: what will be pruned, what is coupled, what is
left whole and why, and what it can cost.

`inspect(model)` answers the questions users ask before they prune: the channel groups (each with the
layers producing its channels, which are pruned together, and the layers reading them), each group's
share of the model's FLOPs and parameters, the layers left unpruned with the reason (the barrier
warnings of `ChannelGraph` and `auto_gate`), and the FLOPs/params range reachable when every group
may lose up to `max_ratio` of its channels. Every number comes from `CostModel`, the counter the
budget, the trainer and the export reports use.

A group's *share* is the part of the model's cost that scales with its channels: the cost removed
when the group alone is removed entirely. A layer between two groups (a conv reading group A and
producing group B) counts in both shares, so shares may add up to more than 100%.
"""

import dataclasses
import json
import warnings

import numpy as np

from tfprune.structure.auto_gate import auto_gate
from tfprune.cost.flops import CostModel
from tfprune.structure.graph import ChannelGraph
from tfprune.structure.masks import kept_from_ratios


@dataclasses.dataclass
class GroupPlan:
    """One prunable channel group."""

    name: str
    channels: int
    producers: list  # layers whose output channels are this group (pruned together)
    consumers: list  # Conv/Dense layers reading these channels (their inputs shrink)
    flops_share: float
    params_share: float


@dataclasses.dataclass
class PruningPlan:
    """What `inspect` found; `to_dict()` is the --json form, `lines()` the console form."""

    model: str
    flops: float
    params: float
    groups: list  # GroupPlan
    unpruned: list  # one message per barrier: layer, type, reason
    max_ratio: float
    min_flops: float  # every group at max_ratio
    min_params: float
    gated_input: bool  # the model already had gates (zoo model, gated .keras file)

    def to_dict(self):
        return dataclasses.asdict(self)

    def lines(self):
        """The plan as console lines."""
        out = [f"{self.model}: {self.flops / 1e6:.2f} MFLOPs, {self.params / 1e6:.3f} M params, "
               f"{len(self.groups)} prunable channel groups"
               + ("" if self.gated_input else " (found by auto_gate)")]
        width = max([len(g.name) for g in self.groups] + [5])
        out.append(f"  {'group'.ljust(width)}  channels  FLOPs share  params share  layers pruned together")
        for g in self.groups:
            out.append(f"  {g.name.ljust(width)}  {g.channels:8d}  {g.flops_share:11.1%}  {g.params_share:12.1%}  "
                       f"{', '.join(g.producers)}")
        out.append(f"left unpruned: {len(self.unpruned) or 'nothing'}")
        out += [f"  {message}" for message in self.unpruned]
        out.append(f"reachable with max_ratio {self.max_ratio:g} (every group may lose up to that share of its "
                   f"channels): FLOPs {self.min_flops / self.flops:.1%}-100% ({self.min_flops / 1e6:.2f}-"
                   f"{self.flops / 1e6:.2f} M), params {self.min_params / self.params:.1%}-100%")
        return out

    def to_json(self):
        return json.dumps(self.to_dict(), indent=1)

    def __str__(self):
        """The readable table `tfprune inspect` prints (the repr stays the dataclass one)."""
        return "\n".join(self.lines())


def inspect(model, max_ratio=0.9):
    """The `PruningPlan` of a Keras model: a gated one (zoo model, `auto_gate` output) as it is, a plain
    one through `auto_gate` (the plan of what `auto_gate` + `JointPruner` would prune)."""
    name = model.name
    graph = ChannelGraph(model, warn=False)
    gated_input = bool(graph.gated_groups)
    unpruned = list(graph.warnings)
    if not gated_input:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = auto_gate(model)
        unpruned = [str(w.message) for w in caught]
        graph = ChannelGraph(model, warn=False)
    cost = CostModel(model, graph)
    sizes = cost.group_sizes
    groups = [_group_plan(cost, graph, i) for i in range(len(sizes))]
    smallest = cost.cost_of_kept(kept_from_ratios(np.full(len(sizes), max_ratio), sizes)) if len(sizes) else cost.full
    return PruningPlan(model=name, flops=cost.full.flops, params=cost.full.params, groups=groups,
                       unpruned=unpruned, max_ratio=float(max_ratio), min_flops=smallest.flops,
                       min_params=smallest.params, gated_input=gated_input)


def _group_plan(cost, graph, index):
    group = graph.gated_groups[index]
    kept = cost.group_sizes.astype(np.float64).copy()
    kept[index] = 0.0
    without = cost.cost_of_kept(kept)
    full = cost.full
    return GroupPlan(name=group.name, channels=int(group.size), producers=list(group.producers),
                     consumers=_consumers(graph, group), flops_share=_share(full.flops - without.flops, full.flops),
                     params_share=_share(full.params - without.params, full.params))


def _consumers(graph, group):
    """Layers that read across the group's channels (Conv/Dense: their inputs shrink when it is pruned)."""
    names = []
    for info in graph.nodes:
        if info.rule is None or info.rule.kind != "produce" or not isinstance(info.in_layout, tuple):
            continue
        layout = info.in_layout if info.in_layout and isinstance(info.in_layout[0][0], int) else ()
        if any(graph.group_of_space(space) is group for space, _ in layout) and info.layer.name not in names:
            names.append(info.layer.name)
    return names


def _share(part, whole):
    return float(part / whole) if whole else 0.0
