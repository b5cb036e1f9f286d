"""`finetune`: the physical cut of the selected sub-network and the fine-tuning of the compact model."""

import time

import tensorflow as tf

from tfprune.infra import workdir as files
from tfprune.structure.surgery import compact_model
from tfprune.training.weight_trainer import WeightTrainer, make_optimizer


def finetune(ctx, selected, finetune_epochs, learning_rate, first_data_epoch=0):
    """Physically prunes the gated model and fine-tunes the compact model (resumable); returns the
    compact model, its accuracy {"val": on the validation split, "held_out": on the held-out
    training images} and the phase's wall seconds (the cut and every fine-tuning epoch, resumed ones
    included). The held-out one is what settings may be chosen on: it sees the whole pipeline
    (search, alignment, cut, fine-tuning) yet never the validation split. Fine-tuning epoch e reads
    the data of epoch `first_data_epoch + e` (`Datasets.train_epoch`), after the joint phase's."""
    t0 = time.time()
    with ctx.strategy.scope():
        compact = compact_model(selected.gated_model, selected.masks)
    return train_compact(ctx, compact, finetune_epochs, learning_rate, first_data_epoch, started=t0)


def train_compact(ctx, compact, epochs, learning_rate=None, first_data_epoch=0, started=None, label="finetune"):
    """Trains a compact model for ``epochs`` from the fine-tuning checkpoints on (resumable); returns it,
    its accuracy (as `finetune`) and the wall seconds since ``started`` (default now) plus those of the
    epochs trained before a resume. ``learning_rate`` None: `make_optimizer`'s own (the joint phase's)."""
    data, run_dir = ctx.data, ctx.run_dir
    t0 = time.time() if started is None else started
    with ctx.strategy.scope():
        rate = {} if learning_rate is None else {"learning_rate": learning_rate}
        optimizer = make_optimizer(total_steps=max(1, epochs * data.steps_per_epoch), **rate)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="finetune_epoch")
        seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="finetune_seconds")
    trainer = WeightTrainer(ctx.strategy, compact, optimizer, data.batch_size)
    items = dict(model=compact, optimizer=optimizer, epoch=epoch)
    checkpoint = tf.train.Checkpoint(**items, seconds=seconds)
    manager = run_dir.checkpoint_manager(files.FINETUNE_CHECKPOINTS, checkpoint)
    # the seconds were added to the format later: a checkpoint written before them still resumes
    run_dir.restore(files.FINETUNE_CHECKPOINTS, checkpoint, required=tf.train.Checkpoint(**items))
    for e in range(int(epoch.numpy()), epochs):
        stats = trainer.train_epoch(data.train_epoch(first_data_epoch + e), data.steps_per_epoch,
                                    f"{label} {e + 1}/{epochs}")
        ctx.log.finetune_epoch(e, epochs, stats, trainer.evaluate(data.val), label)
        epoch.assign(e + 1)
        seconds.assign_add(time.time() - t0)
        t0 = time.time()
        manager.save()
    accuracy = {"val": trainer.evaluate(data.val), "held_out": trainer.evaluate(data.held_out)}
    return compact, accuracy, float(seconds.numpy()) + time.time() - t0
