"""Inventory skew adherence: targets, bands, skew and status, hedges, quote skew and alerts."""

from gpuskew.adherence.check import (AdherenceResult, adherence_schema, adherence_score, compute_adherence,
                                     finest_level, level_depth, statuses)

__all__ = ["AdherenceResult", "adherence_schema", "adherence_score", "compute_adherence", "finest_level",
           "level_depth", "statuses"]
