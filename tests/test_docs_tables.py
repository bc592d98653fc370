"""`make docs-tables` (tools/docs_tables.py): a marked block is regenerated from recorded
results, the rest of the file stays byte-identical; a table without results says so; every
table in the repository's Markdown is current."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("docs_tables", REPO / "tools" / "docs_tables.py")
docs_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(docs_tables)

BEFORE = "# Title\r\n\nSome text with a number 0.5 typed by hand.  \n\n"
AFTER = "\nTrailing text, no newline at the end"
TABLE = ("defense,seed,status,test_accuracy,ppa_acc1\n"
         "none,0,finished,0.99444,0.8\n"
         "label_smoothing(alpha=-0.05),0,finished,0.98889,0.92\n")


def _page(body: str, spec: str = "suite digits test_accuracy ppa_acc1 gmi_acc1") -> str:
    return f"{BEFORE}<!-- table:{spec} -->\n{body}<!-- /table -->{AFTER}"


def test_block_regenerated_from_a_fixture_rest_byte_identical(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "digits.csv").write_text(TABLE)
    readme = tmp_path / "README.md"
    readme.write_bytes(_page("| stale | 0.1 |\n").encode())

    assert docs_tables.main(["--root", str(tmp_path)]) == 0
    text = readme.read_bytes().decode()
    assert text.startswith(BEFORE) and text.endswith(f"<!-- /table -->{AFTER}")
    body = text[len(BEFORE):-len(f"<!-- /table -->{AFTER}")]
    assert "stale" not in body
    assert "| none | 0 | finished | 0.994 | 0.800 |" in body
    assert "| label_smoothing(alpha=-0.05) | 0 | finished | 0.989 | 0.920 |" in body
    assert "Not recorded in this run: gmi_acc1." in body

    docs_tables.main(["--root", str(tmp_path)])  # idempotent
    assert readme.read_bytes().decode() == text


def test_missing_results_are_said_not_invented(tmp_path):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_bytes(_page("| old | 1 |\n", spec="suite olivetti test_accuracy").encode())
    docs_tables.main(["--root", str(tmp_path)])
    text = page.read_bytes().decode()
    assert "No recorded results for this table (docs/results/olivetti.csv)" in text
    assert "| old |" not in text and text.startswith(BEFORE) and text.endswith(AFTER)


def test_record_copies_the_newest_report(tmp_path):
    results = tmp_path / "results"
    for run, accuracy in (("20260101-000000-aaaaaa", "0.5"), ("20260102-000000-bbbbbb", "0.75")):
        folder = results / "reports" / "digits" / run
        folder.mkdir(parents=True)
        (folder / "table.csv").write_text(f"defense,seed,status,test_accuracy\nnone,0,"
                                          f"finished,{accuracy}\n")
    (tmp_path / "README.md").write_text(_page("", spec="suite digits test_accuracy"))
    docs_tables.main(["--root", str(tmp_path), "--record", str(results)])
    text = (tmp_path / "README.md").read_text()
    assert "| none | 0 | finished | 0.750 |" in text
    assert "reports/digits/20260102-000000-bbbbbb/table.csv" in text


def test_repository_tables_are_current(tmp_path):
    """Regenerating the committed README and docs changes nothing: no table was typed or
    edited by hand since `make docs-tables` last ran."""
    files = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    blocks = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in docs_tables.BLOCK.finditer(text):
            blocks += 1
            fresh = docs_tables.render(match.group("spec").strip(), REPO)
            assert match.group("body") == fresh, f"{path.name}: <!-- table:{match['spec']} -->"
    assert blocks >= 4
    readme = (REPO / "README.md").read_text()
    assert [m["spec"].split()[0] for m in docs_tables.BLOCK.finditer(readme)].count("suite") >= 1


PAIRED = ("entry,seeds,status,ppa_acc1,ppa_acc1_vs_none,ppa_acc1_vs_none_low,"
          "ppa_acc1_vs_none_high,ppa_acc1_vs_none_verdict\n"
          "none,0 1 2,finished,0.8,,,,\n"
          "LS +0.1,0 1 2,finished,0.9,0.1,0.05,0.15,higher\n"
          "LS -0.05,0 1 2,finished,0.85,0.05,0.01,0.09,higher\n"
          "MID 0.01,0 1 2,finished,0.8,0.0,-0.1,0.1,no clear difference\n")


def test_paired_and_study_blocks_read_the_verdicts_by_the_decision_rule(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "digits.csv").write_text(PAIRED)
    page = tmp_path / "docs" / "studies" / "study.md"  # pages in sub-folders are rewritten too
    page.parent.mkdir()
    page.write_text(_page("", spec="paired digits ppa_acc1 gmi_acc1")
                    + _page("", spec="study digits ppa_acc1 gmi_acc1"))
    docs_tables.main(["--root", str(tmp_path)])
    text = page.read_text()
    assert "| MID 0.01 | 0 1 2 | +0.000 [-0.100, +0.100] no clear difference |" in text
    assert "| none |" not in text.split("<!-- table:study")[0]
    # +0.1 predicted higher and higher -> supported; -0.05 predicted lower but higher ->
    # contradicted; a metric without paired columns is not shown, never guessed.
    assert "| LS +0.1 | PPA Acc@1 | higher | +0.100 [+0.050, +0.150] | higher | **supported** |" \
        in text
    assert ("| LS -0.05 | PPA Acc@1 | lower | +0.050 [+0.010, +0.090] | higher | "
            "**contradicted** |") in text
    assert "| LS -0.05 | GMI Acc@1 | lower | not recorded | - | not shown |" in text
    assert [docs_tables.decision(v, "lower") for v in ("lower", "higher", "no clear difference")
            ] == ["supported", "contradicted", "not shown"]


def test_a_report_with_other_seeds_is_not_the_study_result(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "digits.csv").write_text(PAIRED.replace("0 1 2", "0"))
    page = tmp_path / "docs" / "study.md"
    page.write_text(_page("", spec="study digits ppa_acc1"))
    docs_tables.main(["--root", str(tmp_path)])
    text = page.read_text()
    assert "is not a run of this protocol" in text and "supported" not in text


def _record(label: str, per_seed: list[float], within: float, std: float) -> dict:
    seeds = [{"attacks": {"ppa": {"metrics": {
        "attack_acc1": v, "attack_acc1_ci_low": v - within, "attack_acc1_ci_high": v + within}}}}
        for v in per_seed]
    mean = sum(per_seed) / len(per_seed)
    return {"label": label, "seeds": seeds, "summary": {"attacks": {"ppa": {"metrics": {
        "attack_acc1": {"n": len(per_seed), "low": mean - 0.1, "high": mean + 0.1,
                        "std": std}}}}}}


def test_widths_block_says_which_randomness_dominates(tmp_path):
    folder = tmp_path / "leaderboard" / "entries" / "digits"
    folder.mkdir(parents=True)
    # Seed means spread 0.1 apart while each seed's attack interval is +-0.0196 -> seeds; the
    # reverse (tight seeds, wide within-seed intervals) -> attack.
    (folder / "a.json").write_text(json.dumps(_record("noisy seeds", [0.5, 0.6, 0.7], 0.0196,
                                                      0.1)))
    (folder / "b.json").write_text(json.dumps(_record("noisy attack", [0.5, 0.5, 0.5], 0.196,
                                                      0.05)))
    text = docs_tables.render("widths digits ppa:attack_acc1", tmp_path)
    assert "| noisy seeds | PPA Acc@1 | 3 | ±0.100 | 0.100 | ±0.020 | seeds (1% attack) |" in text
    assert "| noisy attack | PPA Acc@1 | 3 | ±0.100 | 0.050 | ±0.196 | attack (100% attack) |" \
        in text


def _faces_input(host_per_cpu_s: float, cpu_per_cpu_s: float, pil_per_cpu_s: float) -> dict:
    paths = {name: {"images_per_s_wall": v, "images_per_cpu_s": v, "ms_per_image_cpu": 1000 / v}
             for name, v in (("pil", pil_per_cpu_s), ("cached_host", host_per_cpu_s),
                             ("cached_cpu", cpu_per_cpu_s))}
    return {"machine": {"cpus": 2, "date": "2026-01-02T00:00:00+00:00",
                        "load_average_1min": 1.0},
            "command": "python -m perf.faces_input", "images": 8, "source_size": 32, "size": 24,
            "cache_build_ms_per_image": 1.0, "paths": paths,
            "speedup_vs_pil": {n: {"wall": p["images_per_s_wall"] / pil_per_cpu_s,
                                   "cpu_time": p["images_per_cpu_s"] / pil_per_cpu_s}
                               for n, p in paths.items() if n != "pil"}}


def _perf(root: Path, name: str, data: dict) -> None:
    folder = root / "perf" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {start}"))


def test_faces_targets_without_a_steady_gpu_run_say_not_measured(tmp_path):
    # CPU share 5x the PIL path per core (met), the all-CPU cached path 0.9x (not met).
    _perf(tmp_path, "faces_input", _faces_input(500.0, 90.0, 100.0))
    text = docs_tables.render("faces-targets", tmp_path)
    for target in ("ResNet-152 bf16", "Inception-v3 bf16", "PPA at the paper's sizes"):
        assert "**not measured on a GPU**" in _row(text, target)
    assert "the file does not exist" in text
    host = _row(text, "input path per CPU core")
    assert "5.00x (500 vs 100 images per CPU-second" in host and "**met**" in host
    assert "2026-01-02, 2 CPU cores, no GPU" in host
    assert "0.90x" in _row(text, "the same, `cached`") and "**not met**" in _row(
        text, "the same, `cached`")
    # A smoke run of the steady script on the CPU is a check, not a GPU figure.
    _perf(tmp_path, "faces_gpu_steady", {"device": "cpu", "smoke": True,
                                         "resnet152_bf16": {"images_per_s": 9000.0}})
    text = docs_tables.render("faces-targets", tmp_path)
    assert "**not measured on a GPU**" in _row(text, "ResNet-152 bf16") and "9,000" not in text


def test_faces_targets_read_the_steady_gpu_run(tmp_path):
    _perf(tmp_path, "faces_gpu_steady", {
        "command": "python -m perf.faces_gpu --steady", "device": "NVIDIA H200",
        "smoke": False, "stopped": "time limit reached",
        "resnet152_bf16": {"images_per_s": 1600.0, "gpu_utilisation_mean": 93.0},
        "inception_v3_bf16": {"images_per_s": 1100.0}})
    _perf(tmp_path, "faces_gpu", {"device": "NVIDIA H200",
                                  "resnet152_bf16": {"train_images_per_s": 248.0}})
    text = docs_tables.render("faces-targets", tmp_path)
    resnet = _row(text, "ResNet-152 bf16")
    assert "1,600 img/s (`perf/results/faces_gpu_steady.json`), GPU utilisation 93 %" in resnet
    assert "**met**" in resnet and "NVIDIA H200" in resnet and "| 248 img/s |" in resnet
    assert "1,100 img/s" in _row(text, "Inception-v3") and "**not met**" in _row(
        text, "Inception-v3")
    ppa = _row(text, "PPA")
    assert "**not measured**" in ppa and "stopped at its time limit" in ppa
    assert "neither steady state nor the current code" in text
    assert "- (no `perf/results/faces_input.json`)" in _row(text, "input path per CPU core")


def test_toy_reference_sets_the_recorded_report_beside_the_notebook(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "toy.csv").write_text(
        "entry,alpha,steps,distance_nearest\nLS 0,0.0,700,3.0\nLS -0.05,-0.05,60,6.5\n")
    text = docs_tables.render("toy-reference", tmp_path)
    assert "| 0 | 763, 3.23 | 700, 3.00 |" in text
    assert "| -0.05 | 53, 6.75 | 60, 6.50 |" in text
    assert "| +0.05 | 3113, 0.65 | not recorded |" in text


def test_toy_time_splits_the_end_to_end_figure(tmp_path):
    toy = {"wall_s": 30.0, "run_wall_s": 24.0, "trial_work_s": 22.0, "parallel_slots": 2.0,
           "trials_run": 6.0, "first_trial_startup_s": 4.5, "cpu_s": 50.0, "cores": 2,
           "cpu_floor_s": 25.0, "load_average_1min_before": 0.1,
           "wall_s_runs": [34.0, 30.0, 28.0]}
    machine = {"date": "2026-01-02T00:00:00+00:00", "cpus": 2}
    _perf(tmp_path, "end_to_end", {"machine": machine, "targets": {"toy_wall_s": 20.0},
                                   "suites": {"toy": toy}})
    text = docs_tables.render("toy-time", tmp_path)
    assert ("| 30.0 s (median of 3 runs: 34, 30, 28 s) | the figure the target is about "
            "(target <= 20 s) |") in _row(
        text, "process start to exit")
    assert "| 6.0 s |" in _row(text, "outside the run")
    assert "| 11.0 s |" in _row(text, "the same on 2 slots")
    assert "50.0 CPU-s | at least 25.0 s of wall time on 2 cores" in _row(text, "CPU time")
    del toy["cpu_s"]  # an older file without the CPU figure: said, not invented
    _perf(tmp_path, "end_to_end", {"machine": machine, "targets": {}, "suites": {"toy": toy}})
    text = docs_tables.render("toy-time", tmp_path)
    assert "No recorded results" in text and "CPU-s" not in text
