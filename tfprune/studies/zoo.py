"""The zoo sweep (issue 33): every constructor `keras.applications` exports and KerasHub's CNN backbones
(`tfprune.studies.zoo_kerashub`), gated, inspected, costed, masked to 50% FLOPs, compacted and exported to
TFLite, masked == compact checked on each.

`constructors()` enumerates the keras.applications models from the module itself (a name starting with a
capital letter that is callable), so a new Keras version's models join the sweep by themselves; `models()`
adds the KerasHub names (``kerashub:<config>``; none without keras-hub); `family(name)` is the name of the
module that defines the model (``convnext``, ``mobilenet_v3``, ``kerashub.resnet``, ...).
`sweep_one(name)` runs one model and returns its row (a dict); no exception escapes it, a failure is
the row's ``status`` and ``error``. `sweep(names=None)` returns the rows of all (or of ``names``).
`tests/test_zoo_sweep.py` asserts on these rows and `tfprune bench --only zoo` writes them as
`docs/zoo.md` (+ `docs/zoo.json`) with `bench_zoo`, so the table and the test cannot disagree.

Per model: built with ``weights=None``, 10 classes, no classifier activation, at the smallest of
`INPUT_SIZES` its constructor accepts (a KerasHub backbone as `zoo_kerashub.build` wraps it); BatchNormalization
statistics and ConvNeXt's LayerScale set from a seeded random draw (a fresh model's identity BN / 1e-6
LayerScale would hide slicing mistakes); `auto_gate` -> `ChannelGraph` -> `inspect` -> `CostModel` -> kept
counts projected onto ``target`` FLOPs (uniform start, L1 importance; where the target is out of reach every
group loses ``max_ratio``) -> masks -> `compact_model` -> TFLite float (`verify_tflite`); the compact model's
counted FLOPs must equal the cost model's prediction for the masks. A layer with weights that tfprune has
no rule for and that no barrier warning names (a custom layer it cannot see into) is listed with the barriers.
"""

import collections
import inspect as pyinspect
import re
import time
import traceback
import warnings

from tfprune.studies import zoo_kerashub

INPUT_SIZES = (32, 75, 96, 224)  # tried in order: the first the constructor accepts is used
TOLERANCE = 1e-4  # masked vs compact, largest difference relative to the masked output's largest value
STATUS_PASS, STATUS_FAIL, STATUS_ERROR = "pass", "fail", "error"
LATENCY_ROUND_TO = 16  # the latency column's channel rounding (issue 33: LiteRT, 1 thread, round_to=16)
LATENCY_RUNS = 20  # interleaved timings per model, the median reported (as summary.json's latency)
# One model of each keras.applications family, the smallest: the CI test exports these to TFLite and the
# sweep measures their latency (with every KerasHub backbone): two more conversions a model, which for all
# forty would double the sweep.
ONE_PER_FAMILY = ("ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionResNetV2",
                  "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Small", "NASNetMobile", "ResNet50",
                  "ResNet50V2", "VGG16", "VGG19", "Xception")


def measures_latency(name):
    """Whether the sweep that writes docs/zoo.md times ``name`` (`ONE_PER_FAMILY` and every KerasHub model)."""
    return name in ONE_PER_FAMILY or source(name) == "kerashub"


def constructors():
    """Every model constructor of `keras.applications`, sorted by name."""
    import keras

    return sorted(n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n)))


SOURCES = ("keras.applications", "kerashub")


def source(name):
    """Where model ``name`` comes from: one of `SOURCES`."""
    return "kerashub" if zoo_kerashub.is_kerashub(name) else "keras.applications"


def models(of="all"):
    """The sweep's models, every keras.applications constructor then every `zoo_kerashub` backbone, or
    those of one of `SOURCES`."""
    return [n for n in constructors() + zoo_kerashub.names() if of in ("all", source(n))]


def family(name):
    """The keras.applications module defining constructor ``name`` (e.g. ``efficientnet_v2``), or
    ``kerashub.<module>`` for a KerasHub backbone (`zoo_kerashub`)."""
    import keras

    if zoo_kerashub.is_kerashub(name):
        return zoo_kerashub.family(name)
    return getattr(keras.applications, name).__module__.rsplit(".", 1)[-1]


