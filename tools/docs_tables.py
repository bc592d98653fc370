"""Regenerate every results table in README.md and docs/*.md from recorded results
(`make docs-tables`). Nothing in those tables is typed by hand.

A table is a marked block in the Markdown::

    <!-- table:KIND ARGS -->
    ...generated...
    <!-- /table -->

Only the text between the markers is rewritten; the rest of each file stays byte-identical.
Kinds:

- ``suite SUITE COLUMN...``: the recorded report of a suite, ``docs/results/SUITE.csv`` (a
  run's ``table.csv``, copied there by ``--record``), one row per trial, the named columns;
- ``paired SUITE COLUMN...``: the same report's paired differences to ``none`` (entry minus
  ``none`` on the same seeds and attacked classes) with their interval and verdict word;
- ``study SUITE COLUMN...``: the pre-registered label-smoothing questions on that report
  (alpha = -0.05 predicted lower, alpha = +0.1 predicted higher than ``none``), each verdict
  read by the study's decision rule: supported, contradicted or not shown;
- ``widths SUITE ATTACK:METRIC...``: from the committed entry records
  (``leaderboard/entries/SUITE/``), the interval over seeds beside the within-seed intervals
  of each seed's attack, and which of the two sources of randomness dominates;
- ``budgets``: ``perf/results/attack_budgets.json``, Acc@1 of ``none`` on seed 0 and its
  within-seed interval at each attack budget;
- ``perf``: the CPU figures of ``perf/results/{harness_overhead,ray_parallel,end_to_end}.json``;
- ``faces-gpu``: ``perf/results/faces_gpu.json`` (measured on a GPU, with its device and date).
- ``toy-reference``: the toy suite's attack steps and distance per alpha (``toy.csv``) beside
  the paper's reference notebook's figures;
- ``faces-input``: ``perf/results/faces_input.json``, CPU time per image of the faces input
  paths (per core) against the PIL path;
- ``faces-targets``: issue 22's targets for the faces suite, each against its figure in
  ``perf/results/faces_gpu_steady.json`` (steady state on a GPU; "not measured on a GPU" when
  that file is missing or a CPU smoke run) or ``faces_input.json``, with date and device; the
  earlier first-epoch run (``faces_gpu.json``) as context only;
- ``toy-time``: where the ``toy`` suite's end-to-end time goes (``end_to_end.json``): the run,
  what lies outside it, the trials' own work and the CPU time of every process.

A block whose recorded results are missing says so instead of showing numbers.

``--record DIR`` first copies the newest ``reports/SUITE/RUN/table.csv`` of each suite in the
results folder DIR to ``docs/results/SUITE.csv`` (with ``SUITE.json``: where it came from and
when), so the committed tables change only when results are recorded on purpose.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table:(?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
#: Column headers of the suite tables; a column not listed is shown by its name.
HEADERS = {
    "test_accuracy": "test acc.", "ece": "ECE", "class_separation": "class separation",
    "ppa_acc1": "PPA Acc@1", "gmi_acc1": "GMI Acc@1", "ppa_acc5": "PPA Acc@5",
    "gmi_acc5": "GMI Acc@5", "ppa_delta_eval": "PPA δ eval", "gmi_delta_eval": "GMI δ eval",
    "ppa_fid": "PPA FID", "gmi_fid": "GMI FID", "distance_nearest": "distance to class 2",
    "steps": "attack steps", "ppa_target_conf": "PPA target conf.",
    "gmi_target_conf": "GMI target conf.", "rlb_mi_acc1": "RLB-MI Acc@1",
    "brep_mi_acc1": "BREP-MI Acc@1",
}


def fmt(value: object) -> str:
    """One rule for every number: shares in [0, 1] with 3 decimals, others 3 significant."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else "-"
    if not math.isfinite(number):
        return "-"
    if number.is_integer() and abs(number) >= 1:
        return f"{number:.0f}"
    if 0 <= number <= 1:
        return f"{number:.3f}"
    return f"{number:.3g}"


