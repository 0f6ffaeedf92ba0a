"""Synthetic data: the seeded demo book and its intraday market and flow."""
