"""What a run or a benchmark was measured on: the CPU and the versions of the numeric stack.

Why: a deterministic run (``run.deterministic``) repeats itself byte for byte on one machine, not
necessarily on another. On 2026-12-05 the same code and config, in an install whose ``pip freeze``
equals ``requirements/lock.txt``, gave global_magnitude seed 3 on MobileNetV2 82.66% against 83.74% two
days earlier (CHANGELOG.md, earlier studies); the Python packages were the same, so the CPU (whose instruction
sets pick oneDNN's and XNNPACK's kernels, and so the rounding of every sum) is the suspect. With
`environment()` in each summary.json a reader can tell a code change from a machine change, and compare
runs only where the entries agree.
"""

import hashlib
import importlib.metadata
import json
import os
import platform

# the packages whose arithmetic or defaults reach a run's numbers
PACKAGES = ("tensorflow", "keras", "numpy", "tf-agents", "tensorflow-probability", "ai-edge-litert", "scipy")
# instruction sets that change which float kernels oneDNN / XNNPACK run
KERNEL_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def _cpuinfo(names):
    """{name: the first ``name : value`` of `/proc/cpuinfo`} for each of ``names`` found (Linux; empty
    elsewhere). One read of the file for all of them."""
    found = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in names and key not in found:
                    found[key] = value.strip()
                    if len(found) == len(names):
                        break
    except OSError:
        pass
    return found


def cpu_model(cpuinfo=None):
    """The CPU's model name (`/proc/cpuinfo`, or ``cpuinfo`` already read from it), or
    `platform.processor()` where there is none."""
    cpuinfo = _cpuinfo(("model name",)) if cpuinfo is None else cpuinfo
    return cpuinfo.get("model name") or platform.processor() or platform.machine()


def cpu_flags(cpuinfo=None):
    """The CPU's feature flags (`/proc/cpuinfo`), sorted; empty where the file does not exist."""
    cpuinfo = _cpuinfo(("flags",)) if cpuinfo is None else cpuinfo
    return sorted(set(cpuinfo.get("flags", "").split()))


def package_versions(packages=PACKAGES):
    """{distribution: version, or "not installed"}."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment():
    """{python, platform, cpu, cpu_count, cpu_kernel_features, cpu_flags_sha1, packages}: JSON-ready.
    Two CPUs with one model name can still differ in their flags (a VM may hide some): the flags' digest
    tells them apart, the kernel features say which differences matter."""
    cpuinfo = _cpuinfo(("model name", "flags"))
    flags = cpu_flags(cpuinfo)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(cpuinfo),
        "cpu_count": os.cpu_count(),
        "cpu_kernel_features": [f for f in KERNEL_FEATURES if f in flags],
        "cpu_flags_sha1": hashlib.sha1(" ".join(flags).encode()).hexdigest()[:12] if flags else None,
        "packages": package_versions(),
    }


def environment_id(env):
    """A short digest of an `environment()` dict: runs with equal ids ran on the same kind of machine and
    stack (`tools/compare.py` shows it per run and says when one table mixes several)."""
    if not env:
        return "-"
    return hashlib.sha1(json.dumps(env, sort_keys=True).encode()).hexdigest()[:8]


def source_commit(path=None):
    """The git commit of the checkout at ``path`` (default: this process's directory), with "+changes"
    when its tracked files outside docs/ differ from it; None outside a git checkout. Results pages state
    it beside the command, so that a table names the code that made it (docs/ is left out: a study writes
    its own tables there, which are not the code)."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+changes" if dirty else "")
