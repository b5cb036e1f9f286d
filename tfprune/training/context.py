"""`RunContext`: what every phase of one run shares (strategy, run directory, data, log)."""

import dataclasses

import tensorflow as tf

from tfprune.infra import workdir as files
from tfprune.training.run_log import RunLog


@dataclasses.dataclass
class RunContext:
    """What every phase of one run shares."""

    strategy: tf.distribute.Strategy
    run_dir: files.Workdir
    data: object  # tfprune.data.Datasets
    log: RunLog
