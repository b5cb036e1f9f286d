"""Issue 33: every keras.applications constructor and KerasHub CNN backbone through auto_gate -> inspect ->
CostModel -> 50% FLOPs -> compact_model -> TFLite float, masked == compact (`tfprune.studies.zoo`, the same
code `tfprune bench --only zoo` writes docs/zoo.md with).

Quick suite: the enumeration finds every family, one keras.applications model (MobileNetV3Small, the issue's
crash) and one KerasHub backbone (VGG) are swept, a failure is a row and never an exception, and docs/zoo.md
is the rendering of docs/zoo.json. `pytest -m slow` (CI): the whole sweep, one test per model, so a failing
model names itself; the TFLite export for one model per family (`TFLITE_PER_FAMILY`). keras-hub is a test dependency (installed --no-deps by tools/install.sh); its tests skip
where it is missing.
"""

import json
import os

import tfprune  # noqa: F401 -- before keras (import order, issue 34)
import keras
import pytest

from tfprune.studies import zoo
from tfprune.studies import zoo_kerashub

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS_JSON = os.path.join(ROOT, "docs", "zoo.json")
DOCS_MD = os.path.join(ROOT, "docs", "zoo.md")

# The families of Keras 3.x; a new Keras may add more (they join the sweep by themselves), never drop one.
FAMILIES = {"convnext", "densenet", "efficientnet", "efficientnet_v2", "inception_resnet_v2", "inception_v3",
            "mobilenet", "mobilenet_v2", "mobilenet_v3", "nasnet", "resnet", "resnet_v2", "vgg16", "vgg19",
            "xception"}

# Known failures inside tfprune, each with its reason: name -> reason (xfail, strict).
KNOWN_FAILURES = {}

# KerasHub backbones that pass but keep channels whole, each with the barrier reason that says why (a
# substring of every one of its row's barrier reasons). Every other KerasHub backbone reaches 50% FLOPs
# with at least 99% of its FLOPs in prunable groups (MobileNetV3, EfficientNetV2 and HGNetV2 are built of
# custom layers, which auto_gate traces).
# (DenseNet was one until its concat -> BN -> ReLU -> 1x1 conv constants were folded into the convs' biases:
# `tfprune.structure.constant_folds`; it now prunes whole, tests/test_constant_folds.py.)
KERASHUB_BARRIERS = {}
# CSPNet's cross stages split the channels in two halves with keras.ops.split: a multi-output op, a barrier
# that leaves the split tensor whole (the rest of the network prunes).
KERASHUB_SPLIT = {"CSPResNet"}
needs_kerashub = pytest.mark.skipif(not zoo_kerashub.names(), reason="keras-hub is not installed")


def _explain(row):
    return f"{row['model']} ({row['family']}, input {row['input']}): {row['status']}: {row['error_message']}"


def test_enumeration_finds_every_family():
    names = zoo.constructors()
    families = {zoo.family(n) for n in names}
    assert FAMILIES <= families, sorted(FAMILIES - families)
    assert len(names) >= 40 and {"MobileNetV3Small", "ConvNeXtTiny", "DenseNet121", "NASNetMobile"} <= set(names)
    assert all(callable(getattr(keras.applications, n)) for n in names)


def test_mobilenet_v3_small_row():
    row = zoo.sweep_one("MobileNetV3Small", tflite=False)  # its TFLite conversion takes 25 s: slow suite
    assert row["status"] == zoo.STATUS_PASS and "tflite_error" not in row, _explain(row)
    assert row["input"] == 32 and row["groups"] >= 25 and row["prunable_share"] > 0.99 and row["barriers"] == 0
    assert abs(row["flops_kept"] - 0.5) <= 0.02 and row["error"] <= zoo.TOLERANCE


@needs_kerashub
def test_kerashub_backbones_are_enumerated_and_one_prunes():
    names = zoo_kerashub.names()
    assert len({zoo.family(n) for n in names}) >= 6 and zoo.models() == zoo.constructors() + names
    assert zoo.models("kerashub") == names and zoo.source(names[0]) == "kerashub"
    row = zoo.sweep_one("kerashub:VGG")
    assert row["status"] == zoo.STATUS_PASS and row["family"] == "kerashub.vgg", _explain(row)
    assert row["input"] == zoo_kerashub.INPUT_SIZE and row["groups"] == row["plan_groups"] == 5
    assert row["barriers"] == 0 and abs(row["flops_kept"] - 0.5) <= 0.02 and row["tflite_error"] <= zoo.TOLERANCE


def test_a_failure_is_a_row_not_an_exception():
    row = zoo.sweep_one("NoSuchNet")
    assert row["status"] == zoo.STATUS_ERROR and row["error_message"].startswith("AttributeError")
    assert "error" in zoo.markdown([row], {}, 1.0, commit_id="x")
    row = zoo.sweep_one("kerashub:NoSuchNet")
    assert row["status"] == zoo.STATUS_ERROR and row["error_message"].startswith("KeyError")


def test_barrier_reasons_are_grouped_without_layer_names():
    messages = ["Layer 'ln1' (LayerNormalization): no rule", "Layer 'ln2' (LayerNormalization): no rule",
                "Layer 'c' (Cumsum): no rule"]
    assert zoo.summarize_barriers(messages) == [(2, "Layer '…' (LayerNormalization): no rule"),
                                                (1, "Layer '…' (Cumsum): no rule")]


