"""The wheel: console scripts, the shipped configs (one copy, from configs/) and the declared requirements."""

import os
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
    assert "tfprune = tfprune.cli:main" in wheel["entry_points"]
    assert "tfprune-train = tfprune.cli:train_main" in wheel["entry_points"]
