"""The kernel: shared pieces at the bottom of lsmia-bench that every other package imports and
that import none of them (components and registries, the user-error contract, atomic files,
the classifier protocol, attack output, the record schema and the metric registry)."""