def build(name, seed=0, input_size=None):
    """(model, input size): ``keras.applications.<name>`` at ``input_size``, or at the smallest size of
    `INPUT_SIZES` it builds at; a KerasHub name (``kerashub:...``) is `zoo_kerashub.build`'s model."""
    import keras

    if zoo_kerashub.is_kerashub(name):
        model, size = zoo_kerashub.build(name, input_size)
        _randomize(model, seed)
        return model, size
    constructor = getattr(keras.applications, name)
    accepted = pyinspect.signature(constructor).parameters
    kwargs = {k: v for k, v in dict(weights=None, classes=10, classifier_activation=None).items() if k in accepted}
    last = None
    for size in (input_size,) if input_size else INPUT_SIZES:
        try:
            model = constructor(input_shape=(size, size, 3), **kwargs)
        except ValueError as e:  # "Input size must be at least 75x75", a negative dimension, ...
            last = e
            continue
        _randomize(model, seed)
        return model, size
    raise last


def _randomize(model, seed):
    """Non-trivial BN statistics and LayerScale values, so a wrongly sliced channel changes the output."""
    import numpy as np
    import keras

    rng = np.random.default_rng(seed)
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            weights = []
            kinds = (["gamma"] if layer.scale else []) + (["beta"] if layer.center else []) + ["mean", "var"]
            for kind, shape in zip(kinds, shapes):
                if kind == "gamma":
                    weights.append(rng.normal(1, 0.3, shape))
                elif kind in ("beta", "mean"):
                    weights.append(rng.normal(0, 0.3, shape))
                else:
                    weights.append(rng.uniform(0.5, 2, shape))
            layer.set_weights([w.astype("float32") for w in weights])
        elif type(layer).__name__ == "LayerScale":  # ConvNeXt's starts at 1e-6
            layer.set_weights([rng.normal(1.0, 0.3, w.shape).astype("float32") for w in layer.get_weights()])


def _layers(model):
    """The layers of ``model`` and of the models nested in it (a KerasHub backbone), depth first."""
    import keras

    for layer in model.layers:
        yield from _layers(layer) if isinstance(layer, keras.Model) else (layer,)


def summarize_barriers(messages):
    """Barrier warnings grouped by reason: the layer names (quoted) are dropped, equal reasons counted.

    Returns a list of (count, reason), most frequent first."""
    reasons = collections.Counter(re.sub(r"'[^']*'", "'…'", m).strip() for m in messages)
    return [(n, reason) for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]


def _relative_error(a, b):
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(1e-12, np.abs(b).max()))


def _masks_at(cost, graph, target, max_ratio, round_to=1):
    """Masks at ``target`` FLOPs, each group's kept count a multiple of ``round_to`` (every group at
    ``max_ratio`` where the target is out of reach)."""
    import numpy as np

    from tfprune.cost import budget
    from tfprune.cost.channel_grid import ChannelGrid
    from tfprune.errors import TfpruneError
    from tfprune.structure import masks as mask_lib
    from tfprune.structure.importance import channel_importance

    try:
        kept, _ = budget.project_to_budget(np.zeros(len(cost.group_names)), cost, target, max_ratio=max_ratio,
                                           round_to=round_to)
        reached = True
    except TfpruneError:
        kept = ChannelGrid(cost.group_sizes, max_ratio, round_to).floor
        reached = False
    return mask_lib.masks_from_kept(kept, cost.group_names, channel_importance(graph)), reached


