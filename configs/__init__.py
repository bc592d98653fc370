"""Suite configurations shipped with lsmia-bench: one YAML file per suite."""
