"""Safe writes: every file a run keeps is written under a temporary name in its folder, then renamed.

A kill, a full disk or a quota in the middle of a write must never leave a half-written `summary.json`,
pruner state or `.keras` model where the next resume (or a user) reads it: `os.replace` within one
folder is atomic, so readers see the old file or the new one, nothing in between. A write that fails
removes its temporary file, leaves the previous file as it was and raises `WriteError`, which names the
path and the cause (a `TfpruneError`: one line on the command line, exit status 2).
"""

import contextlib
import errno
import glob
import json
import os
import shutil

from tfprune.errors import TfpruneError


class WriteError(TfpruneError, OSError):
    """A file of the run could not be written (disk full, quota, permissions); the previous one is kept."""


def write_error(path, cause):
    """The `WriteError` for `path`, naming the cause (errno name and text when it is an OSError)."""
    code = getattr(cause, "errno", None)
    reason = f"{errno.errorcode.get(code, code)}: {cause.strerror}" if code and getattr(cause, "strerror", None) \
        else f"{type(cause).__name__}: {cause}"
    return WriteError(f"Could not write {path} ({reason}); the previous version, if any, is unchanged. Free disk "
                      "space (or fix the quota or permissions) and rerun the same command (training resumes where it "
                      "stopped).")


def temporary_path(path):
    """A hidden name beside `path` that keeps its extension (Keras insists on `.keras`)."""
    folder, name = os.path.split(os.fspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.tmp-{os.getpid()}{ext}")


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path to write; on success renames it onto `path`, on failure removes it and
    raises `WriteError` (the previous `path` is left alone)."""
    path = os.fspath(path)
    tmp = temporary_path(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        yield tmp
        _replace(tmp, path)
    except WriteError:
        _remove(tmp)
        raise
    except OSError as e:
        _remove(tmp)
        raise write_error(path, e) from e
    except BaseException:
        _remove(tmp)
        raise


def _replace(tmp, path):
    """`os.replace` for files; a directory (a SavedModel) is swapped in by two renames, the old one
    deleted only once the new one is in place."""
    if os.path.isdir(tmp) and os.path.isdir(path):
        old = f"{tmp}.old"
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _remove(tmp):
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.lexists(tmp):
        os.remove(tmp)


def remove_leftovers(folder, patterns=(".*.tmp-*",), depth=1):
    """Deletes what killed writers left in `folder` and its sub-folders (`depth` levels): our temporary
    files and folders (`.<name>.tmp-<pid>...`) and whatever else `patterns` names. Only for the holder
    of the workdir's lock: nobody else may be writing there."""
    for level in range(depth):
        for name in patterns:
            for path in glob.glob(os.path.join(glob.escape(os.fspath(folder)), *["*"] * level, name)):
                _remove(path)


def write_text(path, text, mode="w"):
    """Writes `text` (str, or bytes with mode="wb") to `path` safely."""
    with replacing(path) as tmp:
        with open(tmp, mode) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible


def write_json(path, data, indent=1):
    """`data` as JSON in `path`, safely."""
    write_text(path, json.dumps(data, indent=indent))


def save_keras_model(model, path):
    """`model.save(path)` (a `.keras` file), safely."""
    with replacing(path) as tmp:
        model.save(tmp)
