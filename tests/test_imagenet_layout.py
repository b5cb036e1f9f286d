"""The design card's headline command, `python tools/train.py --config imagenet_resnet50.gin`, end to end
on data laid out exactly as ImageNet's manual download: TFDS prepares `imagenet2012` from the two tars,
and the run trains, prunes, fine-tunes, exports and, killed after its first checkpoint, resumes.

The tars hold a few small JPEGs; the bindings shrink sizes (images, widths, epochs, batches, episodes)
and export the float TFLite model alone: the shipped config, the TFDS builder, the JPEG decoding and the
inception crops all run as they do on the real 150 GB download.
"""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_TAR, VAL_TAR = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
# Each binding shrinks the run. The float TFLite file alone: dynamic and int8 add ~40 s of conversion and
# calibration on a 2-core CPU, and tests/test_export.py checks them.
TINY = [
    "build_datasets.image_size = 32",
    "build_datasets.batch_size = 16",
    "build_datasets.eval_batch_size = 16",
    "build_datasets.held_out_examples = 16",
    "run.width_multiplier = 0.25",
    "run.epochs = 2",
    "run.warmup_epochs = 1",
    "run.finetune_epochs = 1",
    'run.export_quantizations = ("float",)',
    "make_optimizer.warmup_steps = 2",
    "JointPruner.num_samples = 4",
    "JointPruner.dynamics_steps = 5",
    "JointPruner.episode_images = 8",
    "JointPruner.finalists = 2",
]


def _jpeg(seed):
    """A small noise JPEG of one of three shapes: ImageNet's photos are not square, and the crops
    (random resized crop, resize-shorter-side + center crop) must handle any aspect."""
    rng = np.random.default_rng(seed)
    height, width = (40, 56, 48)[seed % 3], 48
    return tf.io.encode_jpeg(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).numpy()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_fake_imagenet(root, num_val=4, per_synset=16):
    """`root`/ILSVRC2012_img_val.tar (`ILSVRC2012_val_<8 digits>.JPEG`) and `root`/ILSVRC2012_img_train.tar
    (one `<synset>.tar` of `<synset>_<n>.JPEG` per synset), TFDS's manual-download layout. Returns the
    synsets.

    TFDS labels the val images by zipping the tar's *sorted* member names with the lines of its bundled
    `validation_labels.txt`; the names run from 00000001 so each image gets its label in the real
    download. The training synsets are those labels (asked of TFDS's own function), so validation
    scores classes that were trained.
    """
    from tensorflow_datasets.datasets.imagenet2012 import imagenet_common

    os.makedirs(root, exist_ok=True)
    with tarfile.open(os.path.join(root, VAL_TAR), "w") as val:
        for n in range(1, num_val + 1):
            _add(val, f"ILSVRC2012_val_{n:08d}.JPEG", _jpeg(10_000 + n))
    synsets = sorted(set(imagenet_common.get_validation_labels(os.path.join(root, VAL_TAR)).values()))
    with tarfile.open(os.path.join(root, TRAIN_TAR), "w") as train:
        for k, synset in enumerate(synsets):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as images:
                for n in range(1, per_synset + 1):
                    _add(images, f"{synset}_{n}.JPEG", _jpeg(k * per_synset + n))
            _add(train, f"{synset}.tar", inner.getvalue())
    return synsets


def _kill_after_first_checkpoint(command, workdir, timeout=400):
    """Starts `command`, SIGKILLs it once the joint phase's first checkpoint exists; True when the kill
    landed (the run had not finished by then)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = os.path.join(workdir, "ckpt_joint", "checkpoint")
    deadline = time.time() + timeout
    while not os.path.exists(marker) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    running = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return running and os.path.exists(marker)


def _read_prepared(data_dir):
    """({split: examples}, synsets of the validation images) of the imagenet2012 copy TFDS prepared in
    `data_dir`, read back through TFDS itself."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    sizes = {name: split.num_examples for name, split in builder.info.splits.items()}
    names = builder.info.features["label"].names
    val = builder.as_dataset(split="validation", decoders={"image": tfds.decode.SkipDecoding()})
    return sizes, sorted(names[int(example["label"])] for example in val)


@pytest.mark.slow
def test_imagenet_config_trains_on_the_manual_download_layout_and_resumes_after_a_kill(tmp_path):
    synsets = write_fake_imagenet(str(tmp_path / "manual"), num_val=4, per_synset=16)
    workdir, data_dir = str(tmp_path / "run"), str(tmp_path / "tfds")
    command = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "--config", "imagenet_resnet50.gin",
               "--workdir", workdir, "--gin_bindings", f'build_datasets.manual_dir = "{tmp_path / "manual"}"',
               "--gin_bindings", f'build_datasets.data_dir = "{data_dir}"']
    for binding in TINY:
        command += ["--gin_bindings", binding]

    assert _kill_after_first_checkpoint(command, workdir), "no joint checkpoint before the run ended"
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    sizes, val_synsets = _read_prepared(data_dir)
    assert sizes == {"train": 16 * len(synsets), "validation": 4} and val_synsets == synsets

    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resumed from" in result.stdout and "Downloading and preparing" not in result.stdout
    assert "epoch 1/2" not in result.stdout and "epoch 2/2" in result.stdout  # epoch 1 is not trained again
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["model"] == "resnet50" and summary["dataset"] == "imagenet2012"
    assert abs(summary["flops_ratio"] - 0.5) <= 0.02 and summary["params_pruned"] < summary["params_full"]
    assert os.path.getsize(summary["compact_model"]) < os.path.getsize(os.path.join(workdir, "gated_model.keras"))
    assert np.isfinite(summary["val_accuracy_pruned"])
    assert os.path.getsize(summary["tflite"]["float"]) > 0
    assert os.path.exists(os.path.join(summary["saved_model"], "saved_model.pb"))
