"""A run directory written before the architecture split (commit 54da32d, when one `_Job` class and a
315-line `JointPruner` wrote it) resumes with today's code. Checkpoint object names and the pruner's
JSON state are a format that users' half-finished runs depend on: a refactor must keep reading them.

The fixture is the workdir of `tools/train.py --config configs/smoke.gin --gin_bindings
"run.deterministic = True"` cut after epoch 3 of 4 (ckpt-3 + pruner_state-3.json + config.gin).
"""

import json
import os
import shutil

import gin
import pytest

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pre_split_checkpoint")


@pytest.mark.slow
def test_checkpoint_written_before_the_split_resumes(tmp_path, capsys):
    from tfprune.training import trainer
    from tfprune.cli.commands import parse_gin

    workdir = tmp_path / "run"
    shutil.copytree(FIXTURE, workdir)
    gin.clear_config()
    # The fixture's agent is the one-step bandit (the default before the layer-wise agent): a run resumes
    # with the agent (and alignment-target rule) it was written with: agent_mode "bandit", "best_episode".
    parse_gin([str(workdir / "config.gin")], ['run.export_quantizations = ("float",)', "run.finetune_epochs = 1",
                                              'JointPruner.agent_mode = "bandit"', "JointPruner.num_samples = 8",
                                              'JointPruner.target_rule = "best_episode"',
                                              "JointPruner.episode_images = None"])
    try:
        summary = trainer.run(str(workdir))
    finally:
        gin.clear_config()
    out = capsys.readouterr().out
    assert f"Resumed from {workdir}/ckpt_joint/ckpt-3." in out
    assert "epoch 3/4" not in out and "epoch 4/4" in out  # only the last joint epoch is trained again
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02
    # the fixture predates the phase timings: only the epoch trained here is timed, the others count 0
    assert 0 < summary["phase_seconds"]["train"] < 600
    with open(workdir / "history.json") as f:
        history = json.load(f)
    assert [h["epoch"] for h in history] == [1, 2, 3]  # two agent steps from the old state, one new
    with open(workdir / "masks.json") as f:
        assert set(json.load(f)) == set(summary["kept_channels"])


def test_a_bandit_run_resumed_with_the_episodic_agent_names_the_binding(tmp_path):
    """Without `agent_mode = "bandit"` the old run cannot resume: one clear error with the binding that
    resumes it, not 46 unmatched TensorFlow variables."""
    import pytest

    from tfprune.training import trainer
    from tfprune.cli.commands import parse_gin
    from tfprune.search.policy import PolicyError

    workdir = tmp_path / "run"
    shutil.copytree(FIXTURE, workdir)
    gin.clear_config()
    parse_gin([str(workdir / "config.gin")], ["JointPruner.num_samples = 8", "JointPruner.episode_images = None"])
    try:
        with pytest.raises(PolicyError, match="JointPruner.agent_mode = \"bandit\""):
            trainer.run(str(workdir))
    finally:
        gin.clear_config()
    assert not (workdir / "ckpt_joint" / "ckpt-4.index").exists()  # nothing trained, nothing written
