"""Limits and policy files: TOML -> typed specs (and, for sweeps, parameter grids as arrays)."""
