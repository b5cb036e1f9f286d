"""The alignment target: which sub-network the weights are pulled toward, and when it changes.

Two rules (`TARGET_RULES`) for a learning policy:

* "best_episode": after each agent step the best scored episode is offered as the new target; it
  replaces the current target only if it beats it, rescored on today's weights, by `switch_margin`
  (a target that hops between near-equal masks every epoch would pull the weights toward none).
  Measured weakness (CHANGELOG.md, earlier studies): the first targets are picked from near-chance rewards, and
  alignment then makes the incumbent self-fulfilling, so later learning never reaches the target.
* "policy": the target is the policy's greedy sub-network after each update. It starts where the
  policy starts (the uniform rule, for the centred episodic agent) and moves only as fast as PPO's
  clipped updates move the policy's mean, so search and alignment stay coupled without a lock-in:
  the episodes are perturbations around the aligned target and their rewards say which direction
  of change costs least.

Fixed rules (`stable_target` False) always adopt today's masks, under either rule.
"""

import dataclasses

import numpy as np

TARGET_RULES = ("best_episode", "policy")

@dataclasses.dataclass
class Selection:
    """A sub-network and what it scored."""

    masks: dict
    reward: float
    flops_ratio: float
    epoch: int

    def to_json(self):
        return {**dataclasses.asdict(self), "masks": {k: np.asarray(v).astype(int).tolist() for k, v in self.masks.items()}}

    @classmethod
    def from_json(cls, data):
        masks = {k: np.asarray(v, bool) for k, v in data["masks"].items()}
        return cls(masks, data["reward"], data["flops_ratio"], data["epoch"])


class AlignmentTarget:
    """Holds the current target (`best`) and writes it into the alignment regulariser when it changes.

    Args:
        alignment: the `GroupLassoAlignment` whose target masks this sets.
        switch_margin: held-out accuracy by which a challenger must beat the rescored incumbent
            ("best_episode" rule only).
        rule: "best_episode" or "policy" (module docstring).
    """

    def __init__(self, alignment, switch_margin=0.02, rule="best_episode"):
        if rule not in TARGET_RULES:
            raise ValueError(f"target_rule must be one of {TARGET_RULES}, got {rule!r}.")
        self.alignment = alignment
        self.switch_margin = float(switch_margin)
        self.rule = rule
        self.best = None  # Selection, or None before the first agent step

    def follows(self, policy):
        """Whether the next target is `policy`'s greedy episode: the "policy" rule with a learning
        policy (fixed rules always adopt today's masks)."""
        return policy.stable_target and self.rule == "policy"

    def to_rescore(self, policy):
        """The incumbent's masks, to be rescored beside a learning policy's episodes ("best_episode"
        rule), else None."""
        if not policy.stable_target or self.best is None or self.follows(policy):
            return None
        return self.best.masks

    def offer(self, challenger, incumbent_reward=None):
        """Adopts `challenger` unless the incumbent, rescored today (`incumbent_reward`, None = not
        rescored), is within the margin; returns whether the target switched."""
        keep = self.best is not None and incumbent_reward is not None and np.isfinite(incumbent_reward)
        if keep and challenger.reward < incumbent_reward + self.switch_margin:
            self.best = Selection(self.best.masks, float(incumbent_reward), self.best.flops_ratio, challenger.epoch)
            return False
        self.best = challenger
        self.alignment.set_targets(challenger.masks)
        return True

    def get_state(self):
        return None if self.best is None else self.best.to_json()

    def set_state(self, state):
        """The target masks themselves are restored with the alignment's variables (TF checkpoint)."""
        self.best = None if state is None else Selection.from_json(state)


def broadcast_selection(selection, group_names, broadcast):
    """Every worker adopts the chief's selection (identity on a single worker): masks, reward and FLOPs
    ratio packed into one float array for `broadcast`."""
    flat = np.concatenate([selection.masks[n] for n in group_names] + [[selection.reward, selection.flops_ratio]])
    flat = broadcast(flat.astype(np.float32))
    sizes = np.cumsum([selection.masks[n].size for n in group_names])[:-1]
    masks = {n: part >= 0.5 for n, part in zip(group_names, np.split(flat[:-2], sizes))}
    return Selection(masks, float(flat[-2]), float(flat[-1]), selection.epoch)
