"""The keras.applications zoo sweep (issue 33): every constructor `keras.applications` exports, gated,
costed, masked to 50% FLOPs and compacted, masked == compact checked on each.

`constructors()` enumerates the models from the module itself (a name starting with a capital letter
that is callable), so a new Keras version's models join the sweep by themselves; `family(name)` is the
name of the module that defines the constructor (``convnext``, ``mobilenet_v3``, ...).
`sweep_one(name)` runs one model and returns its row (a dict); no exception escapes it, a failure is
the row's ``status`` and ``error``. `sweep(names=None)` returns the rows of all (or of ``names``).
`tests/test_zoo_sweep.py` asserts on these rows and `tfprune bench --only zoo` writes them as
`docs/zoo.md` (+ `docs/zoo.json`) with `write_table`, so the table and the test cannot disagree.

Per model: built with ``weights=None``, 10 classes, no classifier activation, at the smallest of
`INPUT_SIZES` its constructor accepts; BatchNormalization statistics and ConvNeXt's LayerScale set from
a seeded random draw (a fresh model's identity BN / 1e-6 LayerScale would hide slicing mistakes);
`auto_gate` -> `ChannelGraph` -> `CostModel` -> kept counts projected onto ``target`` FLOPs (uniform
start, L1 importance; where the target is out of reach every group loses ``max_ratio``) -> masks ->
`compact_model`; the compact model's counted FLOPs must equal the cost model's prediction for the masks.
"""

import collections
import inspect as pyinspect
import re
import time
import traceback
import warnings

INPUT_SIZES = (32, 75, 96, 224)  # tried in order: the first the constructor accepts is used
TOLERANCE = 1e-4  # masked vs compact, largest difference relative to the masked output's largest value
STATUS_PASS, STATUS_FAIL, STATUS_ERROR = "pass", "fail", "error"


def constructors():
    """Every model constructor of `keras.applications`, sorted by name."""
    import keras

    return sorted(n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n)))


def family(name):
    """The keras.applications module defining constructor ``name`` (e.g. ``efficientnet_v2``)."""
    import keras

    return getattr(keras.applications, name).__module__.rsplit(".", 1)[-1]


def build(name, seed=0, input_size=None):
    """(model, input size): ``keras.applications.<name>`` at ``input_size``, or at the smallest size of
    `INPUT_SIZES` it builds at."""
    import keras

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
    for layer in model.layers:
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


def summarize_barriers(messages):
    """Barrier warnings grouped by reason: the layer names (quoted) are dropped, equal reasons counted.

    Returns a list of (count, reason), most frequent first."""
    reasons = collections.Counter(re.sub(r"'[^']*'", "'…'", m).strip() for m in messages)
    return [(n, reason) for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]


def _relative_error(a, b):
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(1e-12, np.abs(b).max()))


def _masks_at(cost, graph, target, max_ratio):
    """Masks at ``target`` FLOPs (every group at ``max_ratio`` where the target is out of reach)."""
    import numpy as np

    from tfprune.cost import budget
    from tfprune.errors import TfpruneError
    from tfprune.structure import masks as mask_lib
    from tfprune.structure.importance import channel_importance

    try:
        kept, _ = budget.project_to_budget(np.zeros(len(cost.group_names)), cost, target, max_ratio=max_ratio)
        reached = True
    except TfpruneError:
        kept = mask_lib.kept_from_ratios(np.full(len(cost.group_names), max_ratio), cost.group_sizes)
        reached = False
    return mask_lib.masks_from_kept(kept, cost.group_names, channel_importance(graph)), reached