def with_interval(record: dict[str, str], column: str) -> str:
    """``value [low, high]`` when the report recorded the column's interval, else the value."""
    low, high = record.get(f"{column}_ci_low"), record.get(f"{column}_ci_high")
    if low in (None, "") or high in (None, ""):
        return fmt(record.get(column))
    return f"{fmt(record.get(column))} [{fmt(low)}, {fmt(high)}]"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _missing(what: str, how: str) -> str:
    return f"*No recorded results for this table ({what}). {how}*\n"


def suite_table(root: Path, suite: str, columns: list[str]) -> str:
    table, meta = root / "docs" / "results" / f"{suite}.csv", root / "docs" / "results" / \
        f"{suite}.json"
    if not table.is_file():
        return _missing(f"docs/results/{suite}.csv", f"Run `lsmia-bench run --suite {suite}`, "
                        f"then `make docs-tables RESULTS=results`.")
    with table.open(newline="") as f:
        records = list(csv.DictReader(f))
    label = "entry" if records and "entry" in records[0] else "defense"
    present = [c for c in columns if records and c in records[0]]
    absent = [c for c in columns if c not in present]
    rows = [[r[label], r.get("seeds", r.get("seed", "-")) or "-", r.get("status", "-")]
            + [with_interval(r, c) for c in present] for r in records]
    out = markdown([label, "seeds", "status", *(HEADERS.get(c, c) for c in present)], rows)
    units = sorted({r["interval_unit"] for r in records if r.get("interval_unit")})
    if units:
        out += (f"\n[low, high]: 95 % bootstrap interval; over: {'; '.join(units)}. With one "
                "seed an interval shows attack randomness only.\n")
    info = json.loads(meta.read_text()) if meta.is_file() else {}
    source = info.get("source", f"docs/results/{suite}.csv")
    out += f"\nRecorded {info.get('recorded', '(date not recorded)')} from `{source}`"
    if info.get("machine"):
        out += f" on {info['machine']}"
    out += "."
    if absent:
        out += f" Not recorded in this run: {', '.join(absent)}."
    return out + "\n"


def _records(root: Path, suite: str) -> tuple[list[dict[str, str]], dict] | None:
    table = root / "docs" / "results" / f"{suite}.csv"
    if not table.is_file():
        return None
    meta = root / "docs" / "results" / f"{suite}.json"
    with table.open(newline="") as f:
        return list(csv.DictReader(f)), (json.loads(meta.read_text()) if meta.is_file() else {})


def _difference(record: dict[str, str], column: str) -> tuple[str, str]:
    """``mean [low, high]`` of a paired difference (signed) and its verdict word."""
    mean = record.get(f"{column}_vs_none")
    if mean in (None, ""):
        return "-", "-"
    low, high = record.get(f"{column}_vs_none_low"), record.get(f"{column}_vs_none_high")
    signed = [f"{float(v):+.3f}" if v not in (None, "") else "-" for v in (mean, low, high)]
    return f"{signed[0]} [{signed[1]}, {signed[2]}]", record.get(f"{column}_vs_none_verdict") \
        or "-"


def _source_line(suite: str, meta: dict) -> str:
    source = meta.get("source", f"docs/results/{suite}.csv")
    return f"\nRecorded {meta.get('recorded', '(date not recorded)')} from `{source}`.\n"


def paired_table(root: Path, suite: str, columns: list[str]) -> str:
    loaded = _records(root, suite)
    if loaded is None:
        return _missing(f"docs/results/{suite}.csv", f"Run `lsmia-bench run --suite {suite}`, "
                        f"then `make docs-tables RESULTS=results`.")
    records, meta = loaded
    present = [c for c in columns if records and f"{c}_vs_none" in records[0]]
    if not present:
        return _missing(f"paired differences in docs/results/{suite}.csv",
                        "The report has no `none` entry to compare with.")
    rows = []
    for r in records:
        if r.get("entry") in ("none", "(evaluation model)"):
            continue
        cells = [" ".join(_difference(r, c)) for c in present]
        rows.append([r.get("entry", "-"), r.get("seeds", "-") or "-", *cells])
    out = markdown(["entry", "seeds", *(f"Δ {HEADERS.get(c, c)} vs none" for c in present)],
                   rows)
    return out + ("\nΔ = entry - none, mean over seeds of the paired per-seed differences "
                  "[95 % bootstrap interval]; `lower`/`higher` when the interval excludes 0, "
                  "else `no clear difference`.\n") + _source_line(suite, meta)


