"""`tfprune inspect` / `tfprune.inspect(model)`: the pruning plan's numbers are CostModel's, its barrier list
is auto_gate's warnings, and the command loads zoo names, .keras files and module:function builders."""

import json
import os
import warnings

import keras
import numpy as np
import pytest

import tfprune
from tfprune.cli import inspect as inspect_cli
from tfprune.structure.masks import kept_from_ratios

from model_fixtures import Scale


def plain_model():
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = Scale(name="my_scale")(keras.layers.ReLU()(x))
    a = keras.layers.Conv2D(16, 3, padding="same", name="c2")(x)
    b = keras.layers.Conv2D(16, 1, name="c2b")(x)
    x = keras.layers.Add()([keras.layers.BatchNormalization()(a), b])
    x = keras.layers.Conv2D(12, 3, padding="same", name="c3")(keras.layers.ReLU()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, name="head")(x), name="mine")


def test_zoo_plan_numbers_are_cost_models():
    model = tfprune.build_model("resnet20")
    plan = tfprune.inspect(model, max_ratio=0.8)
    cost = tfprune.CostModel(model)
    assert plan.gated_input and plan.unpruned == []
    assert (plan.flops, plan.params) == (cost.full.flops, cost.full.params)
    assert [g.name for g in plan.groups] == cost.group_names
    assert [g.channels for g in plan.groups] == list(cost.group_sizes)
    for i, group in enumerate(plan.groups):
        kept = cost.group_sizes.astype(float)
        kept[i] = 0
        assert group.flops_share == pytest.approx(1 - cost.cost_of_kept(kept).flops / cost.full.flops)
    smallest = cost.cost_of_kept(kept_from_ratios(np.full(len(cost.group_names), 0.8), cost.group_sizes))
    assert (plan.min_flops, plan.min_params) == (smallest.flops, smallest.params)
    stage1 = next(g for g in plan.groups if g.name == "stage1_gate")
    assert "stem_conv" in stage1.producers and "stage1_block1_conv1" in stage1.consumers


def test_plain_model_plan_matches_auto_gate_and_its_warnings():
    model = plain_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gated = tfprune.auto_gate(model)
    plan = tfprune.inspect(model)
    assert plan.model == "mine" and not plan.gated_input
    assert plan.unpruned == [str(w.message) for w in caught] and "'my_scale' (Scale)" in plan.unpruned[0]
    cost = tfprune.CostModel(gated)
    assert [g.name for g in plan.groups] == cost.group_names and plan.flops == cost.full.flops
    coupled = next(g for g in plan.groups if "c2" in g.producers)
    assert sorted(coupled.producers) == ["c2", "c2b"] and coupled.consumers == ["c3"]  # the Add ties them
    assert "c1" not in {p for g in plan.groups for p in g.producers}  # behind the barrier


def test_command_line_zoo_keras_file_and_builder(tmp_path, capsys, monkeypatch):
    assert inspect_cli.main(["resnet8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "resnet8" and len(data["groups"]) == len(tfprune.CostModel(tfprune.build_model("resnet8")).group_names)

    path = str(tmp_path / "mine.keras")
    plain_model().save(path)
    png = str(tmp_path / "plan.png")
    assert inspect_cli.main([path, "--png", png]) == 0
    out = capsys.readouterr().out
    assert "left unpruned: 1" in out and "'my_scale' (Scale)" in out and os.path.getsize(png) > 0

    (tmp_path / "builder_mod.py").write_text(
        "import keras\n"
        "def build(weights='imagenet'):\n"
        "    assert weights is None  # the plan never downloads weights\n"
        "    inp = keras.Input((8, 8, 3))\n"
        "    x = keras.layers.Conv2D(4, 3, name='a')(inp)\n"
        "    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(x)), name='built')\n")
    monkeypatch.chdir(tmp_path)
    assert inspect_cli.main(["builder_mod:build"]) == 0
    assert capsys.readouterr().out.startswith("built: ")


def test_command_line_bad_model_is_one_line(tmp_path, capsys):
    for spec in ("nope", str(tmp_path / "missing.keras"), "no_such_module_xyz:build"):
        assert inspect_cli.main([spec]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_keras_applications_builder_gets_no_weights_and_no_barriers(capsys):
    assert inspect_cli.main(["keras.applications:MobileNetV2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unpruned"] == [] and len(data["groups"]) > 0
    assert abs(data["flops"] - 300.8e6) < 0.1e6  # the published MobileNetV2 MACs at 224x224


def test_keras_short_name_is_keras_applications_and_mobilenetv3_has_a_plan(capsys):
    """`keras:NAME` is keras.applications.NAME (at 224x224); MobileNetV3 (operator nodes in its hard-swish)
    is planned with no barrier but its softmax over the class logits, which are never pruned anyway."""
    assert inspect_cli.main(["keras:MobileNetV3Small", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["groups"]) > 0 and abs(data["flops"] - 56.5e6) < 2e6  # ~56 M MACs published at 224x224
    assert [line.split("'")[1] for line in data["unpruned"]] == ["predictions"], data["unpruned"]
    assert inspect_cli.main(["keras:NoSuchNet"]) == 2
    assert "cannot import" in capsys.readouterr().err


def test_str_of_the_plan_is_the_table_the_command_prints(capsys):
    plan = tfprune.inspect(plain_model())
    assert str(plan) == "\n".join(plan.lines())
    assert not str(plan).startswith("PruningPlan(") and "prunable channel groups" in str(plan)
    assert repr(plan).startswith("PruningPlan(")  # the dataclass repr stays for debugging
