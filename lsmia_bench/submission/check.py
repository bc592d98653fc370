"""The plug-in check of a submission, in a separate process with a time limit.

The parent (:func:`check_in_child`) never imports the submitted code before this check has
passed: a plug-in that hangs, crashes the interpreter or calls ``sys.exit`` while importing or
training stops only the child. The child (``python -m lsmia_bench.submission.check REQUEST
RESULT``) imports the framework, then signals that it is ready (the time limit counts from
there, so a slow start of PyTorch is not charged to the plug-in), then:

1. loads the defense by entry-point name or ``path/to/file.py:ClassName``;
2. instantiates every hyper-parameter setting of the metadata (the defense's own ranges);
3. runs one training step on one batch of the suite's own data with the suite's target
   architecture (:func:`benchmark.plugin_check.check_defense`: finite scalar loss, backward),
   and checks that finite, non-zero gradients reach the model's parameters;
4. runs the suite pipeline's own checks (:meth:`Pipeline.check`, exactly what ``run`` does);

and writes a JSON result: the defense's description, or the UserError to report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsmia_bench.kernel.errors import UserError

log = logging.getLogger("lsmia_bench")

#: The framework (PyTorch, pipelines) must be imported within this many seconds.
STARTUP_LIMIT_S = 300.0
READY_SUFFIX = ".ready"


def check_in_child(request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run the check in a child process; return its result or raise its UserError.

    ``timeout_s`` limits the plug-in's part (import, instantiation, one batch, pipeline
    checks); a child past it is killed with its whole process group.
    """
    with tempfile.TemporaryDirectory(prefix="lsmia-submit-check-") as tmp:
        folder = Path(tmp)
        request_file, result_file = folder / "request.json", folder / "result.json"
        ready = result_file.with_name(result_file.name + READY_SUFFIX)
        request_file.write_text(json.dumps(request), encoding="utf-8")
        output = folder / "output.txt"
        started = time.monotonic()
        with open(output, "wb") as sink:
            child = subprocess.Popen(
                [sys.executable, "-m", "lsmia_bench.submission.check", str(request_file),
                 str(result_file)],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                plugin_started = _wait(child, ready, started, timeout_s)
            finally:
                if child.poll() is None:
                    _kill(child)
        elapsed = time.monotonic() - (plugin_started or started)
        if child.returncode is None or child.returncode < 0 or not result_file.is_file():
            if child.returncode == -signal.SIGKILL and plugin_started is not None \
                    and elapsed >= timeout_s:
                raise UserError(
                    "DEFENSE", request["reference"], f"Make importing the defense and one "
                    f"training step finish well within {timeout_s:g} s (a loop that never ends?"
                    "), or raise the limit with --check-timeout.",
                    problem=f"the plug-in check did not finish within {timeout_s:g} s and was "
                    "stopped")
            if plugin_started is None and time.monotonic() - started >= STARTUP_LIMIT_S:
                raise UserError("--check-timeout", timeout_s, "Check the Python environment "
                                "(PyTorch must import).", problem=f"the check process did not "
                                f"start within {STARTUP_LIMIT_S:g} s")
            tail = _tail(output)
            raise UserError("DEFENSE", request["reference"], "Fix the plug-in so that importing "
                            "and training it leaves the interpreter running.",
                            problem=f"the plug-in check process ended with status "
                            f"{child.returncode} without a result; its last output: {tail}")
        result = json.loads(result_file.read_text(encoding="utf-8"))
    if not result.get("ok"):
        error = result["error"]
        raise UserError(error["field"], error["value"], error["fix"], problem=error["problem"])
    result["seconds"] = round(elapsed, 3)
    return result


def _wait(child: subprocess.Popen, ready: Path, started: float, timeout_s: float) -> float | None:
    """Wait for the child; kill it past the limits. Returns when the plug-in part started."""
    plugin_started: float | None = None
    while True:
        try:
            child.wait(timeout=0.05)
            return plugin_started
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if plugin_started is None and ready.exists():
            plugin_started = now
        if plugin_started is not None and now - plugin_started >= timeout_s:
            _kill(child)
            return plugin_started
        if plugin_started is None and now - started >= STARTUP_LIMIT_S:
            _kill(child)
            return None


def _kill(child: subprocess.Popen) -> None:
    """Stop the child and anything it started (its own session/process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _tail(path: Path, limit: int = 600) -> str:
    text = path.read_bytes().decode("utf-8", "replace").strip()
    return repr(text[-limit:]) if text else "(none)"


# ------------------------------------------------------------------ the child's side


def main(argv: list[str]) -> int:
    request_file, result_file = Path(argv[0]), Path(argv[1])
    request = json.loads(request_file.read_text(encoding="utf-8"))
    # Import the framework before starting the plug-in's clock.
    import torch  # noqa: F401

    import lsmia_bench.benchmark.pipelines  # noqa: F401
    import lsmia_bench.defenses  # noqa: F401

    result_file.with_name(result_file.name + READY_SUFFIX).touch()
    try:
        result = {"ok": True, **run_checks(request)}
    except UserError as exc:
        result = {"ok": False, "error": {"field": exc.field, "value": _jsonable(exc.value),
                                         "fix": exc.fix, "problem": exc.problem}}
    except BaseException as exc:  # noqa: BLE001 - a plug-in may fail in any way, SystemExit too
        result = {"ok": False, "error": {
            "field": "DEFENSE", "value": request["reference"],
            "fix": "Fix the plug-in; it was imported and run once on one batch of the suite.",
            "problem": f"the plug-in check failed ({type(exc).__name__}: {exc})"}}
    tmp = result_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    os.replace(tmp, result_file)
    return 0


def run_checks(request: dict[str, Any]) -> dict[str, Any]:
    """Steps 1-4 of the module docstring; returns what the record keeps about the defense."""
    from lsmia_bench.benchmark.config import validate_suite
    from lsmia_bench.benchmark.pipelines import PIPELINES
    from lsmia_bench.defenses import DEFENSES

    reference = request["reference"]
    cls = DEFENSES.get(reference, field="DEFENSE")
    built = build_settings(cls, request["settings"], request["meta_file"])
    pipeline = PIPELINES.get(request["raw"]["pipeline"], field="pipeline")()
    config = validate_suite(request["raw"], request["source"], pipeline.schema)
    batches = []
    for defense in built:
        started = time.perf_counter()
        grad_norm = one_batch_check(config, defense, reference)
        batches.append({"label": defense.label(), "grad_norm": grad_norm,
                        "seconds": round(time.perf_counter() - started, 3)})
    pipeline.check(config)
    return {"defense": describe_defense(cls, reference),
            "settings": [{"label": d.label(), "params": d.model_dump(mode="json"),
                          "strength": d.strength_value()} for d in built],
            "one_batch": batches}


def build_settings(cls: type, settings: list[dict[str, Any]], meta_file: str) -> list[Any]:
    """One defense per setting; a value out of the defense's range names the metadata field."""
    from pydantic import ValidationError

    from lsmia_bench.kernel.component import build_component, user_error_from_validation

    built = []
    for setting in settings:
        values, origin = setting["values"], setting["origin"]
        try:
            built.append(cls(**values))
        except ValidationError as exc:
            loc = exc.errors()[0]["loc"]
            section = origin.get(str(loc[0]) if loc else "", "params")
            where = f"{meta_file}: hyperparameters.{section}"
            error = user_error_from_validation(exc, prefix=where, model=cls)
            raise UserError(error.field, error.value, error.fix,
                            problem=f"{error.problem} for defense {cls.name or cls.__name__!r}"
                            ) from None
        except TypeError:
            built.append(build_component(cls, values, f"{meta_file}: hyperparameters.params"))
    return built


def one_batch_check(config: Any, defense: Any, reference: str) -> float:
    """One training step on one batch of the suite: the gradient norm, or a UserError."""
    import torch

    from lsmia_bench.benchmark.plugin_check import ProbeClassifier, check_defense, probe_batch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = suite_batch(config)
        if probe is None:
            model, num_classes = ProbeClassifier(), 4
            inputs, targets = probe_batch(num_classes)
        else:
            model, inputs, targets, num_classes = probe
        check_defense(defense, "DEFENSE", reference, model, (inputs, targets), num_classes)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if any(not torch.isfinite(g).all() for g in grads):
        raise UserError("DEFENSE", reference, "Keep the loss differentiable with finite "
                        "gradients (check logs of zero, divisions, square roots at 0).",
                        problem="broken defense: the gradients of loss() are not finite on one "
                        "batch of the suite")
    norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))
    if norm == 0.0:
        raise UserError("DEFENSE", reference, "Compute the loss from batch.logits or "
                        "batch.features without detaching, so that training changes the model.",
                        problem="broken defense: no gradient reaches the target model's "
                        "parameters on one batch of the suite")
    return norm