#: The pre-registered questions: entry label -> the predicted verdict.
STUDY_QUESTIONS = {"LS -0.05": "lower", "LS +0.1": "higher"}
OPPOSITE = {"lower": "higher", "higher": "lower"}
#: The study's registered seeds: a recorded report made with others is not its result.
STUDY_SEEDS = ["0", "1", "2"]


def decision(verdict: str, predicted: str) -> str:
    """The study's rule: the whole interval on the predicted side -> supported, on the other
    side -> contradicted, else not shown."""
    if verdict == predicted:
        return "supported"
    if verdict == OPPOSITE[predicted]:
        return "contradicted"
    return "not shown"


def study_table(root: Path, suite: str, columns: list[str]) -> str:
    loaded = _records(root, suite)
    if loaded is None:
        return _missing(f"docs/results/{suite}.csv", "Run the commands of docs/studies/"
                        "label-smoothing-small-suites.md.")
    records, meta = loaded
    by_entry = {r.get("entry"): r for r in records}
    made_with = {e: re.findall(r"\d+", by_entry[e].get("seeds", "")) for e in STUDY_QUESTIONS
                 if e in by_entry}
    if not made_with or any(seeds != STUDY_SEEDS for seeds in made_with.values()):
        found = "; ".join(f"{e}: seeds {' '.join(s) or '-'}" for e, s in made_with.items())
        found = found or "no label-smoothing entries"
        return _missing(f"docs/results/{suite}.csv is not a run of this protocol ({found}; "
                        f"registered seeds {' '.join(STUDY_SEEDS)})",
                        "Run the commands of docs/studies/label-smoothing-small-suites.md.")
    rows = []
    for entry, predicted in STUDY_QUESTIONS.items():
        record = by_entry.get(entry)
        for column in columns:
            if record is None or f"{column}_vs_none" not in record:
                rows.append([entry, HEADERS.get(column, column), predicted, "not recorded",
                             "-", "not shown"])
                continue
            diff, verdict = _difference(record, column)
            rows.append([entry, HEADERS.get(column, column), predicted, diff, verdict,
                         f"**{decision(verdict, predicted)}**"])
    seeds = sorted({" ".join(s) for s in made_with.values()})
    return markdown(["entry", "metric", "predicted", "Δ vs none [95 % interval]", "verdict",
                     "decision"], rows) + (f"\nSeeds: {', '.join(seeds) or '-'}.\n"
                                            + _source_line(suite, meta))


#: The paper's reference notebook for its motivational example (Struppek et al., ICLR 2024,
#: Fig. 1): attack steps and distance to the nearest class-2 point per alpha.
TOY_NOTEBOOK = {"0": (763, 3.23), "+0.05": (3113, 0.65), "-0.05": (53, 6.75)}


def toy_reference_table(root: Path) -> str:
    loaded = _records(root, "toy")
    if loaded is None:
        return _missing("docs/results/toy.csv", "Run `lsmia-bench run --suite toy`, then "
                        "`make docs-tables RESULTS=results`.")
    records, meta = loaded
    ours = {("0" if float(r["alpha"]) == 0 else f"{float(r['alpha']):+g}"): r
            for r in records if r.get("alpha") not in (None, "")}
    rows = []
    for alpha, (steps, distance) in TOY_NOTEBOOK.items():
        r = ours.get(alpha)
        mine = f"{fmt(r.get('steps'))}, {float(r['distance_nearest']):.2f}" if r else \
            "not recorded"
        rows.append([alpha, f"{steps}, {distance:.2f}", mine])
    return markdown(["alpha", "notebook: steps, distance", "lsmia-bench: steps, distance"],
                    rows) + _source_line("toy", meta)


