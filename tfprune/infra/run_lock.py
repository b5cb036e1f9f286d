"""One job per workdir: a lock file naming the job that owns the run directory.

Two jobs on one workdir (a second terminal, a scheduler retrying while the first still runs) would both
write checkpoints and results, each overwriting the other's. The owner holds an exclusive `flock` on
the lock file for as long as it runs and writes its host, pid and start time into it, so a second job
can say which job is running. The kernel drops the `flock` when the owner dies, however it dies
(SIGKILL included): a lock file left behind by a dead job on this host is stale and is taken over with
a warning. A lock written on another host is never taken over (its job cannot be checked from here,
and `flock` may not reach across a network file system): the message says to delete it if that job is
gone.
"""

import datetime
import errno
import json
import os
import socket
import sys

from tfprune.errors import TfpruneError

try:
    import fcntl
except ImportError:  # not a POSIX system: the owner record alone decides
    fcntl = None


class WorkdirBusy(TfpruneError, RuntimeError):
    """Another job owns the workdir."""


def _this_job():
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join(sys.argv)[:300]}


def _alive(pid):
    """Whether process `pid` exists on this host."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read_owner(fd):
    """The JSON owner record in the open lock file, or {} when it is empty or unreadable."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        owner = json.loads(os.read(fd, 65536).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _lockable(fd):
    """Whether nobody holds an exclusive flock on `fd`'s file (False where flock is unavailable: the
    owner record decides). Only tried when the record names a live process, so it rarely runs."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # held (BlockingIOError), or no flock here
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


class WorkdirLock:
    """The lock file `path`: `acquire()` or raise `WorkdirBusy`; `release()` deletes it. Also a context
    manager. Only the job's chief takes it (`tfprune.infra.workdir.Workdir` decides)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def check(self):
        """Raises `WorkdirBusy` if a job holds the lock now, writing nothing: an early look, so that a
        second job stops before its (possibly long) set-up; `acquire` decides."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            owner = _read_owner(fd)
            if owner.get("host", socket.gethostname()) != socket.gethostname():
                raise self._busy(owner, " If that job is no longer running, delete the lock file.")
            if owner.get("pid") not in (None, os.getpid()) and _alive(owner["pid"]) and not _lockable(fd):
                raise self._busy(owner)
        finally:
            os.close(fd)

    def acquire(self):
        """Takes the lock, taking over a stale one with a warning; `WorkdirBusy` when a job holds it."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if self._locked_current_file(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the owner released (deleted) the file between our open and our flock: retry
        try:
            self._check_owner(_read_owner(fd))
            self._write_owner(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _locked_current_file(self, fd):
        """flock `fd`; True when it is still the file at `self.path` (a releasing owner deletes it)."""
        try:
            if fcntl is None:
                raise OSError(errno.ENOSYS, "no fcntl")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._busy(_read_owner(fd)) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            owner = _read_owner(fd)  # no flock on this file system: a live owner on this host holds it
            if owner.get("host") == socket.gethostname() and owner.get("pid") != os.getpid() \
                    and _alive(owner.get("pid", -1)):
                raise self._busy(owner) from None
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def _check_owner(self, owner):
        """`WorkdirBusy` if the record in the file we could flock was written on another host (whose job
        cannot be checked from here); else a warning when it is another job's, which we take over."""
        if not owner or owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            return
        if owner.get("host") != socket.gethostname():
            raise self._busy(owner, " If that job is no longer running, delete the lock file.")
        state = "is no longer running" if not _alive(owner.get("pid", -1)) else "no longer holds it (pid reused)"
        print(f"warning: taking over the stale lock {self.path} of the job on {owner.get('host')} (pid "
              f"{owner.get('pid')}, since {owner.get('since')}), which {state}.", file=sys.stderr, flush=True)

    def _write_owner(self, fd):
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(_this_job()).encode())
        os.fsync(fd)

    def _busy(self, owner, hint=""):
        return WorkdirBusy(
            f"The workdir {os.path.dirname(os.path.abspath(self.path))} is in use by the job on host "
            f"{owner.get('host', '?')}, pid {owner.get('pid', '?')}, running since {owner.get('since', '?')} "
            f"(lock file {self.path}). Wait for it to finish or stop it, or use another --workdir.{hint}")

    def release(self):
        """Deletes the lock file and drops the lock (deleting first: a job that opens the file meanwhile
        sees it gone and retries)."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None
