"""lsmia-bench: a benchmark suite and leaderboard for defenses against model inversion attacks.

Everything installs under this one namespace. Layers, top to bottom (enforced by the
import-linter contracts in ``pyproject.toml``; a lower layer never imports a higher one):

- :mod:`lsmia_bench.cli` and :mod:`lsmia_bench.submission`: the command line and ``submit``;
- :mod:`lsmia_bench.leaderboard`: records -> static site;
- :mod:`lsmia_bench.benchmark`: configs, planning, Ray Tune, MLflow, data, models, metrics;
- :mod:`lsmia_bench.attacks` and :mod:`lsmia_bench.defenses`: one file per method;
- :mod:`lsmia_bench.kernel`: the shared pieces every layer above imports.
"""

__version__ = "0.1.0"