def _load(root: Path, name: str) -> dict | None:
    path = root / "perf" / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def perf_table(root: Path) -> str:
    harness, ray, end = (_load(root, n) for n in ("harness_overhead", "ray_parallel",
                                                  "end_to_end"))
    rows = []
    if harness:
        t, a = harness["training"], harness["attack_gmi"]
        rows.append(["training-loop throughput, harness / bare PyTorch", "`python -m "
                     "perf.harness_overhead`", ">= 0.95", f"{t['ratio']:.2f} "
                     f"({t['harness_samples_per_s']:.0f} vs {t['bare_samples_per_s']:.0f} "
                     "samples/s)", harness["machine"]["date"][:10]])
        rows.append(["attack-step throughput, GMI / bare loop", "same", ">= 0.95",
                     f"{a['ratio']:.2f} ({a['harness_steps_per_s']:.0f} vs "
                     f"{a['bare_steps_per_s']:.0f} steps/s)", harness["machine"]["date"][:10]])
    if ray:
        rows.append([f"{ray['trials']} toy trials, {ray['concurrent']} at a time vs one after "
                     "another", "`python -m perf.ray_parallel`", ">= 1.7x",
                     f"{ray['speedup']:.2f}x ({ray['parallel_s']:.1f} s vs "
                     f"{ray['sequential_s']:.1f} s)", ray["machine"]["date"][:10]])
    if end:
        date = end["machine"]["date"][:10]
        for suite, figures in end["suites"].items():
            efficiency = figures.get("orchestration_efficiency")
            rows.append([f"`{suite}`, default config, end to end",
                         f"`python -m perf.end_to_end --suites {suite}`", "-",
                         f"{figures['wall_s']:.0f} s" + _median_of(figures)
                         + (f", efficiency {efficiency:.2f}" if efficiency is not None else "")
                         + f", peak {figures['peak_rss_mib'] / 1024:.1f} GiB"
                         + (f", {figures['cpu_s']:.0f} CPU-s of all its processes (so at "
                            f"least {figures['cpu_floor_s']:.0f} s on {figures['cores']} "
                            "cores)" if "cpu_s" in figures else ""), date])
        titles = {"digits_efficiency": ("`digits` orchestration efficiency", "{:.2f}", ">= "),
                  "toy_wall_s": ("`toy` end to end", "{:.1f} s", "<= "),
                  "digits_cached_rerun_wall_s": ("fully cached `digits` re-run", "{:.1f} s",
                                                 "<= ")}
        for key, figure in end.get("against_targets", {}).items():
            title, form, sign = titles.get(key, (key, "{:.3g}", ""))
            met = "met" if figure.get("met") else "not met"
            rows.append([title, "`python -m perf.end_to_end`",
                         sign + form.format(figure["target"]),
                         f"{form.format(figure['measured'])} ({met})", date])
        for suite, figures in end["suites"].items():
            again = figures.get("rerun_new_record")
            if again:  # context: the same re-run when told to record the cached trials again
                rows.append([f"fully cached `{suite}` re-run with `--new-record` (a new MLflow "
                             "parent run of the cached trials)", "`python -m perf.end_to_end`",
                             "-", f"{again['wall_s']:.1f} s", date])
    if not rows:
        return _missing("perf/results/*.json", "Run the scripts in `perf/`.")
    machine = (harness or ray or end)["machine"]
    versions = machine["versions"]
    return markdown(["what", "script", "target", "measured", "date"], rows) + (
        f"\nMachine: {machine['cpus']} CPU cores, {machine['processor']}, no GPU; Python "
        f"{versions['python']}, torch {versions['torch']}, Ray {versions['ray']}, MLflow "
        f"{versions['mlflow']}. Load average at the end of each script is in its JSON file.\n")

#: Record metric names as the docs tables call them.
METRIC_NAMES = {"attack_acc1": "Acc@1", "attack_acc5": "Acc@5", "delta_eval": "δ eval"}


