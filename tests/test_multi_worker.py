"""Two local worker processes under MultiWorkerMirroredStrategy (TF_CONFIG on 127.0.0.1)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "run.epochs = 3", "run.warmup_epochs = 1", "run.finetune_epochs = 1", 'run.export_quantizations = ("float",)',
    "build_datasets.held_out_examples = 128", "JointPruner.num_samples = 4", "JointPruner.dynamics_steps = 5",
]


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_agree_on_the_mask_and_finish(tmp_path):
    workdir = str(tmp_path / "run")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
               os.path.join(ROOT, "configs", "smoke.gin"), "--workdir", workdir]
    for binding in TINY:
        command += ["--gin_bindings", binding]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for process, log in processes:
        try:
            process.wait(timeout=600)
        finally:
            process.kill()
            log.close()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    for (process, _), text in zip(processes, logs):
        assert process.returncode == 0, text[-3000:]
    chief_masks = json.load(open(os.path.join(workdir, "masks.json")))
    worker_masks = json.load(open(os.path.join(workdir, ".worker_1", "masks.json")))
    assert chief_masks == worker_masks
    summary = json.load(open(os.path.join(workdir, "summary.json")))  # written by the chief only
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02
    assert not os.path.exists(os.path.join(workdir, ".worker_1", "summary.json"))
    assert np.isfinite(summary["val_accuracy_pruned"])
