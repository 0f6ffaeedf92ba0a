"""Scenario risk (Deribit-style spot x vol risk matrix with extended moves) and P&L explain.

:mod:`gpuskew.scenarios.params` reads the matrix parameters (TOML, per underlying);
:mod:`gpuskew.scenarios.matrix` lays the grid out as small arrays; :mod:`gpuskew.scenarios.job`
revalues a resident book under it (``ScenarioJob``, ``run_scenarios``);
:mod:`gpuskew.scenarios.explain` splits the P&L between two runs into its greeks.
"""

from gpuskew.scenarios.params import MatrixParams, ScenarioConfig, load_scenario_config, parse_scenario_config

__all__ = ["MatrixParams", "ScenarioConfig", "load_scenario_config", "parse_scenario_config",
           "ScenarioJob", "ScenarioResult", "run_scenarios"]


def __getattr__(name: str):
    if name in ("ScenarioJob", "ScenarioResult", "run_scenarios"):
        from gpuskew.scenarios import job

        return getattr(job, name)
    raise AttributeError(f"module 'gpuskew.scenarios' has no attribute {name!r}")