def _prune(model, size, target, max_ratio, seed):
    """auto_gate -> cost -> masks -> compact on one built model; the measured part of its row."""
    import numpy as np

    from tfprune.cost.flops import CostModel
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
    cost = CostModel(gated, graph)
    full = cost.full.flops
    fixed = cost.cost_of_kept(np.zeros(len(cost.group_names))).flops if cost.group_names else full
    masks, reached = _masks_at(cost, graph, target, max_ratio) if cost.group_names else ({}, False)
    mask_lib.apply_masks(gated, masks)
    compact = compact_model(gated, graph=graph)
    error = _relative_error(compact(x, training=False), gated(x, training=False))
    predicted = cost.cost(masks).flops
    counted = CostModel(compact, ChannelGraph(compact, warn=False)).full.flops
    messages = [str(w.message) for w in caught]
    return dict(groups=len(cost.group_names), mflops=full / 1e6, prunable_share=1.0 - fixed / full,
                flops_kept=predicted / full, target_reached=reached, gate_error=gate_error, error=error,
                flops_match=bool(np.isclose(counted, predicted, rtol=1e-9)), barriers=len(messages),
                barrier_reasons=summarize_barriers(messages))


def sweep_one(name, target=0.5, max_ratio=0.9, seed=0, input_size=None):
    """One constructor's row, at ``input_size`` (default: the smallest of `INPUT_SIZES` it accepts); never
    raises (a failure is ``status`` "error" with the exception and its last traceback lines in
    ``error_message``)."""
    import keras

    start = time.perf_counter()
    row = dict(model=name, family=None, input=None, status=STATUS_ERROR, error_message="")
    try:
        row["family"] = family(name)
        keras.utils.clear_session()
        model, size = build(name, seed, input_size)
        row["input"] = size
        row.update(_prune(model, size, target, max_ratio, seed))
        problems = []
        if not row["error"] <= TOLERANCE:
            problems.append(f"masked vs compact relative error {row['error']:.2e} > {TOLERANCE:g}")
        if not row["gate_error"] <= TOLERANCE:
            problems.append(f"auto_gate changed the outputs (relative {row['gate_error']:.2e})")
        if not row["flops_match"]:
            problems.append("the compact model's FLOPs differ from the cost model's prediction")
        row["status"] = STATUS_FAIL if problems else STATUS_PASS
        row["error_message"] = "; ".join(problems)
    except Exception as e:  # noqa: BLE001 -- the sweep reports every failure as a row
        row["error_message"] = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc().splitlines(True)[-8:])
    row["seconds"] = time.perf_counter() - start
    return row


def sweep(names=None, target=0.5, log=None):
    """Rows of `sweep_one` for ``names`` (default: every constructor of `constructors()`)."""
    rows = []
    for name in names if names is not None else constructors():
        rows.append(sweep_one(name, target=target))
        if log:
            r = rows[-1]
            log(f"{name}: {r['status']} in {r['seconds']:.1f} s" + (f" ({r['error_message'][:200]})"
                                                                    if r["error_message"] else ""))
    return rows


# ------------------------------------------------------------------------------------------ the table

COMMAND = "tfprune bench --only zoo"


def commit():
    """The checked-out commit (short hash, "+dirty" when tracked files differ), or "unknown"."""
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _reasons_cell(row):
    if not row.get("barrier_reasons"):
        return "none"
    return "<br>".join(f"{n} x {reason}".replace("|", "\\|") for n, reason in row["barrier_reasons"])


def _row_line(r):
    if r["status"] == STATUS_ERROR:
        message = r["error_message"].splitlines()[0].replace("|", "\\|")
        return f"| {r['model']} | {r['input'] or '-'} | - | - | - | - | - | **error**: {message} |"
    kept = f"{r['flops_kept']:.1%}" + ("" if r["target_reached"] else " (target out of reach)")
    status = "pass" if r["status"] == STATUS_PASS else f"**fail**: {r['error_message']}"
    return (f"| {r['model']} | {r['input']} | {r['groups']} | {r['prunable_share']:.1%} | {kept} | "
            f"{r['error']:.1e} | {_reasons_cell(r)} | {status} |")


