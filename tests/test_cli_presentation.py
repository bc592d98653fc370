"""What a new user sees of the command line: --version, help texts, a fast `list`."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from lsmia_bench import __version__
from lsmia_bench.attacks import ATTACKS
from lsmia_bench.defenses import DEFENSES
from lsmia_bench.kernel.registry import Registry, static_class_attribute


def _help(run_cli, *args: str) -> str:
    result = run_cli(*args, "--help")
    assert result.code == 0, result.err
    return " ".join(result.out.replace("│", " ").split())


def test_version(run_cli):
    result = run_cli("--version")
    assert result.code == 0
    assert result.out.strip() == f"lsmia-bench {__version__}"


@pytest.mark.parametrize("command", [["run"], ["submit"], ["leaderboard", "build"], []])
def test_flags_show_no_bool_type(run_cli, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = _help(run_cli, *command)
    assert "--help" in text
    assert "<bool>" not in text


def test_help_texts(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for command in ("run", "submit"):
        text = _help(run_cli, command)
        assert re.search(r"--verbose -v Debug logging", text), text
    assert "--max-concurrent <int range> [x>=1] At most this many trials at once" in _help(
        run_cli, "submit")
    serve = _help(run_cli, "leaderboard", "serve")
    assert "Folder of the built site to serve" in serve
    assert "Folder to write the site to" not in serve
    assert "Folder to write the site to" in _help(run_cli, "leaderboard", "build")


def test_list_imports_no_torch():
    """`lsmia-bench list` reads the summaries from the sources: PyTorch never loads."""
    code = textwrap.dedent("""
        import sys
        from lsmia_bench.cli import main
        code = main(["list"])
        print("TORCH" if "torch" in sys.modules else "NO-TORCH", code)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "label_smoothing" in done.stdout and "ppa" in done.stdout
    assert done.stdout.strip().endswith("NO-TORCH 0"), done.stdout[-500:]
    # Each attack's line names its threat model (read from the source, too).
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "[label-only]" in lines["brep_mi"] and "[black-box]" in lines["rlb_mi"]
    assert "[white-box]" in lines["gmi"]


@pytest.mark.parametrize("registry", [DEFENSES, ATTACKS], ids=["defenses", "attacks"])
def test_static_summaries_equal_the_loaded_classes(registry):
    for name in registry.names():
        assert registry.summary(name) == registry.get(name).summary, name


def test_static_threat_models_equal_the_loaded_classes():
    from lsmia_bench.kernel.component import THREAT_MODELS

    for name in ATTACKS.names():
        stated = ATTACKS.metadata(name, "threat_model")
        assert stated == ATTACKS.get(name).threat_model and stated in THREAT_MODELS, name


def test_summary_not_a_literal_falls_back_to_the_class(tmp_path, monkeypatch):
    (tmp_path / "plug_summary.py").write_text(textwrap.dedent("""
        class Literal:
            summary = "stated " "here"

        class Computed:
            summary = "computed".upper()

        class Inherited(Computed):
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert static_class_attribute("plug_summary:Literal", "summary") == "stated here"
    assert static_class_attribute("plug_summary:Computed", "summary") is None
    assert static_class_attribute("plug_summary:Inherited", "summary") is None
    assert static_class_attribute("plug_summary:Missing", "summary") is None
    assert static_class_attribute("no_such_module_xyz:Any", "summary") is None
    registry: Registry = Registry("thing", builtins={
        name: f"plug_summary:{name}" for name in ("Literal", "Computed", "Inherited")})
    assert [registry.summary(n) for n in ("Literal", "Computed", "Inherited")] == [
        "stated here", "COMPUTED", "COMPUTED"]
    assert "plug_summary" in sys.modules  # the fallback imported it


def test_an_interrupted_run_leaves_even_when_a_thread_would_hold_the_interpreter():
    """After Ctrl+C (exit 130) the console entry bounds the interpreter's shutdown: a
    non-daemon thread (e.g. a library's) that would keep the process alive for 120 s does not."""
    script = ("import sys, threading, time\n"
              "from lsmia_bench.cli import _bound_exit\n"
              "threading.Thread(target=time.sleep, args=(120,)).start()\n"
              "_bound_exit(130, 1.0)\n"
              "sys.exit(130)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=90)
    assert proc.returncode == 130, proc.stderr.decode()[-2000:]


def test_a_finished_run_exits_with_its_code_after_threads_and_exit_handlers(tmp_path):
    """The console entry's fast exit skips only the interpreter's final garbage collection: it
    waits for non-daemon threads, runs the exit handlers, flushes output and keeps the code."""
    thread_file, handler_file = tmp_path / "thread", tmp_path / "handler"
    script = ("import atexit, threading, time\n"
              "from lsmia_bench.cli import _exit_now\n"
              f"atexit.register(lambda: open({str(handler_file)!r}, 'w').write('ran'))\n"
              "def late():\n"
              "    time.sleep(0.5)\n"
              f"    open({str(thread_file)!r}, 'w').write('done')\n"
              "threading.Thread(target=late).start()\n"
              "print('last line', end='')\n"
              "_exit_now(3)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=90)
    assert proc.returncode == 3, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode() == "last line"
    assert thread_file.read_text() == "done" and handler_file.read_text() == "ran"