def widths_table(root: Path, suite: str, pairs: list[str]) -> str:
    folder = root / "leaderboard" / "entries" / suite
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    if not records:
        return _missing(f"leaderboard/entries/{suite}/", f"Record a run: `lsmia-bench "
                        f"leaderboard record --suite {suite}`.")
    rows = []
    for pair in pairs:
        attack, metric = pair.split(":")
        for record in records:
            summary = record["summary"]["attacks"].get(attack, {}).get("metrics", {}).get(metric)
            if not summary or summary.get("low") is None:
                continue
            within = []
            for seed in record["seeds"]:
                m = seed["attacks"].get(attack, {}).get("metrics", {})
                if m.get(f"{metric}_ci_low") is not None:
                    within.append((m[f"{metric}_ci_high"] - m[f"{metric}_ci_low"]) / 2)
            if not within:
                continue
            spread = summary.get("std")
            mean_within = sum(within) / len(within)
            # Share of the per-seed means' variance that attack randomness alone explains:
            # (within-seed half-width / 1.96)^2 against the variance across seeds.
            share = min(1.0, (mean_within / 1.96) ** 2 / spread**2) if spread else None
            name = f"{attack.upper()} {METRIC_NAMES.get(metric, metric)}"
            rows.append([record["label"], name, str(summary["n"]),
                         f"±{(summary['high'] - summary['low']) / 2:.3f}",
                         f"{spread:.3f}" if spread is not None else "-",
                         f"±{mean_within:.3f}",
                         "-" if share is None else ("attack" if share >= 0.5 else "seeds")
                         + f" ({share:.0%} attack)"])
    if not rows:
        return _missing(f"intervals in leaderboard/entries/{suite}/", "Record a multi-seed run.")
    return markdown(["entry", "metric", "seeds", "half-width over seeds", "SD of seed means",
                     "mean within-seed half-width", "dominated by"], rows) + (
        "\nWithin-seed: each seed's attack trial, its reconstructions resampled within class "
        "(attack randomness only). Over seeds: the report's interval. `dominated by` compares "
        "the within-seed standard error, (half-width / 1.96)^2, with the variance of the seed "
        "means.\n")


def budgets_table(root: Path) -> str:
    data = _load(root, "attack_budgets")
    if not data:
        return _missing("perf/results/attack_budgets.json", "Run `python -m perf.attack_budgets`.")
    rows = []
    for suite, budgets in data["suites"].items():
        for budget in budgets.values():
            for attack in ("ppa", "gmi"):
                f = budget.get(attack)
                if f:
                    rows.append([f"`{suite}`", attack.upper(), str(budget["per_class"]),
                                 f"{f['n']:.0f}", f"{fmt(f['acc1'])} [{fmt(f['ci_low'])}, "
                                 f"{fmt(f['ci_high'])}]", f"±{f['half_width']:.3f}"])
    return markdown(["suite", "attack", "per class", "reconstructions", "Acc@1 [95 % interval]",
                     "half-width"], rows) + (
        f"\nEntry `none`, seed 0, within-seed interval (attack randomness only); measured "
        f"{data['machine']['date'][:10]} by `python -m perf.attack_budgets`.\n")


def faces_gpu_table(root: Path) -> str:
    data = _load(root, "faces_gpu")
    if not data:
        return _missing("perf/results/faces_gpu.json", "Run `python -m perf.faces_gpu` on a "
                        "GPU.")
    rows = []
    for key, what in (("resnet152_fp32", "ResNet-152 fp32, first epoch"),
                      ("resnet152_bf16", "ResNet-152 bf16, first epoch"),
                      ("inception_v3_bf16", "Inception-v3 bf16 (299 px), first epoch")):
        for suffix, run in (("", "last run"), ("_run1", "first run")):
            part = data.get(key + suffix)
            if part:
                rows.append([what, run, f"{part['train_images_per_s']:.0f} img/s",
                             f"{part['peak_gpu_gib']:.1f} GiB"])
    ppa = data.get("ppa")
    if ppa:
        rows.append([f"PPA at the paper's sizes, {ppa['identities']} identities, through a "
                     "random stand-in generator", "last run",
                     f"{ppa['attack_s_per_identity']:.1f} s per identity",
                     f"{ppa['peak_gpu_gib']:.1f} GiB"])
    return markdown(["what", "run", "measured", "peak GPU memory"], rows) + (
        f"\nMeasured on one {data['device']} ({data['cpus']} CPU cores, torch "
        f"{data['torch']}; file committed {_committed(root, 'perf/results/faces_gpu.json')}) on "
        f"{data['data']['identities']} generated identities x "
        f"{data['data']['images_per_identity']} images at {data['data']['size']} px, random "
        f"weights: first-epoch figures including warm-up, not steady state.\n")


