"""`tfprune COMMAND`: one command line over train / export / compare / bench; configs by path or by the
name of a shipped config, from any working directory."""

import os

import gin
import pytest

from tfprune.cli import commands as cli

from tfprune.cli import config_files

from tfprune.infra import quiet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("clean_gin")  # tests/conftest.py


def test_shipped_configs_are_the_repository_configs_folder():
    # One copy of each gin file: the package's configs/ is the repository's configs/ folder.
    assert os.path.samefile(config_files.SHIPPED_DIR, os.path.join(ROOT, "configs"))
    assert "smoke.gin" in config_files.shipped() and "imagenet_resnet50.gin" in config_files.shipped()


def test_config_resolves_path_first_then_shipped_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped_smoke = os.path.join(config_files.SHIPPED_DIR, "smoke.gin")
    assert config_files.resolve("smoke.gin") == shipped_smoke
    assert config_files.resolve("smoke") == shipped_smoke
    assert config_files.resolve("configs/smoke.gin") == shipped_smoke
    (tmp_path / "smoke.gin").write_text("run.model_name = 'resnet20'\n")
    assert config_files.resolve("smoke.gin") == "smoke.gin"  # the user's own file wins
    with pytest.raises(config_files.ConfigNotFound, match=r"'nope.gin' does not exist.*smoke\.gin"):
        config_files.resolve("nope.gin")


def test_parse_gin_by_name_includes_base_parts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli.parse_gin(["imagenet_resnet50.gin"], [])
    assert gin.query_parameter("run.model_name") == "resnet50"
    assert gin.query_parameter("build_datasets.source") == "imagenet2012"  # from base/imagenet.gin


def test_list_configs(capsys):
    assert cli.main(["train", "--list-configs"]) == 0
    out = capsys.readouterr().out
    assert "smoke.gin" in out and "A half-minute end-to-end run on CPU" in out


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("train", "export", "compare", "bench", "inspect"))


def test_the_readme_command_table_says_what_the_help_says():
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
    rows = readme.replace("`", "")  # the table sets names and flags as code
    for name, (_, text) in cli.COMMANDS.items():
        assert f"| {name} | {text} |" in rows, f"README's command table lacks or words differently: {name}"


def test_subcommands_reach_their_own_parsers(capsys):
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help", "--verbose"])  # --verbose is accepted anywhere
        assert exit_info.value.code == 0
    with pytest.raises(SystemExit):
        cli.main(["prune"])
    assert "invalid choice" in capsys.readouterr().err


def test_python_dash_m_tfprune_counts_as_a_command_line():
    assert quiet.is_command_line(["-m"], orig_argv=["python", "-m", "tfprune", "train", "--verbose"])
    assert not quiet.is_command_line(["-m"], orig_argv=["python", "-m", "pytest"])


@pytest.mark.slow
def test_python_dash_m_tfprune_from_another_directory(tmp_path):
    import subprocess
    import sys

    from tfprune.studies.runs import train_command

    result = subprocess.run([sys.executable, "-m", "tfprune", "train", "--list-configs"], capture_output=True,
                            text=True, timeout=300, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0 and "imagenet_resnet50.gin" in result.stdout, result.stderr[-2000:]
    # the studies start their runs so, from a checkout as from an installed package
    assert train_command("w", ["a.gin"])[1:6] == ["-m", "tfprune", "train", "--workdir", "w"]


@pytest.mark.slow
def test_python_dash_m_from_a_directory_with_a_base_folder(tmp_path):
    # gin would take ./base for the package of `include 'base/train.gin'` if the working directory were
    # on the import path (a namespace package without a file: TypeError deep inside gin).
    import subprocess
    import sys

    (tmp_path / "base").mkdir()
    result = subprocess.run([sys.executable, "-m", "tfprune", "train", "--config", "smoke.gin",
                             "--gin_bindings", "no_such_configurable.x = 1"], capture_output=True, text=True,
                            timeout=300, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT))
    assert "bad gin configuration" in result.stderr and "no_such_configurable" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_list_configs_prints_whole_first_sentences():
    text = " ".join(line.strip() for line in config_files.describe())
    # the smoke config's first sentence spans three comment lines: all of it, up to its full stop
    assert "a tiny ResNet-8, 4 epochs (1 warm-up, 3 with an agent step), 2 fine-tuning epochs, SavedModel + " \
           "TFLite export." in text
    assert "360 validation), a half-width ResNet-20, 30% of the FLOPs kept." in text
    assert "The alignment is strong" not in text  # the second sentence is left to the file
    assert config_files.first_sentence("One. Two.") == "One." and config_files.first_sentence("No stop") == "No stop"