@pytest.mark.skipif(not os.path.exists(DOCS_JSON), reason="docs/zoo.json not generated yet")
def test_the_committed_table_is_the_rendering_of_its_rows():
    with open(DOCS_JSON) as f:
        record = json.load(f)
    with open(DOCS_MD) as f:
        assert f.read() == zoo.markdown_of(record) + "\n", "docs/zoo.md was edited by hand: run tfprune bench --only zoo"
    assert record["command"] == zoo.COMMAND
    models = [r["model"] for r in record["rows"]]
    if record["machine"].get("keras") == keras.__version__:  # same Keras: the table covers every constructor
        assert [n for n in models if zoo.source(n) == "keras.applications"] == zoo.constructors()
    if zoo_kerashub.names():
        assert [n for n in models if zoo.source(n) == "kerashub"] == zoo_kerashub.names()


def _params():
    return [pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[n])] if n in KNOWN_FAILURES
                         else []) for n in zoo.constructors()]


# One model per family also goes through the TFLite export in CI; the rest are pruned and checked
# masked == compact without it: the conversion doubles the sweep (EfficientNetB7: 235 s), which would
# take CI near its 90 minutes. `tfprune bench --only zoo` exports every model (docs/zoo.md's TFLite column).
TFLITE_PER_FAMILY = set(zoo.ONE_PER_FAMILY)


def test_every_family_has_a_model_exported_in_ci_and_timed_in_the_table():
    assert {zoo.family(n) for n in TFLITE_PER_FAMILY} == {zoo.family(n) for n in zoo.constructors()}
    assert zoo.measures_latency("MobileNetV3Small") and zoo.measures_latency("kerashub:VGG")
    assert not zoo.measures_latency("MobileNetV3Large")


@pytest.mark.slow
@pytest.mark.parametrize("name", _params())
def test_every_keras_application_prunes_exactly(name):
    row = zoo.sweep_one(name, tflite=name in TFLITE_PER_FAMILY)
    assert row["status"] == zoo.STATUS_PASS, _explain(row)
    assert row.get("tflite_passed", name not in TFLITE_PER_FAMILY), _explain(row)
    assert row["flops_kept"] <= 0.52 or not row["target_reached"], _explain(row)


@pytest.mark.slow
@needs_kerashub
@pytest.mark.parametrize("name", zoo_kerashub.names())
def test_every_kerashub_backbone_prunes_exactly(name):
    row = zoo.sweep_one(name)
    assert row["status"] == zoo.STATUS_PASS and row["tflite_passed"], _explain(row)
    config = name[len(zoo_kerashub.PREFIX):]
    if config in KERASHUB_BARRIERS:
        assert row["barriers"] and all(KERASHUB_BARRIERS[config] in why for _, why in row["barrier_reasons"]), row
        assert row["prunable_share"] < 0.8 and not row["target_reached"], _explain(row)
        return
    assert row["prunable_share"] >= 0.99 and row["target_reached"] and row["flops_kept"] <= 0.52, _explain(row)
    assert bool(row["barriers"]) == (config in KERASHUB_SPLIT), row["barrier_reasons"]


def test_bench_only_zoo_writes_the_table_and_its_rows(tmp_path):
    from tfprune.studies import bench

    assert bench.parse_args(["--only", "zoo"]).only == ["zoo"]
    md, js = str(tmp_path / "zoo.md"), str(tmp_path / "zoo.json")
    result = zoo.bench_zoo(md, js, names=["NoSuchNet"], machine={"cpu": "test"})
    assert result["models"] == 1 and result["failed"] == ["NoSuchNet"]
    with open(js) as f:
        record = json.load(f)
    with open(md) as f:
        text = f.read()
    assert text == zoo.markdown_of(record) + "\n" and zoo.COMMAND in text and record["commit"] in text
    assert "keras.applications + KerasHub zoo sweep" in bench.format_table({"zoo": result})


def test_bench_zoo_of_one_source_keeps_the_other_sources_rows(tmp_path):
    from tfprune.studies import bench

    md, js = str(tmp_path / "zoo.md"), str(tmp_path / "zoo.json")
    old = {"command": zoo.COMMAND, "commit": "old", "machine": {"cpu": "then"}, "seconds": 60.0, "target": 0.5,
           "rows": [zoo.sweep_one("NoSuchNet"), zoo.sweep_one("kerashub:Gone")]}  # no "runs": an older record
    with open(js, "w") as f:
        json.dump(old, f)
    zoo.bench_zoo(md, js, names=["kerashub:NoSuchNet"], machine={"cpu": "now"}, of="kerashub")
    with open(js) as f:
        record = json.load(f)
    assert [r["model"] for r in record["rows"]] == ["NoSuchNet", "kerashub:NoSuchNet"]
    assert record["runs"]["keras.applications"]["commit"] == "old" and record["runs"]["kerashub"]["machine"]["cpu"] == "now"
    with open(md) as f:
        text = f.read()
    assert text == zoo.markdown_of(record) + "\n" and "commit `old`" in text and record["commit"] in text
    assert bench.parse_args(["--only", "zoo", "--zoo_models", "kerashub"]).zoo_models == "kerashub"


@pytest.mark.slow
def test_the_latency_column_times_the_rounded_compact_model_against_the_original():
    row = zoo.sweep_one("kerashub:VGG", latency=True)
    assert row["status"] == zoo.STATUS_PASS, _explain(row)
    assert row["latency_ms_full"] > 0 and 0 < row["latency_ratio"] < 10  # a ratio, not a time: noise is not judged
    assert row["latency_target_reached"] == (row["latency_flops_kept"] <= 0.52), row
    assert "LiteRT" in row["latency_measured_on"] or "litert" in row["latency_measured_on"]
    cell = zoo._row_line(row).split(" | ")[7]
    assert cell.startswith(f"{row['latency_ratio']:.2f}x of "), cell
    assert zoo._row_line(zoo.sweep_one("kerashub:VGG", tflite=False)).split(" | ")[7] == "-"  # not measured