def faces_input_table(root: Path) -> str:
    data = _load(root, "faces_input")
    if not data:
        return _missing("perf/results/faces_input.json", "Run `python -m perf.faces_input`.")
    paths, speedups = data["paths"], data["speedup_vs_pil"]
    titles = {"pil": "`pil`: PIL decode, Resize, RandomResizedCrop, ColorJitter, flip per image",
              "cached_host": "`cached`, the CPU's share when a GPU augments (draws, crops "
                             "gathered from the cache)",
              "cached_cpu": "`cached`, all on the CPU (augmentation included)"}
    rows = []
    for name, figures in paths.items():
        ratio = speedups.get(name, {}).get("cpu_time", 1.0)
        rows.append([titles.get(name, f"`{name}`"), f"{figures['ms_per_image_cpu']:.2f} ms",
                     f"{figures['images_per_cpu_s']:,.0f}", _times(ratio),
                     f"{figures['images_per_s_wall']:,.0f}"])
    machine = data["machine"]
    return markdown(["input path", "CPU time per image", "images per CPU-second (per core)",
                     "vs `pil`, per core", "images/s (wall)"], rows) + (
        f"\nOne-time decode into the cache: {data['cache_build_ms_per_image']:.1f} ms per image. "
        f"{data['images']} generated {data['source_size']} px JPEG faces to {data['size']} px, "
        f"one process, one torch thread, paths interleaved, best of the repeats: "
        f"`{data['command']}`, {machine['date'][:10]}, {machine['cpus']} CPU cores, no GPU "
        f"(load average {machine['load_average_1min']:.1f} at the end).\n")


#: Issue 22's targets for the faces suite: (key in faces_gpu_steady.json, what, target,
#: figure in the file, unit, lower is better).
GPU_TARGETS = (
    ("resnet152_bf16", "ResNet-152 bf16 training, 224 px, steady state, one H200",
     1500.0, "images_per_s", "img/s", False),
    ("inception_v3_bf16", "Inception-v3 bf16 training, steady state, one H200", 1200.0,
     "images_per_s", "img/s", False),
    ("ppa", "PPA at the paper's sizes, one H200", 10.0, "s_per_identity", "s per identity",
     True),
)
#: The same figure in the earlier first-epoch run (faces_gpu.json), shown as context only.
EARLIER = {"resnet152_bf16": ("train_images_per_s", "img/s"),
           "inception_v3_bf16": ("train_images_per_s", "img/s"),
           "ppa": ("attack_s_per_identity", "s per identity")}
