"""lsmia-bench: a benchmark suite and leaderboard for defenses against model inversion attacks."""

__version__ = "0.1.0"
