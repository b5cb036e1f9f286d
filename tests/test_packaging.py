"""The wheel: console scripts, the shipped configs (one copy, from configs/) and the declared requirements."""

import os
import re
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ROOT,
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("tfprune-*.whl")
    with zipfile.ZipFile(path) as z:
        info = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
        return {"names": set(z.namelist()), "entry_points": z.read(f"{info}/entry_points.txt").decode(),
                "metadata": z.read(f"{info}/METADATA").decode()}


def test_wheel_ships_every_config_and_both_console_scripts(wheel):
    configs_dir = os.path.join(ROOT, "configs")
    expected = {f"tfprune/configs/{os.path.relpath(os.path.join(d, n), configs_dir)}"
                for d, _, names in os.walk(configs_dir) for n in names if n.endswith(".gin")}
    assert expected and expected <= wheel["names"]
    assert "tfprune = tfprune.cli.commands:main" in wheel["entry_points"]
    assert "tfprune-train = tfprune.cli.commands:train_main" in wheel["entry_points"]


def _requirement_names(metadata, extras=False):
    lines = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    return {re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-")
            for line in lines if ("extra ==" in line) == extras}


def test_wheel_declares_what_pip_resolves_and_leaves_tf_agents_to_the_no_deps_line(wheel):
    required = _requirement_names(wheel["metadata"])
    assert {"tensorflow", "keras", "numpy", "gin-config", "tensorflow-probability", "tf-keras", "gym",
            "tensorflow-datasets", "tensorboard", "scikit-learn", "matplotlib", "tqdm", "ai-edge-litert"} <= required
    # tf-agents 0.19 pins versions that conflict with TF 2.21: never declared, installed with --no-deps.
    assert "tf-agents" not in required and "tensorflow-cpu" not in required
    assert _requirement_names(wheel["metadata"], extras=True) == {"pytest", "pytest-timeout", "pytest-xdist"}
    assert "Requires-Python: <3.14,>=3.11" in wheel["metadata"]
    # Every declared requirement is installed here, at a version the lock file tested.
    lock = open(os.path.join(ROOT, "requirements", "lock.txt")).read().lower().replace("_", "-")
    assert all(f"\n{name}==" in lock for name in required), required


def test_keras_hub_is_a_test_dependency_installed_without_its_pins(wheel):
    """keras-hub (the zoo sweep's KerasHub backbones) declares tensorflow-text, which would install `tensorflow`
    over tensorflow-cpu: tools/install.sh installs it --no-deps from nodeps.txt, and the wheel never declares it."""
    declared = _requirement_names(wheel["metadata"]) | _requirement_names(wheel["metadata"], extras=True)
    assert not declared & {"keras-hub", "tokenizers", "tensorflow-text"}
    nodeps = open(os.path.join(ROOT, "requirements", "nodeps.txt")).read()
    lock = open(os.path.join(ROOT, "requirements", "lock.txt")).read().lower().replace("_", "-")
    assert "\nkeras-hub==" in nodeps and "\ntokenizers==" in nodeps
    assert all(f"\n{line}\n" in lock for line in nodeps.splitlines() if line and not line.startswith("#"))
    assert "--no-deps -r requirements/nodeps.txt" in open(os.path.join(ROOT, "tools", "install.sh")).read()
