"""Kill-anywhere check: a run SIGKILLed at random moments and resumed must end where an uninterrupted
run of the same command ends (same `masks.json`, same metrics in `summary.json`).

`chaos_check` first runs the command once without interruption: the reference, whose progress lines
("workdir: ..." at the end of start-up, "epoch i/n", "Selected sub-network", "finetune i/n") it
timestamps as milestones, cutting its timeline into segments (start-up, each epoch with its agent
step, selection, each fine-tuning epoch, export). It then starts the command again in a second
workdir and kills it with SIGKILL `kills` times (each restart resumes from the workdir), then lets it
finish and compares the two workdirs. Each kill aims at a random point of the reference timeline (one
in the last segment, the others uniform before it: see `kill_points`), at fraction f of its segment;
the attempt is killed after the same fraction (x `SAFETY`) of the segment it is in, measured from the
moment it prints that segment's opening milestone. A restart prints no line for the phases its
checkpoint already holds: once its start-up is over it is taken to be in the segment where the
previous attempt was killed (it redoes that one), or in a later one when it prints a later milestone.
A point in a segment the run has already passed is moved to the segment the restart is in, and a
restart past the point's segment is killed in its own. Kills thus fall in every phase whatever the
machine's speed or the work a restart redoes, and an attempt does not finish before its kill.

A SIGKILL is the harshest stop there is: no `finally`, no
flush, no atexit; whatever survives it is what a preempted machine leaves behind.

Command line: `tfprune chaos` (`tools/chaos.py`); CI: the slow test `tests/test_chaos.py`.
"""

import argparse
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import time

import numpy as np

from tfprune.infra import workdir as files
from tfprune.studies.runs import train_command

# Lines that mark progress (the run header's last line, then tfprune's per-phase lines).
MILESTONES = ("workdir: ", "epoch ", "Selected sub-network:", "finetune ")
# Kill after this share of the aimed-at fraction of a segment, so that an attempt a little faster than
# the reference is still killed inside it; the last segment (evaluation, export) can be shorter in a
# restart than in the reference, so it gets less.
SAFETY, LAST_SEGMENT_SAFETY = 0.9, 0.5


# summary.json entries compared exactly (masks.json always is); what changes between two identical
# runs (paths, wall times, measured latency) is left out.
COMPARED_METRICS = ("flops_ratio", "flops_pruned", "params_pruned", "val_accuracy_full_model",
                    "val_accuracy_masked_before_finetune", "val_accuracy_pruned", "kept_channels")


@dataclasses.dataclass
class Kill:
    """One SIGKILL: in which segment (the milestone that opened it, or "start-up"), how many seconds
    into it, and the attempt's last output line."""

    segment: str
    after_seconds: float
    last_line: str


@dataclasses.dataclass
class ChaosReport:
    kills: list
    reference_seconds: float
    identical_masks: bool
    metric_differences: dict  # name -> (reference, after kills), only the ones that differ

    @property
    def identical(self):
        return self.identical_masks and not self.metric_differences

    def as_dict(self):
        return {"kills": [dataclasses.asdict(k) for k in self.kills], "reference_seconds": self.reference_seconds,
                "identical_masks": self.identical_masks, "metric_differences": self.metric_differences,
                "identical": self.identical}


def chaos_check(command, root, kills=10, seed=0, log=print):
    """Runs `command(workdir) -> argv` uninterrupted in root/reference and with `kills` random SIGKILLs
    in root/killed; returns a `ChaosReport`. Each workdir must not exist yet (a finished run is not
    trained again, so a leftover would prove nothing)."""
    reference, killed = os.path.join(root, "reference"), os.path.join(root, "killed")
    for path in (reference, killed):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists: chaos_check needs fresh workdirs (remove it or pick another root).")
    os.makedirs(root, exist_ok=True)
    seconds, milestones = _run_timed(command(reference), os.path.join(root, "reference.log"))
    log(f"reference run: {seconds:.0f} s to its last output line, {len(milestones)} milestones")
    starts = np.array([0.0] + [at for at, _ in milestones])  # segment i starts at starts[i] ...
    ends = np.append(starts[1:], seconds)  # ... and ends at ends[i]; segment 0 is the start-up
    keys = [key for _, key in milestones]
    safety = np.append(np.full(len(keys), SAFETY), LAST_SEGMENT_SAFETY)
    done, resumes_in = [], 0  # the segment a restart begins in: where the last kill landed
    for i, point in enumerate(kill_points(starts[-1], seconds, kills, seed)):
        segment = int(np.searchsorted(starts, point, side="right")) - 1
        fraction = (point - starts[segment]) / max(ends[segment] - starts[segment], 1e-9)
        kill, resumes_in = _run_and_kill(command(killed), os.path.join(root, f"killed-{i}.log"), keys,
                                         segment, fraction * safety * (ends - starts), resumes_in)
        if kill is None:
            log(f"kill {i + 1}/{kills}: the run finished first; no more kills")
            break
        done.append(kill)
        log(f"kill {i + 1}/{kills} (aimed at {point:.0f} s of the reference run): {kill.after_seconds:.1f} s after "
            f"'{kill.segment}'; last line: {kill.last_line[:80]}")
    _run_timed(command(killed), os.path.join(root, "killed-final.log"))  # to the end, whatever it prints
    identical_masks, differences = compare_workdirs(reference, killed)
    return ChaosReport(done, seconds, identical_masks, differences)