INPUT_TARGET = 4.0


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def _figure(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def _earlier(data: dict | None, key: str) -> str:
    if not data:
        return "-"
    field, unit = EARLIER[key]
    runs = [data[k][field] for k in (key, key + "_run1") if data.get(k, {}).get(field)]
    return " / ".join(_figure(v, unit) for v in runs) or "-"


def _steady_date(root: Path, data: dict) -> str:
    date = data.get("date") or data.get("machine", {}).get("date")
    if date:
        return str(date)[:10]
    committed = _committed(root, "perf/results/faces_gpu_steady.json")
    return committed if committed != "date unknown" else "not committed yet"


def faces_targets_table(root: Path) -> str:
    steady, earlier, cpu = (_load(root, n) for n in ("faces_gpu_steady", "faces_gpu",
                                                     "faces_input"))
    # A smoke run or a run without a GPU is a check of the script, not a measurement.
    on_gpu = bool(steady) and not steady.get("smoke") and steady.get("device", "cpu") != "cpu"
    source = "`perf/results/faces_gpu_steady.json`"
    rows = []
    for key, what, target, field, unit, lower in GPU_TARGETS:
        sign = "<=" if lower else ">="
        part = steady.get(key) if on_gpu else None
        if not on_gpu:
            measured, verdict, when = "-", "**not measured on a GPU**", "-"
        elif not part or part.get(field) is None:
            stopped = " (the run stopped at its time limit)" if steady.get("stopped") else ""
            measured, verdict = f"not in {source}{stopped}", "**not measured**"
            when = f"{_steady_date(root, steady)}, {steady['device']}"
        else:
            value = float(part[field])
            measured = f"{_figure(value, unit)} ({source})"
            if part.get("gpu_utilisation_mean") is not None:
                measured += f", GPU utilisation {part['gpu_utilisation_mean']:.0f} %"
            met = value <= target if lower else value >= target
            verdict = "**met**" if met else "**not met**"
            when = f"{_steady_date(root, steady)}, {steady['device']}"
        rows.append([what, f"{sign} {_figure(target, unit)}", measured, verdict, when,
                     _earlier(earlier, key)])
    if cpu:
        base = cpu["paths"]["pil"]["images_per_cpu_s"]
        when = f"{cpu['machine']['date'][:10]}, {cpu['machine']['cpus']} CPU cores, no GPU"
        for name, what in (("cached_host", "input path per CPU core vs PIL + ColorJitter: "
                                           "the CPU's share of `cached` when a GPU augments"),
                           ("cached_cpu", "the same, `cached` with the augmentation on the CPU "
                                          "(a CPU run)")):
            per_core = cpu["paths"][name]["images_per_cpu_s"]
            ratio = per_core / base
            rows.append([what, f">= {INPUT_TARGET:.0f}x", f"{_times(ratio)} ({per_core:,.0f} vs "
                         f"{base:,.0f} images per CPU-second; `perf/results/faces_input.json`)",
                         "**met**" if ratio >= INPUT_TARGET else "**not met**", when, "-"])
    else:
        rows.append(["input path per CPU core vs PIL + ColorJitter", f">= {INPUT_TARGET:.0f}x",
                     "- (no `perf/results/faces_input.json`)", "**not measured**", "-", "-"])
    out = markdown(["target", "goal", "measured (file)", "verdict", "date, device",
                    "earlier first-epoch run (context)"], rows)
    if not on_gpu:
        why = ("only a smoke run on the CPU is recorded there" if steady else "the file does "
               "not exist")
        out += (f"\nThe GPU rows come from `python -m perf.faces_gpu --steady` ({source}); "
                f"{why}, so no steady-state GPU figure is reported.")
    else:
        out += (f"\nGPU rows: `{steady.get('command', 'python -m perf.faces_gpu --steady')}`; "
                "PPA through a random StyleGAN-like stand-in generator (lighter than NVlabs' "
                "FFHQ network), so its seconds per identity are a lower bound.")
    if earlier:
        out += (f" Context column: `perf/results/faces_gpu.json` (one {earlier['device']}, "
                f"committed {_committed(root, 'perf/results/faces_gpu.json')}; last run / first "
                "run): first-epoch figures including warm-up, with the DataLoader (PIL) input "
                "path and one identity per PPA call, i.e. neither steady state nor the current "
                "code.")
    return out + (" The input rows count CPU time only; the GPU's share of the cached path "
                  "(copy, resize, jitter, flip) is inside the steady-state training rows.\n")


def _median_of(figures: dict) -> str:
    """" (median of N runs: a, b, c s)" when the script repeated the suite; else empty. The
    other figures of the row are that median run's."""
    runs = figures.get("wall_s_runs") or []
    if len(runs) < 2:
        return ""
    return f" (median of {len(runs)} runs: {', '.join(f'{w:.0f}' for w in runs)} s)"


def toy_time_table(root: Path) -> str:
    """Where the ``toy`` suite's end-to-end time goes, from ``perf/results/end_to_end.json``."""
    end = _load(root, "end_to_end")
    toy = (end or {}).get("suites", {}).get("toy")
    needed = ("wall_s", "run_wall_s", "trial_work_s", "parallel_slots", "cpu_s")
    if not toy or any(key not in toy for key in needed):
        return _missing("perf/results/end_to_end.json (toy, with cpu_s)",
                        "Run `python -m perf.end_to_end --suites toy`.")
    slots = toy["parallel_slots"]
    target = end.get("targets", {}).get("toy_wall_s")
    rows = [
        ["process start to exit", f"{toy['wall_s']:.1f} s" + _median_of(toy),
         "the figure the target is about" + (f" (target <= {target:.0f} s)" if target else "")],
        ["the run itself, from planning to the written report", f"{toy['run_wall_s']:.1f} s",
         "Ray's start, the trials, the report"],
        ["outside the run", f"{toy['wall_s'] - toy['run_wall_s']:.1f} s",
         "Python, torch and the project imported and the config checked before it; Ray "
         "stopped after it"],
        ["first trial's start-up", f"{toy.get('first_trial_startup_s', math.nan):.1f} s",
         "from handing the first trial to Ray Tune until a worker began it (worker process "
         "start, imports)"],
        ["the trials' own work, summed", f"{toy['trial_work_s']:.1f} s",
         f"{toy.get('trials_run', 0):.0f} trials; each target is 5000 full-batch SGD steps"],
        [f"the same on {slots:.0f} slots", f"{toy['trial_work_s'] / slots:.1f} s",
         "the trials' share of the wall time if no slot ever waited"],
        ["CPU time of every process (driver, Ray, workers)", f"{toy['cpu_s']:.1f} CPU-s",
         f"at least {toy['cpu_floor_s']:.1f} s of wall time on {toy['cores']} cores even "
         "with every core busy throughout"],
    ]
    return markdown(["part", "measured", "what it is"], rows) + (
        f"\nOne run of `python -m perf.end_to_end` on {end['machine']['date'][:10]} "
        f"({end['machine']['cpus']} CPU cores; load average before it "
        f"{toy.get('load_average_1min_before', math.nan):.1f}).\n")


def _committed(root: Path, path: str) -> str:
    """The date of the commit that last changed a recorded file's content (its JSON has no
    date); a move (benchmarks/ became perf/) is not a new measurement."""
    done = subprocess.run(["git", "log", "-1", "--follow", "--diff-filter=AM", "--format=%cs",
                           "--", path], cwd=root,
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "date unknown"


#: Table kinds that take a suite and a list (``<!-- table:KIND SUITE ARG ... -->``).
SUITE_KINDS = {"suite": suite_table, "paired": paired_table, "study": study_table,
               "widths": widths_table}
#: Table kinds made from recorded files alone (``<!-- table:KIND -->``).
FILE_KINDS = {"budgets": budgets_table, "perf": perf_table, "faces-gpu": faces_gpu_table,
              "toy-reference": toy_reference_table, "faces-input": faces_input_table,
              "faces-targets": faces_targets_table, "toy-time": toy_time_table}


def render(spec: str, root: Path) -> str:
    kind, *args = spec.split()
    if kind in SUITE_KINDS and args:
        return SUITE_KINDS[kind](root, args[0], args[1:])
    if kind in FILE_KINDS:
        return FILE_KINDS[kind](root)
    raise SystemExit(f"unknown table kind {kind!r} in <!-- table:{spec} -->")


def rewrite(path: Path, root: Path) -> bool:
    """Rewrite the marked blocks of one file; True when the file changed."""
    text = path.read_bytes().decode("utf-8")  # bytes: line endings outside blocks stay as they are
    new = BLOCK.sub(lambda m: m.group(1) + render(m.group("spec").strip(), root) + m.group(4),
                    text)
    if new != text:
        path.write_bytes(new.encode("utf-8"))
    return new != text


def record(results: Path, root: Path) -> list[str]:
    """Copy the newest report table of each suite in a results folder to docs/results/."""
    done = []
    for suite_dir in sorted((results / "reports").glob("*")):
        tables = sorted(suite_dir.glob("*/table.csv"), key=lambda p: p.parent.name)
        if not tables:
            continue
        newest = tables[-1]
        target = root / "docs" / "results"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(newest, target / f"{suite_dir.name}.csv")
        stamp = datetime.fromtimestamp(newest.stat().st_mtime, UTC).strftime("%Y-%m-%d")
        meta = {"source": f"reports/{suite_dir.name}/{newest.parent.name}/table.csv",
                "recorded": stamp}
        (target / f"{suite_dir.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        done.append(suite_dir.name)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="results folder whose newest report of "
                        "each suite is copied to docs/results/ first")
    parser.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.record:
        print("recorded:", ", ".join(record(args.record, root)) or "nothing")
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    changed = [str(p.relative_to(root)) for p in files if p.is_file() and rewrite(p, root)]
    print("rewritten:", ", ".join(changed) or "nothing (tables already current)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
