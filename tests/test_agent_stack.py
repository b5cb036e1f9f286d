"""Without TF-Agents (installed apart, --no-deps), using the agent is an error that prints the install line."""

import os
import subprocess
import sys

import pytest

from tfprune.infra import agent_stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs Python as on a machine where tf-agents was never installed: the path finder does not see it.
HIDE_TF_AGENTS = """
import importlib.machinery, sys
class Hide(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] == "tf_agents" else super().find_spec(name, path, target)
sys.meta_path[sys.meta_path.index(importlib.machinery.PathFinder)] = Hide
"""


def _run_without_tf_agents(code, cwd):
    return subprocess.run([sys.executable, "-c", HIDE_TF_AGENTS + code], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=dict(os.environ, PYTHONPATH=ROOT))


def test_the_hook_names_the_install_line():
    with pytest.raises(agent_stack.MissingAgentStack, match=agent_stack.INSTALL_LINE.replace(".", r"\.")):
        agent_stack._MissingTfAgents().find_spec("tf_agents")
    assert agent_stack._MissingTfAgents().find_spec("numpy") is None
    assert agent_stack.available()  # this environment has it


@pytest.mark.slow
def test_library_and_command_line_without_tf_agents(tmp_path):
    library = _run_without_tf_agents(
        "import tfprune\n"
        "assert not tfprune.infra.agent_stack.available()\n"
        "model = tfprune.build_model('resnet8', num_classes=10, input_shape=(16, 16, 3))  # gating works\n"
        "try:\n    import tfprune.search.agent\nexcept ModuleNotFoundError as e:\n    print(type(e).__name__, e)\n",
        cwd=str(tmp_path))
    assert library.returncode == 0, library.stderr[-2000:]
    assert library.stdout.startswith("MissingAgentStack ") and f"\n    {agent_stack.INSTALL_LINE}\n" in library.stdout
    command = _run_without_tf_agents(
        f"sys.argv = ['tfprune', 'train', '--config', 'smoke.gin', '--workdir', {str(tmp_path / 'run')!r}]\n"
        "from tfprune.cli.commands import main\nsys.exit(main())\n", cwd=str(tmp_path))
    assert command.returncode != 0 and "Traceback" not in command.stderr
    assert f"\n    {agent_stack.INSTALL_LINE}\n" in command.stderr, command.stderr[-2000:]


def test_a_wrong_import_order_is_one_error_naming_the_fix(monkeypatch):
    """Recorded by `import tfprune` (TensorFlow already loaded, TF_USE_LEGACY_KERAS unset): using the agent
    raises ImportOrderError with both fixes; the right order raises nothing."""
    monkeypatch.setitem(agent_stack._import_order, "tensorflow_came_first", True)
    with pytest.raises(agent_stack.ImportOrderError, match="Put `import tfprune` before `import keras`"):
        agent_stack.check_import_order()
    with pytest.raises(agent_stack.ImportOrderError, match="TF_USE_LEGACY_KERAS=1"):
        agent_stack.require()
    monkeypatch.setitem(agent_stack._import_order, "tensorflow_came_first", False)
    agent_stack.check_import_order()


@pytest.mark.slow
@pytest.mark.parametrize("first, fixed_by_env", [("keras", False), ("tensorflow", False), ("keras", True)])
def test_keras_imported_before_tfprune(first, fixed_by_env):
    """In a fresh process: with Keras or TensorFlow imported first the agent is ImportOrderError (not a
    TF-Agents failure inside network building) while gating still works; TF_USE_LEGACY_KERAS=1 in the
    environment makes that order work."""
    code = (f"import {first}\nimport tfprune\n"
            "tfprune.build_model('resnet8', num_classes=10, input_shape=(16, 16, 3))\n"
            "from tfprune.search.agent.episodic import EpisodicAgent\n"
            "EpisodicAgent(observation_dim=8, max_ratio=0.9, seed=0)\nprint('AGENT BUILT')\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if fixed_by_env:
        env["TF_USE_LEGACY_KERAS"] = "1"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                            cwd=ROOT)
    if fixed_by_env:
        assert result.returncode == 0 and "AGENT BUILT" in result.stdout, result.stderr[-2000:]
    else:
        assert result.returncode != 0 and "ImportOrderError" in result.stderr, result.stderr[-2000:]
        assert "import tfprune` before `import keras`" in result.stderr
