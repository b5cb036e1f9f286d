"""One job per workdir: the lock file names the running job; a second job stops, a dead job's lock is
taken over with a warning, only the chief of a multi-worker job holds it."""

import json
import os
import socket
import subprocess
import sys

import gin
import pytest

from tfprune.infra import workdir as files
from tfprune.cli.commands import train_main
from tfprune.infra.run_lock import WorkdirBusy, WorkdirLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.gin")


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _not_called(*args, **kwargs):
    raise AssertionError("called")


def _write_owner(path, **owner):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"since": "2026-01-01 00:00:00 UTC", **owner}, f)


def test_lock_names_its_owner_and_a_second_lock_is_refused(tmp_path):
    path = tmp_path / files.LOCK
    with WorkdirLock(path):
        owner = json.loads(path.read_text())
        assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid() and owner["since"]
        with pytest.raises(WorkdirBusy) as busy:
            WorkdirLock(path).acquire()
        message = str(busy.value)
        assert f"host {socket.gethostname()}, pid {os.getpid()}, running since {owner['since']}" in message
        assert str(path) in message and "--workdir" in message and "\n" not in message
    assert not path.exists()  # released: deleted
    WorkdirLock(path).acquire()  # and free again


def test_lock_of_a_dead_job_on_this_host_is_taken_over_with_a_warning(tmp_path, capsys):
    path = tmp_path / files.LOCK
    dead = _dead_pid()
    _write_owner(str(path), host=socket.gethostname(), pid=dead)
    lock = WorkdirLock(path)
    lock.acquire()
    err = capsys.readouterr().err
    assert "warning: taking over the stale lock" in err and f"pid {dead}" in err and "no longer running" in err
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_written_on_another_host_is_not_taken_over(tmp_path):
    path = tmp_path / files.LOCK
    _write_owner(str(path), host="some-other-host", pid=1234)
    with pytest.raises(WorkdirBusy, match="host some-other-host, pid 1234.*delete the lock file"):
        WorkdirLock(path).acquire()
    assert json.loads(path.read_text())["host"] == "some-other-host"  # left as it was


@pytest.mark.slow
def test_a_job_in_another_process_holds_the_lock_until_it_is_killed(tmp_path, capsys, monkeypatch):
    from tfprune.training import trainer

    path = tmp_path / files.LOCK
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tfprune.infra.run_lock import WorkdirLock; "
         "WorkdirLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)", str(path)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert holder.stdout.readline().strip() == "locked"
        for attempt in (WorkdirLock(path).check, WorkdirLock(path).acquire):  # the early look and the lock
            with pytest.raises(WorkdirBusy, match=f"pid {holder.pid}, running since"):
                attempt()
        monkeypatch.setattr(trainer, "build_datasets", _not_called)  # the second job stops before its set-up
        gin.clear_config()
        assert train_main(["--config", SMOKE, "--workdir", str(tmp_path)]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        monkeypatch.undo()
    finally:
        gin.clear_config()
        holder.kill()  # SIGKILL: no clean-up, the lock file stays behind
        holder.wait()
    assert json.loads(path.read_text())["pid"] == holder.pid
    WorkdirLock(path).check()  # a dead job's lock does not stop anyone
    with WorkdirLock(path):
        assert f"pid {holder.pid}" in capsys.readouterr().err


def test_a_live_process_that_does_not_hold_the_lock_does_not_make_it_busy(tmp_path):
    path = tmp_path / files.LOCK
    _write_owner(str(path), host=socket.gethostname(), pid=os.getppid())  # alive, but holds no flock
    WorkdirLock(path).check()
    with WorkdirLock(path):
        pass


def test_workdir_releases_the_lock_on_an_exception_and_only_the_chief_holds_it(tmp_path):
    root = str(tmp_path / "run")
    with pytest.raises(RuntimeError, match="boom"):
        with files.Workdir(root):
            assert os.path.exists(os.path.join(root, files.LOCK))
            raise RuntimeError("boom")
    assert not os.path.exists(os.path.join(root, files.LOCK))
    with files.Workdir(root) as chief:
        with files.Workdir(root, is_chief=False, role="worker_1") as worker:  # no lock: no WorkdirBusy
            assert worker.lock is None and chief.lock is not None
    assert not os.path.exists(os.path.join(root, files.LOCK))


def test_second_job_on_a_workdir_stops_with_one_line_and_exit_status_2(tmp_path, capsys):
    gin.clear_config()
    workdir = tmp_path / "run"
    try:
        with WorkdirLock(workdir / files.LOCK):  # the "running job" (this process, another open file)
            code = train_main(["--config", SMOKE, "--workdir", str(workdir)])
        err = capsys.readouterr().err.strip().splitlines()
    finally:
        gin.clear_config()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: The workdir") and f"pid {os.getpid()}" in err[0]
    assert sorted(os.listdir(workdir)) == []  # the lock is gone and nothing else was written
