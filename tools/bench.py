#!/usr/bin/env python
"""Speed benchmarks of tfprune's overheads; every ratio is measured within one process run.

    python tools/bench.py --json bench.json                  # all four, ResNet-56 on 32x32 inputs
    python tools/bench.py --only gating,tflite --model resnet20 --batch_size 32

1. gating: training-step time of the gated zoo model vs the same architecture without gates
   (`tfprune.structure.surgery.compact_model(model)` with all-ones masks: same weights, no ChannelGate), and of
   the gated model with the alignment penalty on (what the joint phase trains). Target <= 1.15x.
   Variants are timed in interleaved rounds; the median per-step time of each is reported.
2. agent: one `JointPruner.agent_step` (default num_samples / dynamics_steps unless given, held-out
   set of --held_out images) vs one CIFAR-10 epoch = ceil(50,000 / batch) training steps at the
   measured gated+alignment step time. Target <= 5% of the epoch. The first agent step (tracing)
   is reported separately and excluded.
3. tflite: TFLite float latency (batch 1, --threads threads) of the full model (gate-free) vs a
   compact model at --target_flops (uniform ratios projected onto the budget), beside the FLOPs ratio.
4. data: input-pipeline throughput (images/s of `build_datasets(...).train`, several epochs, first
   batch excluded) for the synthetic and digits sources vs the training step's images/s.
5. channels (on request, `--only channels`): LiteRT latency of a 3x3 conv, a 1x1 conv and a depthwise
   conv at channel counts 8k-7 .. 8k+7 vs 8k (`tfprune.studies.channel_bench`), 1 thread, interleaved.
6. rounding (on request): ResNet-56 and MobileNetV2 (CIFAR) full vs their 50%-FLOPs sub-network at each
   `--round_to` (default 1,8,16): FLOPs, params, file size, LiteRT latency at each of `--thread_counts`.
7. latency (on request): ResNet-56 (32x32), MobileNetV2 (32x32, 224x224) full vs sub-networks at
   --target_flops of the FLOPs and of the predicted latency (`tfprune.cost.latency`), at each `--round_to`:
   measured and predicted LiteRT latency at each of `--thread_counts`, FLOPs, params, file size.

Prints a table and writes --json. Timings share the machine with whatever else runs: compare ratios,
not absolute numbers, across machines.

The benches are `tfprune.studies.bench` (``bench_gating(...)``, ``run_benchmarks(...)``, ... from Python); this
file only calls its `main`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfprune.studies.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
