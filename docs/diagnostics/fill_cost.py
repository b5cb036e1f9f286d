"""Cost of spending the band's slack (`tfprune.cost.budget.fill_to_target`) in an agent step's budget work.

ResNet-56 at 32x32 (the `tools/bench.py` model), 50% of the FLOPs, 128 layer-wise episodes from a
random policy, each then landed as the pruner lands them (`FlopsBudget.land`): the rollout and the 128
landings timed with the fill and with it replaced by the identity, interleaved over five rounds (the
first includes warm-up). The scoring of the episodes, 92-99% of an agent step, is not part of it.

    python docs/diagnostics/fill_cost.py
"""

import time
from unittest import mock

import numpy as np

import tfprune.cost.budget as budget_module
import tfprune.search.episode as episode_module
from tfprune.cost.flops import CostModel
from tfprune.models import build_model
from tfprune.pruning.pruner import _gated_graph


def main(episodes=128, target=0.5, rounds=5):
    model = build_model("resnet56", 10, (32, 32, 3))
    graph = _gated_graph(model)
    cost_model = CostModel(model, graph)
    budget = budget_module.FlopsBudget(cost_model, graph, target, 0.9, 0.02)
    space = episode_module.EpisodeSpace(cost_model, target, 0.02, 0.9,
                                        center=1.0 - budget.uniform_kept / cost_model.group_sizes)

    def budget_work():
        rng = np.random.default_rng(0)
        rolled = space.rollout(lambda t, state: rng.normal(0.45, 0.15, len(state)), episodes)
        for ratios in rolled.ratios:
            budget.land(ratios)
        return rolled

    def identity(kept, *_):
        return np.array(kept, np.int64, ndmin=2)

    for index in range(rounds):
        for label, fill in (("with the fill", None), ("without it", identity)):
            patches = [mock.patch.object(module, "fill_to_target", fill) for module in (episode_module, budget_module)]
            for patch in patches if fill else ():
                patch.start()
            start = time.perf_counter()
            rolled = budget_work()
            seconds = time.perf_counter() - start
            mock.patch.stopall()
            print(f"round {index}: {label}: {seconds:.2f} s, mean FLOPs ratio {rolled.flops_ratio.mean():.4f}")


if __name__ == "__main__":
    main()
