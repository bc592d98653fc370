"""Shared helpers of the benchmark scripts: machine facts and JSON output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    from lsmia_bench.benchmark.trial import package_versions

    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "load_average_1min": os.getloadavg()[0], "versions": package_versions(),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str))
    print(json.dumps(data, indent=2, default=str))
    print(f"written to {path}")
    return path


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleaved_best(
    a: Callable[[], Any], b: Callable[[], Any], repeats: int
) -> tuple[float, float]:
    """Best-of-``repeats`` times of ``a`` and ``b``, run alternately so both see the same load."""
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return min(times_a), min(times_b)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants (Linux /proc)."""
    children, pids, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (Linux /proc), in bytes."""
    total, page = 0, os.sysconf("SC_PAGE_SIZE")
    for pid in _tree(root):
        with contextlib.suppress(OSError):
            total += int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * page
    return total


def tree_cpu_seconds(root: int, seen: dict[int, float]) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its descendants (Linux /proc).

    ``seen`` keeps each process's last reading across calls, so a process that has exited (or
    left the tree, like Ray's processes once the driver is gone) still counts with what it had
    used at the last call; call it often. Returns the sum over ``seen``."""
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _tree(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
            seen[pid] = (int(fields[11]) + int(fields[12])) / tick
    return sum(seen.values())
