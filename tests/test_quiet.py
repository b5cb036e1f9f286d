"""A run and `import tfprune` start quietly; --verbose, TFPRUNE_VERBOSE and the user's own
TF_CPP_MIN_LOG_LEVEL bring dependencies' output back; the first lines of a run say what runs."""

import os
import re
import subprocess
import sys

import gin
import pytest
import tensorflow as tf

from tfprune.infra import quiet
from tfprune.infra import safe_write, workdir
from tfprune.cli.commands import parse_gin
from tfprune.cli.run_header import header_lines, policy_setting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")
# What must never reach a user's console by default.
NOISE = re.compile(r"^[IWE]\d{4} |absl::InitializeLog|cuInit|Gym has been unmaintained|Deprecat|"
                   r"XNNPACK delegate|fully_quantize", re.MULTILINE)
# Loads everything a run loads (TensorFlow, TF-Agents and Gym, TFLite conversion and interpreter).
EVERYTHING = """
import tfprune  # first, as the README says: TensorFlow loads inside it
import numpy as np, keras
from tfprune.deploy.export import convert_tflite
from tfprune.deploy.interpreter import make_interpreter
import tf_agents.agents.ppo.ppo_clip_agent
m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(2)])
tflite = convert_tflite(m, "int8", representative_data=[np.random.rand(2, 8, 8, 3).astype("float32")])
make_interpreter(tflite).invoke()
print("ok")
"""


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", quiet.VERBOSE_ENV)}
    return dict(env, PYTHONPATH=ROOT, **extra)


def _python(code, **extra):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env=_clean_env(**extra), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_import_convert_and_agent_stack_print_nothing_by_default():
    output = _python(EVERYTHING)
    assert output.strip() == "ok", output[-3000:]


@pytest.mark.slow
def test_verbose_and_the_users_tf_log_level_bring_tensorflow_lines_back():
    assert NOISE.search(_python("import tfprune", TFPRUNE_VERBOSE="1"))
    assert re.search(r"^I\d{4} ", _python("import tfprune", TF_CPP_MIN_LOG_LEVEL="0"), re.MULTILINE)


def test_verbose_flag_counts_only_on_tfprune_command_lines():
    tools = os.path.join(ROOT, "tools", "train.py")
    assert quiet.verbose_requested([tools, "--config", "x.gin", "--verbose"], environ={})
    assert quiet.verbose_requested(["/usr/bin/tfprune", "train", "--verbose"], environ={})
    assert not quiet.verbose_requested(["/home/me/my_script.py", "--verbose"], environ={})
    assert not quiet.verbose_requested([tools, "--config", "x.gin"], environ={})
    assert quiet.verbose_requested(["python"], environ={quiet.VERBOSE_ENV: "1"})


def test_a_log_level_tfprune_defaulted_is_not_the_users():
    assert quiet.user_sets_tf_logging({"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert not quiet.user_sets_tf_logging({})
    assert not quiet.user_sets_tf_logging({"TF_CPP_MIN_LOG_LEVEL": "2", "TFPRUNE_DEFAULTED_TF_LOG_LEVEL": "2"})


def test_native_output_drops_only_matching_lines(monkeypatch, capfd):
    monkeypatch.setitem(quiet._state, "filtering", True)
    with quiet.native_output(quiet.TFLITE_NOISE):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nerror: a real problem\n")
    assert capfd.readouterr().err == "error: a real problem\n"
    assert "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in quiet.hidden_lines()


def test_header_names_model_data_budget_devices_and_resume_state(tmp_path):
    gin.clear_config()
    try:
        parse_gin([SMOKE], ["JointPruner.target_flops_ratio = 0.3"])
        lines = header_lines(str(tmp_path), tf.distribute.OneDeviceStrategy("/cpu:0"))
    finally:
        gin.clear_config()
    text = "\n".join(lines)
    assert [line.split(":")[0] for line in lines] == ["model", "data", "budget", "devices", "workdir"]
    assert "resnet8" in text and "digits" in text and "keep 30% of the FLOPs" in text and "fresh run" in text


@pytest.mark.parametrize("binding, shown, learned", [
    (None, "agent (episodic)", True),
    ("JointPruner.policy = @EpisodicPolicy", "EpisodicPolicy", True),
    ("JointPruner.policy = @BanditPolicy", "BanditPolicy", True),
    ("JointPruner.policy = 'uniform'", "uniform", False),
    ("JointPruner.policy = @GlobalMagnitudePolicy", "GlobalMagnitudePolicy", False),
])
def test_header_names_the_policy_and_knows_when_it_needs_tf_agents(binding, shown, learned):
    """A policy bound as a class (gin ``@EpisodicPolicy``) is an agent too: the command line checks
    TF-Agents before the run starts for it as for the name "agent"."""
    gin.clear_config()
    try:
        parse_gin([SMOKE], [binding] if binding else [])
        assert policy_setting() == (shown, learned)
    finally:
        gin.clear_config()


def test_progress_says_fresh_resumed_or_complete(tmp_path):
    root = str(tmp_path)
    assert workdir.progress(root) == "fresh run"
    safe_write.write_json(os.path.join(root, workdir.SELECTION), {})
    assert "fine-tuning" in workdir.progress(root)
    safe_write.write_json(os.path.join(root, workdir.SUMMARY), {})
    assert "complete" in workdir.progress(root)


@pytest.mark.slow
def test_smoke_run_output_is_only_tfprunes_own(tmp_path):
    # `tfprune train` with a shipped config's bare name, from a directory that has no configs/ folder.
    command = [sys.executable, "-m", "tfprune", "train", "--config", "smoke.gin", "--workdir", str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=_clean_env(), cwd=str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert not NOISE.search(output), NOISE.findall(output)
    assert output.startswith("model:   resnet8"), output[:500]
