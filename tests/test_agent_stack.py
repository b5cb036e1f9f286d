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