def suite_batch(config: Any) -> tuple[Any, Any, Any, int] | None:
    """A fresh target of the suite's architecture and its first training batch (image suites);
    None where the pipeline has no such notion (the tiny probe model is used instead)."""
    if getattr(config, "pipeline", None) != "image":
        return None
    from lsmia_bench.benchmark.data.images import load_image_splits
    from lsmia_bench.benchmark.models import build_classifier
    from lsmia_bench.benchmark.pipelines.image import data_spec

    splits = load_image_splits(data_spec(config))
    channels, size, _ = splits.image_shape
    model = build_classifier(config.target.name, config.target.params, channels, size,
                             splits.num_classes)
    count = min(config.training.batch_size, len(splits.private_train))
    return (model, splits.private_train[:count], splits.private_train_labels[:count],
            splits.num_classes)


def describe_defense(cls: type, reference: str) -> dict[str, Any]:
    """Class, metadata, hyper-parameter schema and a fingerprint of the defense's code."""
    import inspect

    source = inspect.getsourcefile(cls)
    info: dict[str, Any] = {
        "reference": reference, "class": f"{cls.__module__}:{cls.__qualname__}",
        "name": cls.name, "summary": cls.summary, "paper": cls.paper,
        "paper_url": cls.paper_url, "strength": cls.strength,
        "hyperparameters": _jsonable(cls.hyperparameters()),
        "source_file": source, "distribution": None,
    }
    files = [Path(source)] if source else []
    distribution = _distribution(reference)
    if distribution is not None:
        info["distribution"] = {"name": distribution.metadata["Name"],
                                "version": distribution.version}
        files = [Path(str(distribution.locate_file(f))) for f in (distribution.files or [])
                 if f.suffix == ".py"] or files
    info["fingerprint"] = fingerprint(files)
    return info


def _distribution(reference: str) -> Any:
    from importlib.metadata import entry_points

    for ep in entry_points(group="lsmia_bench.defenses"):
        if ep.name == reference:
            return ep.dist
    return None


def fingerprint(files: list[Path]) -> str:
    """sha256 over the names and contents of the defense's Python files (16 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name + str(p)):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
