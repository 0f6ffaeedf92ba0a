"""The scenario grid as small parameter arrays (what the kernel reads), in Deribit's layout.

Scenario index j (the same layout for every underlying, as in a Deribit risk vector):

* standard, j = 0 .. 26: spot move ``price_range * (j // 3 - 4) / 4`` (ascending from
  -price_range to +price_range), vol case ``("down", "same", "up")[j % 3]``, weight 1;
* extended, j = 27 ..: the extended moves in file order (-66%, -33%, +50%, ... +500%), vol up,
  weight ``extended_table_factor * price_range / |move|``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpuskew.scenarios.params import N_STANDARD, VOL_CASE_CODES, VOL_CASES, ScenarioConfig


@dataclass(frozen=True)
class ScenarioGrid:
    """Every scenario of every underlying (rows in ``underlying_names`` order)."""

    underlying_names: list[str]
    moves: np.ndarray  #: float64 (n_underlyings x n_scenarios): spot move m, S' = S (1 + m)
    weights: np.ndarray  #: float64 (n_underlyings x n_scenarios)
    vol_case: np.ndarray  #: int8 (n_scenarios): -1 down, 0 same, +1 up
    extended: np.ndarray  #: bool (n_scenarios)
    vparams: np.ndarray  #: float64 (n_underlyings x kernels.scenarios.N_VOL_PARAMS)
    mm_factor: np.ndarray  #: float64 (n_underlyings)

    @property
    def n_scenarios(self) -> int:
        return int(self.vol_case.shape[0])

    @property
    def vol_case_names(self) -> list[str]:
        return [VOL_CASES[VOL_CASE_CODES.index(int(c))] for c in self.vol_case]


def extended_weight(factor: float, price_range: float, move: float) -> float:
    """Weight of an extended move: extended_table_factor * price_range / |move|."""
    return factor * price_range / abs(move)


def build_grid(config: ScenarioConfig, underlying_names: Sequence[str]) -> ScenarioGrid:
    """The scenario arrays of ``underlying_names`` under ``config``."""
    from gpuskew.kernels import scenarios as ks

    n_ext = config.n_extended()
    n_sc = N_STANDARD + n_ext
    nu = len(underlying_names)
    moves = np.zeros((nu, n_sc))
    weights = np.ones((nu, n_sc))
    vparams = np.zeros((nu, ks.N_VOL_PARAMS))
    mm = np.zeros(nu)
    vol_case = np.array(list(VOL_CASE_CODES) * (N_STANDARD // len(VOL_CASES)) + [ks.VOL_UP] * n_ext, dtype=np.int8)
    extended = np.arange(n_sc) >= N_STANDARD
    for u, name in enumerate(underlying_names):
        p = config.for_underlying(name)
        moves[u, :N_STANDARD] = np.repeat(p.spot_moves(), len(VOL_CASES))
        moves[u, N_STANDARD:] = p.extended_moves
        weights[u, N_STANDARD:] = [extended_weight(p.extended_table_factor, p.price_range, m)
                                   for m in p.extended_moves]
        vparams[u, ks.P_VOLATILITY_RANGE_UP] = p.volatility_range_up
        vparams[u, ks.P_VOLATILITY_RANGE_DOWN] = p.volatility_range_down
        vparams[u, ks.P_MIN_VOLATILITY_FOR_SHOCK_UP] = p.min_volatility_for_shock_up
        vparams[u, ks.P_SHORT_TERM_VEGA_POWER] = p.short_term_vega_power
        vparams[u, ks.P_LONG_TERM_VEGA_POWER] = p.long_term_vega_power
        mm[u] = p.mm_factor
    return ScenarioGrid(list(underlying_names), moves, weights, vol_case, extended, vparams, mm)