def _prune(model, size, target, max_ratio, seed, tflite=True, latency=False):
    """auto_gate -> inspect -> cost -> masks -> compact on one built model; the measured part of its row
    (with ``latency``, `_latency`'s too)."""
    import numpy as np

    from tfprune.cost.flops import CostModel
    from tfprune.cost.plan import inspect
    from tfprune.structure import masks as mask_lib
    from tfprune.structure.auto_gate import auto_gate
    from tfprune.structure.graph import ChannelGraph
    from tfprune.structure.surgery import compact_model

    x = np.random.default_rng(seed + 1).normal(size=(2, size, size, 3)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gated = auto_gate(model)
        graph = ChannelGraph(gated)
    gate_error = _relative_error(gated(x, training=False), model(x, training=False))
    plan_groups = len(inspect(gated).groups)  # what `tfprune inspect` prints of the model
    cost = CostModel(gated, graph)
    full = cost.full.flops
    fixed = cost.cost_of_kept(np.zeros(len(cost.group_names))).flops if cost.group_names else full
    masks, reached = _masks_at(cost, graph, target, max_ratio) if cost.group_names else ({}, False)
    mask_lib.apply_masks(gated, masks)
    compact = compact_model(gated, graph=graph)
    error = _relative_error(compact(x, training=False), gated(x, training=False))
    predicted = cost.cost(masks).flops
    counted = CostModel(compact, ChannelGraph(compact, warn=False)).full.flops
    messages = [str(w.message) for w in caught] + _unseen(graph, [str(w.message) for w in caught])
    row = dict(groups=len(cost.group_names), plan_groups=plan_groups, mflops=full / 1e6,
               prunable_share=1.0 - fixed / full, flops_kept=predicted / full, target_reached=reached,
               gate_error=gate_error, error=error, flops_match=bool(np.isclose(counted, predicted, rtol=1e-9)),
               barriers=len(messages), barrier_reasons=summarize_barriers(messages),
               **(_tflite_parity(compact, x) if tflite else {}))
    if latency and cost.group_names:
        row.update(_latency(model, gated, graph, cost, target, max_ratio))
    return row


def _latency(model, gated, graph, cost, target, max_ratio):
    """What pruning buys on a phone-class runtime: the compact model at ``target`` FLOPs with every kept
    count a multiple of `LATENCY_ROUND_TO` (XNNPACK computes channels in tiles of 16 floats: `docs/deploy.md`),
    timed against the original model as float TFLite on LiteRT, 1 thread, batch 1, interleaved
    (`measured_latency`: the load of a shared machine falls on both alike). Where the rounded target is out
    of reach every group sits at its rounded floor and ``latency_target_reached`` says so."""
    from tfprune.deploy.export import convert_tflite
    from tfprune.deploy.latency_report import measured_latency
    from tfprune.structure import masks as mask_lib
    from tfprune.structure.surgery import compact_model

    masks, reached = _masks_at(cost, graph, target, max_ratio, round_to=LATENCY_ROUND_TO)
    mask_lib.apply_masks(gated, masks)
    measured = measured_latency(model, convert_tflite(compact_model(gated, graph=graph), "float"),
                                threads=1, runs=LATENCY_RUNS)
    return dict(latency_ratio=measured["latency_ratio"], latency_ms_full=measured["latency_ms_full"],
                latency_flops_kept=cost.cost(masks).flops / cost.full.flops, latency_target_reached=reached,
                latency_measured_on=measured["latency_measured_on"])


def _unseen(graph, messages):
    """One message per layer that holds weights, has no channel rule and that no barrier warning names
    (nothing prunable feeds it): a custom layer (KerasHub's MobileNet blocks) whose inside tfprune cannot
    see, so its channels are not pruned and its FLOPs are not counted -- the row must say so."""
    named = " ".join(messages)
    return [f"Layer '{n.layer.name}' ({type(n.layer).__name__}): a layer with weights and no channel rule; "
            "its inside is neither pruned nor counted in the FLOPs." for n in graph.nodes
            if n.rule is None and getattr(n.layer, "weights", None) and f"'{n.layer.name}'" not in named]


def _tflite_parity(compact, x):
    """The compact model as a float TFLite flatbuffer, checked against Keras by `verify_tflite`: whether it
    passed and the largest difference relative to the output scale (NaN where conversion failed)."""
    from tfprune.deploy.export import ExportVerificationError, convert_tflite, verify_tflite

    try:
        report = verify_tflite(convert_tflite(compact, "float"), compact, x, "float")
    except ExportVerificationError as e:
        report = e.report
    return dict(tflite_passed=bool(report["passed"]), tflite_error=report["max_abs_diff"] / report["output_scale"])


def _problems(row):
    """Why a measured row fails (empty: it passes)."""
    problems = []
    if not row["error"] <= TOLERANCE:
        problems.append(f"masked vs compact relative error {row['error']:.2e} > {TOLERANCE:g}")
    if not row["gate_error"] <= TOLERANCE:
        problems.append(f"auto_gate changed the outputs (relative {row['gate_error']:.2e})")
    if not row["flops_match"]:
        problems.append("the compact model's FLOPs differ from the cost model's prediction")
    if row["plan_groups"] != row["groups"]:
        problems.append(f"inspect shows {row['plan_groups']} groups, the cost model {row['groups']}")
    if not row.get("tflite_passed", True):
        problems.append(f"TFLite float differs from Keras (relative {row['tflite_error']:.2e})")
    return problems


def sweep_one(name, target=0.5, max_ratio=0.9, seed=0, input_size=None, tflite=True, latency=False):
    """One model's row (a keras.applications constructor or a `zoo_kerashub` name), at ``input_size``
    (default: the smallest of `INPUT_SIZES` it accepts); never raises (a failure is ``status`` "error"
    with the exception and its last traceback lines in ``error_message``). ``tflite=False`` skips the
    TFLite export (its conversion is most of a small model's time: 25 of MobileNetV3Small's 32 s);
    ``latency=True`` adds the measured latency ratio at ``target`` FLOPs (`_latency`: two more
    conversions, so the sweep that writes docs/zoo.md measures it and the tests do not)."""
    import keras

    start = time.perf_counter()
    row = dict(model=name, family=None, input=None, status=STATUS_ERROR, error_message="")
    try:
        row["family"] = family(name)
        keras.utils.clear_session()
        model, size = build(name, seed, input_size)
        row["input"] = size
        row.update(_prune(model, size, target, max_ratio, seed, tflite, latency))
        problems = _problems(row)
        row["status"] = STATUS_FAIL if problems else STATUS_PASS
        row["error_message"] = "; ".join(problems)
    except Exception as e:  # noqa: BLE001 -- the sweep reports every failure as a row
        row["error_message"] = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc().splitlines(True)[-8:])
    row["seconds"] = time.perf_counter() - start
    return row