def kill_points(last_segment_start, seconds, kills, seed):
    """`kills` sorted points of the reference timeline [0, seconds): the last one in the last segment
    (evaluation and export), the others uniform before it. Only one kill aims there: a restart after a
    kill in the export keeps what was written and has less left to do than the reference, so a second
    kill aimed there could find the run finished (CI saw 9 of 12 land when four points fell there)."""
    rng = np.random.default_rng(seed)
    earlier = rng.uniform(0.0, last_segment_start, kills - 1) if kills > 1 else np.zeros(0)
    last = rng.uniform(last_segment_start, seconds, 1) if kills > 0 else np.zeros(0)
    return np.concatenate([np.sort(earlier), last])


def compare_workdirs(reference, other):
    """(masks identical?, {what: (reference, other)} of what differs): the summary metrics, and the
    first agent step of history.json whose record differs (rewards, losses, kept channels)."""
    masks = [_read_json(os.path.join(d, files.MASKS)) for d in (reference, other)]
    summaries = [_read_json(os.path.join(d, files.SUMMARY)) for d in (reference, other)]
    differences = {name: (summaries[0].get(name), summaries[1].get(name)) for name in COMPARED_METRICS
                   if summaries[0].get(name) != summaries[1].get(name)}
    histories = [_read_json(os.path.join(d, files.HISTORY)) for d in (reference, other)]
    for step, (a, b) in enumerate(itertools.zip_longest(*histories)):
        if a != b:
            differences[f"history[{step}]"] = (a, b)
            break
    return masks[0] == masks[1], differences


def _read_json(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: the run did not finish (see the .log files beside it).")
    with open(path) as f:
        return json.load(f)


def _run_timed(argv, log_path):
    """Runs argv to the end -> (seconds until its last output, [(seconds, key)] of its milestones as
    they appeared). The interpreter's shutdown after the last line is no phase worth a kill."""
    start, seen, size, last_output = time.time(), [], 0, 0.0
    with open(log_path, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            if os.path.getsize(log_path) != size:
                size, last_output = os.path.getsize(log_path), time.time() - start
                seen += [(last_output, key) for key in _milestones(log_path)[len(seen):]]
            time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with status {process.returncode}; its output is in {log_path}.")
    return last_output, seen


def _milestones(path):
    """The milestone lines of a log so far, each by its key: the text before the first colon
    ("epoch 3/4", "workdir", "Selected sub-network"), the same in a fresh and a resumed run."""
    with open(path, errors="replace") as f:
        lines = f.read().replace("\r", "\n").splitlines()
    return [line.strip().split(":")[0] for line in lines if line.strip().startswith(MILESTONES)]


def _run_and_kill(argv, log_path, keys, segment, delays, resumes_in):
    """Starts argv; once it is in segment >= `segment`, SIGKILLs it delays[its segment] seconds after
    that segment began -> (`Kill`, the segment it landed in), or (None, resumes_in) if it finished
    first. Its segment is the last milestone it printed (keys[k - 1] opens segment k) or, once its
    start-up is over, `resumes_in`, the segment its checkpoint resumes: a restart prints nothing for
    the phases it skips, so without this a kill aimed there would wait for a line that never comes
    (CI: a restart after fine-tuning exported and finished under a kill aimed at fine-tuning)."""
    # Where the attempt is at least once its start-up is over. A restart after fine-tuning prints
    # nothing before it exports: for a kill aimed at the last segment, the end of its start-up opens it.
    after_start_up = max(resumes_in, segment if segment == len(keys) else 0)
    with open(log_path, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        start = time.time()
        current = 0
        while process.poll() is None:
            printed = set(_milestones(log_path))
            reached = max([k + 1 for k, key in enumerate(keys) if key in printed], default=0)
            now_in = max(reached, after_start_up) if reached else 0
            if now_in != current:
                current, start = now_in, time.time()  # a new segment begins now
            if current >= segment and time.time() - start >= delays[current]:
                os.killpg(process.pid, signal.SIGKILL)  # the whole group: no child survives to write on
                process.wait()
                return Kill(keys[current - 1] if current else "start-up", time.time() - start,
                            _last_line(log_path)), current
            time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with status {process.returncode}; see {log_path}.")
    return None, resumes_in


def _last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f.read().replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output yet: starting)"


def chaos_command(configs, bindings):
    """`command(workdir) -> argv` of a deterministic `tfprune train` run in a fresh interpreter
    (`tfprune.studies.runs.train_command` with ``run.deterministic = True`` first)."""
    return lambda workdir: train_command(workdir, configs, ["run.deterministic = True", *bindings])


def main(argv=None):
    """`tfprune chaos`: exit status 0 only when the killed run ends identical to the uninterrupted one."""
    parser = argparse.ArgumentParser(prog="tfprune chaos", description=(
        "Kill-anywhere check: a deterministic run SIGKILLed N times at random moments and resumed must end "
        "with the same masks.json, summary metrics and history.json as an uninterrupted run."))
    parser.add_argument("--config", action="append", required=True,
                        help="gin config, path or shipped name (repeatable)")
    parser.add_argument("--gin_bindings", action="append", default=[], help="extra binding (repeatable)")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--root", required=True, help="a new folder for both workdirs, the logs and the report")
    args = parser.parse_args(argv)
    report = chaos_check(chaos_command(args.config, args.gin_bindings), args.root, kills=args.kills, seed=args.seed)
    with open(os.path.join(args.root, "chaos_report.json"), "w") as f:
        json.dump(report.as_dict(), f, indent=2)
    verdict = "IDENTICAL" if report.identical else (
        f"DIFFERENT: masks identical {report.identical_masks}, differences {report.metric_differences}")
    print(f"{len(report.kills)} SIGKILLs survived; final result vs uninterrupted run: {verdict}")
    return 0 if report.identical else 1
