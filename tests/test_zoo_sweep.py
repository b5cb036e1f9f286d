"""Issue 33: every keras.applications constructor through auto_gate -> CostModel -> 50% FLOPs ->
compact_model, masked == compact (`tfprune.studies.zoo`, the same code `tfprune bench --only zoo` writes
docs/zoo.md with).

Quick suite: the enumeration finds every family, one model (MobileNetV3Small, the issue's crash) is
swept, a failure is a row and never an exception, and docs/zoo.md is the rendering of docs/zoo.json.
`pytest -m slow` (CI): the whole sweep, one test per constructor, so a failing model names itself.
"""

import json
import os

import tfprune  # noqa: F401 -- before keras (import order, issue 34)
import keras
import pytest

from tfprune.studies import zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS_JSON = os.path.join(ROOT, "docs", "zoo.json")
DOCS_MD = os.path.join(ROOT, "docs", "zoo.md")

# The families of Keras 3.x; a new Keras may add more (they join the sweep by themselves), never drop one.
FAMILIES = {"convnext", "densenet", "efficientnet", "efficientnet_v2", "inception_resnet_v2", "inception_v3",
            "mobilenet", "mobilenet_v2", "mobilenet_v3", "nasnet", "resnet", "resnet_v2", "vgg16", "vgg19",
            "xception"}

# Known failures inside tfprune, each with its reason: name -> reason (xfail, strict).
KNOWN_FAILURES = {}


def _explain(row):
    return f"{row['model']} ({row['family']}, input {row['input']}): {row['status']}: {row['error_message']}"


def test_enumeration_finds_every_family():
    names = zoo.constructors()
    families = {zoo.family(n) for n in names}
    assert FAMILIES <= families, sorted(FAMILIES - families)
    assert len(names) >= 40 and {"MobileNetV3Small", "ConvNeXtTiny", "DenseNet121", "NASNetMobile"} <= set(names)
    assert all(callable(getattr(keras.applications, n)) for n in names)


def test_mobilenet_v3_small_row():
    row = zoo.sweep_one("MobileNetV3Small")
    assert row["status"] == zoo.STATUS_PASS, _explain(row)
    assert row["input"] == 32 and row["groups"] >= 25 and row["prunable_share"] > 0.99 and row["barriers"] == 0
    assert abs(row["flops_kept"] - 0.5) <= 0.02 and row["error"] <= zoo.TOLERANCE


def test_a_failure_is_a_row_not_an_exception():
    row = zoo.sweep_one("NoSuchNet")
    assert row["status"] == zoo.STATUS_ERROR and row["error_message"].startswith("AttributeError")
    assert "error" in zoo.markdown([row], {}, 1.0, commit_id="x")


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
    if record["machine"].get("keras") == keras.__version__:  # same Keras: the table covers every constructor
        assert [r["model"] for r in record["rows"]] == zoo.constructors()


def _params():
    return [pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[n])] if n in KNOWN_FAILURES
                         else []) for n in zoo.constructors()]


@pytest.mark.slow
@pytest.mark.parametrize("name", _params())
def test_every_keras_application_prunes_exactly(name):
    row = zoo.sweep_one(name)
    assert row["status"] == zoo.STATUS_PASS, _explain(row)
    assert row["flops_kept"] <= 0.52 or not row["target_reached"], _explain(row)


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
    assert "keras.applications zoo sweep" in bench.format_table({"zoo": result})