def sweep(names=None, target=0.5, log=None, latency=False):
    """Rows of `sweep_one` for ``names`` (default: every model of `models()`); ``latency`` True times the
    models `measures_latency` names."""
    rows = []
    for name in names if names is not None else models():
        rows.append(sweep_one(name, target=target, latency=latency and measures_latency(name)))
        if log:
            r = rows[-1]
            log(f"{name}: {r['status']} in {r['seconds']:.1f} s" + (f" ({r['error_message'][:200]})"
                                                                    if r["error_message"] else ""))
    return rows


# ------------------------------------------------------------------------------------------ the table

COMMAND = "tfprune bench --only zoo"


def commit():
    """The checked-out commit of this source tree (`tfprune.infra.environment.source_commit`), or "unknown"."""
    import os

    from tfprune.infra.environment import source_commit

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return source_commit(root) or "unknown"


def _reasons_cell(row):
    if not row.get("barrier_reasons"):
        return "none"
    return "<br>".join(f"{n} x {reason}".replace("|", "\\|") for n, reason in row["barrier_reasons"])


def _row_line(r):
    if r["status"] == STATUS_ERROR:
        message = r["error_message"].splitlines()[0].replace("|", "\\|")
        return f"| {r['model']} | {r['input'] or '-'} | - | - | - | - | - | - | - | **error**: {message} |"
    kept = f"{r['flops_kept']:.1%}" + ("" if r["target_reached"] else " (target out of reach)")
    status = "pass" if r["status"] == STATUS_PASS else f"**fail**: {r['error_message']}"
    tflite = f"{r['tflite_error']:.1e}" if "tflite_error" in r else "-"
    return (f"| {r['model']} | {r['input']} | {r['groups']} | {r['prunable_share']:.1%} | {kept} | "
            f"{r['error']:.1e} | {tflite} | {_latency_cell(r)} | {_reasons_cell(r)} | {status} |")


