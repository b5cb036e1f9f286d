"""Does the CPU's instruction set reach a deterministic run's numbers?

A run with ``run.deterministic = True`` repeats itself byte for byte on one machine, yet the same code,
config and locked packages gave other numbers in another session (CHANGELOG.md, "Reproducibility and determinism"). This runs the
short deterministic smoke run (`configs/smoke_deterministic.gin`, the run `tests/test_determinism.py`
repeats) ``--repeats`` times under each oneDNN instruction-set cap (``ONEDNN_MAX_CPU_ISA``, e.g. AVX2 = a
CPU without AVX-512) and with oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``), each in its own process, and prints the accuracies:
equal rows within one setting = repeatable there; different rows between settings = the machine's
instruction set changes the numbers.

    python docs/diagnostics/cpu_isa.py --isas default,AVX2,AVX512_CORE,onednn_off --repeats 2

About 40 s per run on 2 cores.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = ("val_accuracy_full_model", "val_accuracy_masked_before_finetune", "val_accuracy_pruned")


def run_env(isa):
    """The environment of one setting: ``default``, ``onednn_off`` or a ``ONEDNN_MAX_CPU_ISA`` value."""
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")}
    if isa == "onednn_off":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    elif isa != "default":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    return env


def smoke_run(isa):
    """(accuracies, masks) of one smoke run in a fresh process under ``isa``."""
    with tempfile.TemporaryDirectory() as workdir:
        command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config",
                   os.path.join(ROOT, "configs", "smoke_deterministic.gin"), "--workdir", workdir]
        result = subprocess.run(command, env=run_env(isa), capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            raise SystemExit(f"{isa}: the run failed:\n{result.stderr[-2000:]}")
        with open(os.path.join(workdir, "summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(workdir, "masks.json")) as f:
            masks = json.load(f)
    return [summary[k] for k in KEYS], masks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isas", default="default,AVX2,AVX512_CORE,onednn_off")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    print("| setting | run | " + " | ".join(KEYS) + " | masks as the first run's |")
    print("|---|---|" + "---|" * (len(KEYS) + 1))
    first_masks = None
    for isa in args.isas.split(","):
        for repeat in range(args.repeats):
            accuracies, masks = smoke_run(isa)
            first_masks = first_masks or masks
            print(f"| {isa} | {repeat + 1} | " + " | ".join(f"{100 * a:.2f}" for a in accuracies)
                  + f" | {'yes' if masks == first_masks else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