def markdown(rows, machine, seconds, target=0.5, commit_id=None):
    """The coverage table (docs/zoo.md) of ``rows``, stating the command, commit (default: the checked-out
    one) and machine."""
    passed = sum(r["status"] == STATUS_PASS for r in rows)
    families = collections.OrderedDict()
    for r in sorted(rows, key=lambda r: (r["family"] or "", r["model"])):
        families.setdefault(r["family"] or "?", []).append(r)
    lines = [
        "# keras.applications coverage",
        "",
        f"Generated by `{COMMAND}` (also writes `docs/zoo.json`, the rows); do not edit by hand. "
        f"Commit `{commit_id or commit()}`; {machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} CPUs, "
        f"{machine.get('gpus', 0)} GPUs, TensorFlow {machine.get('tensorflow', '?')}, "
        f"Keras {machine.get('keras', '?')}; the sweep took {seconds / 60:.1f} min.",
        "",
        f"Every constructor `keras.applications` exports ({len(rows)}; enumerated from the module, so a new "
        "Keras version's models join by themselves), built with `weights=None`, 10 classes, at the smallest "
        f"of {', '.join(map(str, INPUT_SIZES))} pixels square it accepts, BatchNormalization statistics and "
        f"LayerScale drawn at random: `auto_gate` -> `CostModel` -> {target:.0%} FLOPs (uniform ratios "
        "projected onto the budget, L1 importance) -> `compact_model`. "
        f"**{passed} of {len(rows)} pass**: masked == compact within {TOLERANCE:g} relative, the gated model "
        "equal to the original, and the compact model's counted FLOPs equal to the cost model's prediction. "
        "`tests/test_zoo_sweep.py` runs the same `tfprune.studies.zoo.sweep` (`pytest -m slow`).",
        "",
        "Columns: *input* the square input size; *groups* the prunable channel groups; *prunable* the share "
        "of FLOPs that scales with some group's channels (1 - FLOPs left when every group is emptied); "
        f"*FLOPs kept* after pruning to the {target:.0%} target; *error* the largest |compact - masked| over "
        "the largest |masked|; *barriers* the warnings of `auto_gate` / `ChannelGraph` (layers left whole), "
        "grouped by reason with layer names elided. TFLite parity and latency are not measured here.",
        "",
    ]
    for fam, members in families.items():
        lines += [f"## {fam}", "",
                  "| model | input | groups | prunable | FLOPs kept | error | barriers (why) | result |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [_row_line(r) for r in members] + [""]
    return "\n".join(lines)


def markdown_of(record):
    """docs/zoo.md from the record docs/zoo.json holds (the same text `bench_zoo` writes beside it)."""
    return markdown(record["rows"], record["machine"], record["seconds"], record.get("target", 0.5),
                    record["commit"])


def bench_zoo(markdown_path="docs/zoo.md", json_path="docs/zoo.json", names=None, target=0.5, machine=None,
              log=print):
    """`tfprune bench --only zoo`: the sweep, written as the Markdown table and the JSON of its rows."""
    import json
    import os

    import keras

    from tfprune.infra.safe_write import write_text

    commit_id = commit()  # the code that runs, before anyone commits during the sweep
    start = time.perf_counter()
    rows = sweep(names, target=target, log=log)
    seconds = time.perf_counter() - start
    machine = {**(machine or {}), "keras": keras.__version__}
    record = {"command": COMMAND, "commit": commit_id, "machine": machine, "seconds": seconds, "target": target,
              "rows": rows}
    for path, text in ((markdown_path, markdown_of(record)), (json_path, json.dumps(record, indent=1, default=str))):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            write_text(path, text + "\n")
    return {"seconds": seconds, "passed": sum(r["status"] == STATUS_PASS for r in rows), "models": len(rows),
            "failed": [r["model"] for r in rows if r["status"] != STATUS_PASS], "markdown": markdown_path,
            "json": json_path}
