"""What a run was measured on (`tfprune.infra.environment`): recorded in summary.json, so that runs from
different machines or stacks are told apart."""

import json

from tfprune.infra import environment


def test_environment_is_json_ready_and_names_the_stack():
    env = environment.environment()
    assert json.loads(json.dumps(env)) == env
    assert env["packages"]["numpy"] == __import__("numpy").__version__
    assert env["packages"]["keras"] == __import__("keras").__version__
    assert env["cpu"] and env["cpu_count"] >= 1
    assert set(env["cpu_kernel_features"]) <= set(environment.KERNEL_FEATURES)


def test_missing_package_is_said_not_raised():
    assert environment.package_versions(("numpy", "no-such-package-tfprune")) == {
        "numpy": __import__("numpy").__version__, "no-such-package-tfprune": "not installed"}


def test_id_changes_with_the_cpu_and_the_packages():
    env = environment.environment()
    same = json.loads(json.dumps(env))
    assert environment.environment_id(env) == environment.environment_id(same) != "-"
    other_cpu = dict(env, cpu_flags_sha1="000000000000")
    other_numpy = dict(env, packages=dict(env["packages"], numpy="0.0"))
    ids = {environment.environment_id(e) for e in (env, other_cpu, other_numpy)}
    assert len(ids) == 3
    assert environment.environment_id(None) == "-"  # a summary from before environments were recorded


def test_the_commit_of_a_checkout_flags_changed_code_but_not_its_docs(tmp_path):
    """A study writes its tables into docs/ while it runs; those outputs are not the code that made them."""
    import subprocess

    from tfprune.infra.environment import source_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "table.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "init", "--allow-empty")
    git("add", "."), git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "files")
    clean = source_commit(str(tmp_path))
    assert clean and "+" not in clean
    (tmp_path / "docs" / "table.md").write_text("new\n")
    assert source_commit(str(tmp_path)) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert source_commit(str(tmp_path)) == clean + "+changes"
