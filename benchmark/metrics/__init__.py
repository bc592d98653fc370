"""Metrics as small pure functions on tensors and arrays."""