def _latency_cell(r):
    if "latency_ratio" not in r:
        return "-"
    where = "" if r["latency_target_reached"] else f" (at {r['latency_flops_kept']:.0%} FLOPs: the floor)"
    return f"{r['latency_ratio']:.2f}x of {r['latency_ms_full']:.2f} ms{where}"


def _run_line(of, run):
    machine = run.get("machine", {})
    return (f"- {of} rows: commit `{run.get('commit', '?')}`; {machine.get('cpu', '?')}, "
            f"{machine.get('cpu_count', '?')} CPUs, {machine.get('gpus', 0)} GPUs, TensorFlow "
            f"{machine.get('tensorflow', '?')}, Keras {machine.get('keras', '?')}; the sweep took "
            f"{run.get('seconds', 0) / 60:.1f} min" + _load_text(run) + ".")


def _load_text(run):
    """The machine's load during the sweep (``load_average``, measured) and a ``note`` on it, if any."""
    load = run.get("load_average")
    text = f", load average {load[0]:.1f} at its start and {load[1]:.1f} at its end" if load else ""
    return text + (f" ({run['note']})" if run.get("note") else "")


def _header(rows, runs, target):
    passed = sum(r["status"] == STATUS_PASS for r in rows)
    reached = sum(bool(r.get("target_reached")) for r in rows)
    return [
        "# keras.applications and KerasHub coverage",
        "",
        f"Generated by `{COMMAND}` (also writes `docs/zoo.json`, the rows; `{COMMAND} --zoo_models kerashub` "
        "re-runs one source's rows and keeps the other's); do not edit by hand.",
        "",
        *[_run_line(of, run) for of, run in runs.items()],
        "",
        "Every constructor `keras.applications` exports (enumerated from the module, so a new Keras version's "
        f"models join by themselves), built with `weights=None`, 10 classes, at the smallest of "
        f"{', '.join(map(str, INPUT_SIZES))} pixels square it accepts; and KerasHub's CNN backbones "
        f"(`tfprune.studies.zoo_kerashub`: small configurations from explicit constructor arguments, no preset "
        f"download, {zoo_kerashub.INPUT_SIZE} pixels, wrapped as backbone -> pooling -> Dense(10)). "
        "BatchNormalization statistics and LayerScale drawn at random: `auto_gate` -> `inspect` -> `CostModel` "
        f"-> {target:.0%} FLOPs (uniform ratios projected onto the budget, L1 importance) -> `compact_model` -> "
        f"TFLite float. **{passed} of {len(rows)} pass**: masked == compact within {TOLERANCE:g} relative, the "
        "gated model equal to the original, `inspect` showing the cost model's groups, the compact model's "
        "counted FLOPs equal to the cost model's prediction, and its TFLite float model verified against it; "
        f"**{reached} reach the {target:.0%} target**, the barriers column says why the others do not. "
        "`tests/test_zoo_sweep.py` runs the same `tfprune.studies.zoo.sweep` (`pytest -m slow`).",
        "",
        "Columns: *input* the square input size; *groups* the prunable channel groups; *prunable* the share "
        "of counted FLOPs that scales with some group's channels (1 - FLOPs left when every group is emptied); "
        f"*FLOPs kept* after pruning to the {target:.0%} target; *error* the largest |compact - masked| over "
        "the largest |masked|; *TFLite* the largest |TFLite - Keras| of the compact model over its output scale "
        "(- : a row from before the sweep exported); *barriers* the warnings of `auto_gate` / `ChannelGraph` "
        "(layers left whole) and the layers with weights tfprune has no rule for, grouped by reason with layer "
        f"names elided; *latency* the compact model's measured latency over the original's (float TFLite on "
        f"LiteRT, 1 thread, batch 1, interleaved, median of {LATENCY_RUNS}) when pruned to the {target:.0%} "
        f"target with every kept count a multiple of {LATENCY_ROUND_TO} (XNNPACK's tile: docs/deploy.md), "
        "and the original's milliseconds; 1.00x means pruning bought no time. At the input sizes swept here "
        "(32-96 pixels, chosen so the sweep fits CI) reading the weights, not the FLOPs, sets the time of the "
        "large models (ResNet50 at 32 pixels: 25 M parameters for 79 M multiply-adds), so their ratio falls with "
        "the parameters, below the FLOPs' ratio; at a phone's 224 pixels compute weighs more. Each sweep's "
        "load average (1 min) at its start and end is on its line above: timings taken beside other jobs are "
        "ratios of interleaved runs, so the load falls on both models alike, but they are noisier. "
        "Timed for one model of each keras.applications family (the smallest) and every "
        "KerasHub backbone (- : not timed; two more TFLite conversions a model would double the sweep).",
        "",
    ]


