"""``python -m lsmia_bench`` runs the command line."""

from lsmia_bench.cli import entry

entry()
