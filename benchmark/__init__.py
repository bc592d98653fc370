"""Running suites: typed configs, planning, Ray Tune execution, MLflow recording, and the data,
models and metrics the tasks use."""