def markdown(rows, machine, seconds, target=0.5, commit_id=None, runs=None):
    """The coverage table (docs/zoo.md) of ``rows``, stating the command and, for each source's rows
    (``runs``: source -> {commit, machine, seconds}; default one run of ``machine``, ``seconds`` and
    ``commit_id``, the checked-out commit unless given), the commit and machine that made them."""
    runs = runs or {"all": dict(commit=commit_id or commit(), machine=machine, seconds=seconds)}
    families = collections.OrderedDict()
    for r in sorted(rows, key=lambda r: (source(r["model"]), r["family"] or "", r["model"])):
        families.setdefault(r["family"] or "?", []).append(r)
    lines = _header(rows, runs, target)
    for fam, members in families.items():
        lines += [f"## {fam}", "",
                  "| model | input | groups | prunable | FLOPs kept | error | TFLite | latency | barriers (why) | result |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [_row_line(r) for r in members] + [""]
    return "\n".join(lines)


def markdown_of(record):
    """docs/zoo.md from the record docs/zoo.json holds (the same text `bench_zoo` writes beside it)."""
    return markdown(record["rows"], record["machine"], record["seconds"], record.get("target", 0.5),
                    record["commit"], record.get("runs"))


def _merged(record, previous, of):
    """``record`` (the rows of source ``of``) with the rows and runs of the other sources kept from
    ``previous`` (an earlier docs/zoo.json; one written before runs were per source holds keras.applications)."""
    old_runs = previous.get("runs") or {"keras.applications": {k: previous.get(k) for k in ("commit", "machine",
                                                                                            "seconds")}}
    runs = {s: record["runs"][s] if s == of else old_runs[s] for s in SOURCES if s == of or s in old_runs}
    rows = [r for r in previous["rows"] if source(r["model"]) != of] + record["rows"]
    order = {n: i for i, n in enumerate(models())}
    return {**record, "runs": runs, "rows": sorted(rows, key=lambda r: order.get(r["model"], len(order)))}


def bench_zoo(markdown_path="docs/zoo.md", json_path="docs/zoo.json", names=None, target=0.5, machine=None,
              log=print, of="all", latency=True):
    """`tfprune bench --only zoo`: the sweep, written as the Markdown table and the JSON of its rows.

    ``of`` one of `SOURCES` sweeps that source's models alone and keeps the other's rows (and the commit and
    machine that made them) from the existing ``json_path``: KerasHub's dozen rows take two minutes,
    keras.applications' forty twenty."""
    import json
    import os

    import keras

    from tfprune.infra.safe_write import write_text

    commit_id = commit()  # the code that runs, before anyone commits during the sweep
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    rows = sweep(models(of) if names is None else names, target=target, log=log, latency=latency)
    seconds = time.perf_counter() - start
    run = {"commit": commit_id, "machine": {**(machine or {}), "keras": keras.__version__}, "seconds": seconds,
           "load_average": [load_before, os.getloadavg()[0]]}
    record = {"command": COMMAND, **run, "target": target, "rows": rows,
              "runs": {s: run for s in SOURCES if of in ("all", s)}}
    if of != "all" and json_path and os.path.exists(json_path):
        with open(json_path) as f:
            record = _merged(record, json.load(f), of)
    for path, text in ((markdown_path, markdown_of(record)), (json_path, json.dumps(record, indent=1, default=str))):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            write_text(path, text + "\n")
    return {"seconds": seconds, "passed": sum(r["status"] == STATUS_PASS for r in rows), "models": len(rows),
            "failed": [r["model"] for r in rows if r["status"] != STATUS_PASS], "markdown": markdown_path,
            "json": json_path}
