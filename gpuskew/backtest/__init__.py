"""Backtests: skew policies run through simulated or recorded markets.

Two phases (docs/backtest.md): the greeks path (:mod:`gpuskew.backtest.greeks_path`: the book
repriced along each market path, per group), then the policy sweep (:mod:`gpuskew.backtest.sweep`:
the kernel of ``gpuskew.kernels.policy`` over every policy, group and path), its statistics
(:mod:`gpuskew.backtest.stats`), outputs and report; :mod:`gpuskew.backtest.calibrate` proposes
limits from the cost-risk frontier.
"""
