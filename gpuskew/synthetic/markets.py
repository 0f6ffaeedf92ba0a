"""Market paths for backtests: seeded synthetic markets, recorded markets, and client flow.

A :class:`MarketPaths` holds, per path and underlying, on a grid of ``n_steps + 1`` times
``step_seconds`` apart from ``start``: the index price S (USD), the ATM implied vol level
(annualised; every option's implied vol moves by the change of its underlying's level: the smile
keeps its shape) and the perpetual funding rate (annualised, a Deribit 8-hour rate x 3 x 365;
positive: longs pay shorts), and per underlying a constant rate r.

**Synthetic markets** (:func:`synthetic_market`, a TOML file)::

    [market]
    steps = 1440            # steps per path
    step_seconds = 60
    paths = 200
    seed = 7

    [underlying.BTC]        # any underlying of the book; unlisted ones: gbm at their `vol`
    model = "svcj"          # gbm | merton | svcj
    vol = 0.55              # default: the underlyings table's vol, else the ATM iv of its options
    iv_vol_of_vol = 0.8     # vol of the log ATM implied vol level (0: the level stays)
    iv_spot_correlation = -0.3
    premium_mean = 0.0003   # mean of the perpetual's premium rate (default: the book's funding)

    [correlation]
    "BTC,ETH" = 0.8         # correlation of the spot shocks

Spot models (Delta t in years; Z standard normals correlated across underlyings by the Cholesky
factor of ``[correlation]``):

* ``gbm``: log S += (mu - sigma^2/2) dt + sigma sqrt(dt) Z (exact).
* ``merton`` (Merton 1976): the same plus N ~ Poisson(lambda dt) jumps of log size
  N(mu_J, sigma_J^2) each, compensated: the drift falls by lambda (exp(mu_J + sigma_J^2/2) - 1).
* ``svcj``: stochastic volatility with correlated jumps (Duffie, Pan and Singleton 2000; Eraker,
  Johannes and Polson 2003), full-truncation Euler with V+ = max(V, 0):
  log S += (mu - V+/2 - lambda m) dt + sqrt(V+ dt) Z1 + sum of N jumps Z_y;
  V += kappa (theta - V+) dt + sigma_v sqrt(V+ dt) Z2 + sum of N jumps Z_v,
  corr(Z1, Z2) = rho, Z_v ~ Exp(mean mu_v), Z_y | Z_v ~ N(mu_y + rho_J Z_v, sigma_y^2),
  m = exp(mu_y + sigma_y^2/2) / (1 - rho_J mu_v) - 1.

Jump and SVCJ defaults are the CRIX estimates of Hou, Wang, Chen and Haerdle (2020), "Pricing
Cryptocurrency Options", Journal of Financial Econometrics 18(2), 250-279 (daily, log returns in
per cent: kappa 0.187/day, sigma_v 0.0069, rho 0.2748, lambda 0.051/day, mu_y -0.049 %,
sigma_y 2.06 %, mu_v 0.709, rho_J -0.21), converted to years and decimals (x 365 for rates; returns
/ 100; variances x 0.0365; rho_J / 3.65). The variance level theta is the underlying's ``vol``
squared (the paper's CRIX level is far below today's crypto vols), and V starts at theta.

**Implied vol**: log L += nu sqrt(dt) W - nu^2 dt / 2, corr(W, Z) = ``iv_spot_correlation``.

**Funding** (Deribit, "Funding Specifications", support.deribit.com): the premium rate
P = (mark - index) / index follows an Ornstein-Uhlenbeck process dP = k (P_mean - P) dt +
s_P dW; the 8-hour funding rate is min(cap, max(-cap, max(d, P) + min(-d, P))) with the damper
d = 0.025 %; the annualised rate is that x 3 x 365. Positive funding: longs pay shorts.

**Recorded markets** (:func:`recorded_market`): Parquet files of events in a folder (the event
schema of gpuskew's monitor and history: ``type`` in index | mark | rate, ``ts``, ``underlying``,
``spot``, ``instrument``, ``iv``, ``forward``, ``rate``, ``funding_rate``, ``vol``), resampled to a
grid of ``step_seconds`` from the first to the last event, each value held until the next event
(last value carried forward). The ATM level of an underlying moves by the mean change of the
implied vols of its marked instruments since their first mark.

**Client flow** (:class:`Flow`): fills that change the book during the path, shared by every path:
a folder of fill events (``fill`` events: ``ts``, ``trade_id``, ``instrument``, ``quantity``,
``price``, optional ``fee`` and tag columns or a ``tags`` object; a repeated ``trade_id`` is
ignored and counted) or a synthetic Poisson flow (``[flow]`` in the synthetic file:
``rate_per_hour``, ``edge``, ``size``): options held by the book traded at their model value,
the client paying ``edge`` (a fraction of the premium).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.errors import InvalidInput
from gpuskew.policy.limits import ConfigChecker
from gpuskew.schema import SECONDS_PER_YEAR
from gpuskew.timeutil import from_micros, iso_z, to_micros, to_utc

#: Spot models of a synthetic market.
SPOT_MODELS: tuple[str, ...] = ("gbm", "merton", "svcj")
#: Deribit's funding damper: premium rates within +/- this give zero funding (per period).
FUNDING_DAMPER: float = 0.00025
#: Default cap of the funding rate per period (Deribit's cap depends on the instrument).
FUNDING_CAP: float = 0.005
#: Hours of one funding period (the rate is quoted per 8 hours).
FUNDING_PERIOD_HOURS: float = 8.0
#: Funding periods per year (3 x 365): an 8-hour rate times this is the annualised rate.
FUNDING_PERIODS_PER_YEAR: float = 3.0 * 365.0
#: Lowest implied vol any option gets when the ATM level moves.
IV_FLOOR: float = 0.01
#: Most steps x paths x underlyings one synthetic market may hold.
MAX_CELLS: int = 2_000_000_000

#: SVCJ / jump defaults (Hou, Wang, Chen and Haerdle 2020, CRIX; converted to years and decimals)
SVCJ_DEFAULTS: dict[str, float] = {
    "kappa": 0.187 * 365.0,          # 1/year
    "sigma_v": 0.0069 * math.sqrt(0.0365 * 365.0),  # vol of variance, sqrt(1/year)
    "rho": 0.2748,
    "jump_intensity": 0.051 * 365.0,  # jumps per year
    "jump_mean": -0.049 / 100.0,      # mu_y, log return per jump
    "jump_std": 2.06 / 100.0,         # sigma_y
    "var_jump_mean": 0.709 * 0.0365,  # mu_v, annualised variance per jump
    "jump_correlation": -0.21 / 3.65,  # rho_J, log return per unit of annualised variance
}
#: Defaults of every underlying section.
UNDERLYING_DEFAULTS: dict[str, float] = {
    "drift": 0.0,
    "iv_vol_of_vol": 0.0,
    "iv_spot_correlation": 0.0,
    "premium_reversion": 3.0 * 365.0,   # 1/year: a premium half-life of about 5.5 hours
    "premium_vol": 0.02,                # per sqrt(year), premium rate units
    "funding_cap": FUNDING_CAP,
}


@dataclass
class MarketPaths:
    """Market paths on a regular grid (see the module docstring). Arrays (paths, underlyings,
    n_steps + 1): ``spot`` USD, ``atm_vol`` annualised, ``funding`` annualised (longs pay when
    positive); ``rate`` (underlyings,) annualised."""

    start: datetime
    step_seconds: float
    underlyings: list[str]
    spot: np.ndarray
    atm_vol: np.ndarray
    funding: np.ndarray
    rate: np.ndarray
    source: str = "synthetic"
    seed: int | None = None
    models: dict[str, str] = field(default_factory=dict)

    @property
    def n_paths(self) -> int:
        return int(self.spot.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.spot.shape[2]) - 1

    @property
    def times_s(self) -> np.ndarray:
        """Seconds since ``start`` of every grid point."""
        return np.arange(self.n_steps + 1, dtype=np.float64) * self.step_seconds

    @property
    def dt_years(self) -> np.ndarray:
        """Years of every step (ACT/365 in seconds)."""
        return np.full(self.n_steps, self.step_seconds / SECONDS_PER_YEAR)

    def time_at(self, step: int) -> datetime:
        return self.start + timedelta(seconds=float(step) * self.step_seconds)

    def index(self, underlying: str) -> int:
        return self.underlyings.index(underlying)

    def window(self, first: int, last: int) -> MarketPaths:
        """Steps first..last (inclusive grid points), as a market starting at ``time_at(first)``."""
        sl = slice(first, last + 1)
        return MarketPaths(self.time_at(first), self.step_seconds, list(self.underlyings),
                           self.spot[:, :, sl], self.atm_vol[:, :, sl], self.funding[:, :, sl], self.rate,
                           self.source, self.seed, dict(self.models))

    def summary(self) -> dict:
        return {"source": self.source, "start": iso_z(self.start), "steps": self.n_steps,
                "step_seconds": self.step_seconds, "paths": self.n_paths, "seed": self.seed,
                "underlyings": list(self.underlyings), "models": dict(self.models)}


def deribit_funding_rate(premium: np.ndarray | float, cap: float = FUNDING_CAP,
                         damper: float = FUNDING_DAMPER) -> np.ndarray:
    """Deribit's 8-hour funding rate from the premium rate P = (mark - index) / index:
    min(cap, max(-cap, max(damper, P) + min(-damper, P))) (zero within +/- damper; positive:
    longs pay)."""
    p = np.asarray(premium, dtype=np.float64)
    return np.minimum(cap, np.maximum(-cap, np.maximum(damper, p) + np.minimum(-damper, p)))


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class UnderlyingModel:
    """The synthetic model of one underlying (annualised decimals; see the module docstring)."""

    name: str
    model: str
    spot: float
    vol: float
    rate: float
    iv_start: float
    funding_start: float
    params: dict = field(hash=False, compare=False)


@dataclass(frozen=True)
class SyntheticSpec:
    """A parsed synthetic market file."""

    source: str
    steps: int
    step_seconds: float
    paths: int
    seed: int
    underlyings: tuple[UnderlyingModel, ...]
    correlation: np.ndarray = field(hash=False, compare=False)
    flow: dict | None = field(default=None, hash=False, compare=False)


_COMMON_KEYS = ("model", "vol", "drift", "iv_start", "iv_vol_of_vol", "iv_spot_correlation", "premium_mean",
                "premium_reversion", "premium_vol", "funding_cap")
_MODEL_KEYS = {"gbm": (), "merton": ("jump_intensity", "jump_mean", "jump_std"),
               "svcj": ("jump_intensity", "jump_mean", "jump_std", "kappa", "theta", "sigma_v", "rho",
                        "var_jump_mean", "jump_correlation")}
_FLOW_KEYS = ("rate_per_hour", "edge", "size", "seed")


def _book_defaults(underlyings: pa.Table, quotes: pa.Table | None, instruments: pa.Table | None,
                   positions: pa.Table | None) -> dict[str, dict[str, float]]:
    """Per underlying: spot, rate, vol (the table's, else the median iv of its held options),
    funding_rate (0 when null)."""
    out: dict[str, dict[str, float]] = {}
    iv_by_und: dict[str, list[float]] = {}
    if quotes is not None and instruments is not None and quotes.num_rows:
        q = quotes.select(["instrument", "iv"]).to_pylist()
        und = dict(zip(instruments["instrument"].to_pylist(), instruments["underlying"].to_pylist()))
        held = set(positions["instrument"].to_pylist()) if positions is not None else None
        for row in q:
            if row["iv"] is not None and (held is None or row["instrument"] in held):
                iv_by_und.setdefault(und.get(row["instrument"]), []).append(float(row["iv"]))
    for row in underlyings.to_pylist():
        name = row["underlying"]
        vol = row.get("vol")
        ivs = iv_by_und.get(name, [])
        if vol is None or not vol > 0:
            vol = float(np.median(ivs)) if ivs else 0.0
        iv = float(np.median(ivs)) if ivs else float(vol)
        out[name] = {"spot": float(row["spot"]), "rate": float(row.get("rate") or 0.0), "vol": float(vol),
                     "iv": iv, "funding_rate": float(row.get("funding_rate") or 0.0)}
    return out


def parse_synthetic(mapping: Mapping[str, Any], book_market: Mapping[str, Mapping[str, float]],
                    source: str = "<synthetic>", seed: int | None = None) -> SyntheticSpec:
    """Validate a synthetic market mapping against the book's underlyings (``book_market``: per
    underlying spot, rate, vol, iv and funding_rate, see :func:`market_defaults`). ``seed``
    overrides ``[market] seed``."""
    c = ConfigChecker(source)
    top = c.table("", mapping)
    c.unknown("", top, ("market", "underlying", "correlation", "flow"))
    if "market" not in top:
        raise c.fail("market", None, "required: [market] with steps, step_seconds, paths, seed")
    m = c.table("market", top["market"])
    c.unknown("market", m, ("steps", "step_seconds", "paths", "seed"))
    for k in ("steps", "step_seconds", "paths"):
        if k not in m:
            raise c.fail(f"market.{k}", None, "required")
    steps = c.integer("market.steps", m["steps"], ge=1)
    step_seconds = c.number("market.step_seconds", m["step_seconds"], gt=0.0)
    paths = c.integer("market.paths", m["paths"], ge=1)
    the_seed = c.integer("market.seed", m.get("seed", 0), ge=0) if seed is None else int(seed)
    names = sorted(book_market)
    if (steps + 1) * paths * max(1, len(names)) > MAX_CELLS:
        raise c.fail("market.steps", steps, f"steps x paths x underlyings must stay below {MAX_CELLS:,}")
    sections = c.table("underlying", top.get("underlying", {}))
    for name in sections:
        if name not in book_market:
            raise c.fail(f"underlying.{name}", None,
                         f"not an underlying of the book ({', '.join(names) or 'none'})")
    models = []
    for name in names:
        key = f"underlying.{name}"
        sec = c.table(key, sections.get(name, {}))
        base = book_market[name]
        model = sec.get("model", "gbm")
        if model not in SPOT_MODELS:
            raise c.fail(f"{key}.model", model, f"must be one of {', '.join(SPOT_MODELS)}")
        vol = c.number(f"{key}.vol", sec["vol"], ge=0.0) if "vol" in sec else base["vol"]
        allowed = _COMMON_KEYS + _MODEL_KEYS[model]
        c.unknown(key, sec, allowed)
        params: dict[str, float] = dict(UNDERLYING_DEFAULTS)
        if model in ("merton", "svcj"):
            params.update({k: SVCJ_DEFAULTS[k] for k in ("jump_intensity", "jump_mean", "jump_std")})
        if model == "svcj":
            params.update(SVCJ_DEFAULTS)
            params["theta"] = vol * vol
        for k, v in sec.items():
            if k in ("model", "vol"):
                continue
            if k in ("rho", "iv_spot_correlation"):
                params[k] = c.number(f"{key}.{k}", v, ge=-1.0, le=1.0)
            elif k in ("jump_mean", "drift", "premium_mean", "jump_correlation"):
                params[k] = c.number(f"{key}.{k}", v)
            elif k in ("iv_start", "premium_reversion"):
                params[k] = c.number(f"{key}.{k}", v, gt=0.0)
            else:
                params[k] = c.number(f"{key}.{k}", v, ge=0.0)
        if model == "svcj" and params["jump_correlation"] * params["var_jump_mean"] >= 1.0:
            raise c.fail(f"{key}.jump_correlation", params["jump_correlation"],
                         "rho_J * var_jump_mean must be < 1 (the jump compensator is infinite otherwise)")
        iv_start = params.pop("iv_start", None) or base["iv"] or vol
        params.setdefault("premium_mean", _premium_start(base["funding_rate"]))
        models.append(UnderlyingModel(name, model, base["spot"], vol, base["rate"], float(iv_start),
                                      base["funding_rate"], params))
    corr = np.eye(len(names))
    for k, v in c.table("correlation", top.get("correlation", {})).items():
        pair = [s.strip() for s in str(k).split(",")]
        if len(pair) != 2 or pair[0] == pair[1] or any(p not in names for p in pair):
            raise c.fail(f"correlation.{k}", v, f"a key names two different underlyings of the book "
                                                f"separated by a comma (\"BTC,ETH\"); underlyings: {', '.join(names)}")
        rho = c.number(f"correlation.{k}", v, ge=-1.0, le=1.0)
        i, j = names.index(pair[0]), names.index(pair[1])
        corr[i, j] = corr[j, i] = rho
    try:
        np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise c.fail("correlation", {k: v for k, v in top.get("correlation", {}).items()},
                     "the correlation matrix is not positive definite") from None
    flow = None
    if "flow" in top:
        f = c.table("flow", top["flow"])
        c.unknown("flow", f, _FLOW_KEYS)
        flow = {"rate_per_hour": c.number("flow.rate_per_hour", f.get("rate_per_hour", 1.0), ge=0.0),
                "edge": c.number("flow.edge", f.get("edge", 0.01), ge=0.0, lt=1.0),
                "size": c.number("flow.size", f["size"], gt=0.0) if "size" in f else None,
                "seed": c.integer("flow.seed", f.get("seed", the_seed), ge=0)}
    return SyntheticSpec(source, steps, step_seconds, paths, the_seed, tuple(models), corr, flow)


def market_defaults(book: Any) -> dict[str, dict[str, float]]:
    """Per underlying of a :class:`gpuskew.core.book.Book`: spot, rate, vol, iv, funding_rate."""
    return _book_defaults(book.underlyings, book.quotes, book.instruments, book.positions)


# ---------------------------------------------------------------------------------------------
# generation


def _premium_start(funding_annual: float, damper: float = FUNDING_DAMPER) -> float:
    """A premium rate whose Deribit funding equals ``funding_annual`` (inverse of the damper)."""
    r8 = funding_annual / FUNDING_PERIODS_PER_YEAR
    if r8 > 0:
        return r8 + damper
    if r8 < 0:
        return r8 - damper
    return 0.0


def generate(spec: SyntheticSpec, start: datetime) -> MarketPaths:
    """Seeded market paths of a :class:`SyntheticSpec` starting at ``start`` (UTC)."""
    n_p, n_t, n_u = spec.paths, spec.steps, len(spec.underlyings)
    dt = spec.step_seconds / SECONDS_PER_YEAR
    sdt = math.sqrt(dt)
    root = np.random.SeedSequence(spec.seed)
    r_spot, r_jump, r_var, r_iv, r_fund = (np.random.default_rng(s) for s in root.spawn(5))
    chol = np.linalg.cholesky(spec.correlation) if n_u else np.zeros((0, 0))
    z = r_spot.standard_normal((n_p, n_t, n_u)) @ chol.T if n_u else np.zeros((n_p, n_t, 0))
    spot = np.empty((n_p, n_u, n_t + 1))
    atm = np.empty((n_p, n_u, n_t + 1))
    fund = np.empty((n_p, n_u, n_t + 1))
    for j, um in enumerate(spec.underlyings):
        prm = um.params
        zj = z[:, :, j]
        if um.model == "svcj":
            logret = _svcj_log_returns(zj, um, dt, r_var, r_jump)
        else:
            mu = prm["drift"]
            logret = (mu - 0.5 * um.vol * um.vol) * dt + um.vol * sdt * zj
            if um.model == "merton":
                lam, mj, sj = prm["jump_intensity"], prm["jump_mean"], prm["jump_std"]
                n_jumps = r_jump.poisson(lam * dt, size=zj.shape)
                jumps = mj * n_jumps + sj * np.sqrt(n_jumps) * r_jump.standard_normal(zj.shape)
                logret = logret + jumps - lam * (math.exp(mj + 0.5 * sj * sj) - 1.0) * dt
        spot[:, j, 0] = um.spot
        spot[:, j, 1:] = um.spot * np.exp(np.cumsum(logret, axis=1))
        # ATM implied vol level: log random walk correlated with the spot shocks
        nu, rho_iv = prm["iv_vol_of_vol"], prm["iv_spot_correlation"]
        w = r_iv.standard_normal(zj.shape)
        if nu > 0:
            w_c = rho_iv * zj + math.sqrt(max(0.0, 1.0 - rho_iv * rho_iv)) * w
            atm[:, j, 0] = um.iv_start
            atm[:, j, 1:] = um.iv_start * np.exp(np.cumsum(nu * sdt * w_c - 0.5 * nu * nu * dt, axis=1))
        else:
            atm[:, j, :] = um.iv_start
    # funding: OU premium rates (exact OU steps) through Deribit's formula, all underlyings at once
    if n_u:
        k = np.array([um.params["premium_reversion"] for um in spec.underlyings])
        pm = np.array([um.params["premium_mean"] for um in spec.underlyings])
        ps = np.array([um.params["premium_vol"] for um in spec.underlyings])
        cap = np.array([um.params["funding_cap"] for um in spec.underlyings])
        e = np.exp(-k * dt)
        sd = ps * np.sqrt((1.0 - e * e) / (2.0 * k))
        shocks = r_fund.standard_normal((n_t, n_p, n_u))
        prem = np.empty((n_t + 1, n_p, n_u))
        prem[0] = np.array([_premium_start(um.funding_start) for um in spec.underlyings])
        for t in range(n_t):
            prem[t + 1] = pm + (prem[t] - pm) * e + sd * shocks[t]
        fund[:] = np.transpose(deribit_funding_rate(prem, cap), (1, 2, 0)) * FUNDING_PERIODS_PER_YEAR
    rate = np.array([um.rate for um in spec.underlyings], dtype=np.float64)
    return MarketPaths(to_utc(start), spec.step_seconds, [um.name for um in spec.underlyings], spot, atm, fund,
                       rate, source=f"synthetic:{spec.source}", seed=spec.seed,
                       models={um.name: um.model for um in spec.underlyings})


def _svcj_log_returns(z1: np.ndarray, um: UnderlyingModel, dt: float, r_var: np.random.Generator,
                      r_jump: np.random.Generator) -> np.ndarray:
    """Log returns (paths, steps) of the SVCJ model, full-truncation Euler."""
    p = um.params
    n_p, n_t = z1.shape
    kappa, theta, sv, rho = p["kappa"], p["theta"], p["sigma_v"], p["rho"]
    lam, my, sy, mv, rj = (p["jump_intensity"], p["jump_mean"], p["jump_std"], p["var_jump_mean"],
                           p["jump_correlation"])
    m_bar = math.exp(my + 0.5 * sy * sy) / (1.0 - rj * mv) - 1.0
    z2 = rho * z1 + math.sqrt(max(0.0, 1.0 - rho * rho)) * r_var.standard_normal(z1.shape)
    n_jumps = r_jump.poisson(lam * dt, size=z1.shape)
    zv = np.where(n_jumps > 0, r_jump.gamma(np.maximum(n_jumps, 1), mv), 0.0)  # sum of n Exp(mv)
    zy = my * n_jumps + rj * zv + sy * np.sqrt(n_jumps) * r_jump.standard_normal(z1.shape)
    out = np.empty((n_p, n_t))
    v = np.full(n_p, theta)
    sdt = math.sqrt(dt)
    for t in range(n_t):
        vp = np.maximum(v, 0.0)
        sq = np.sqrt(vp) * sdt
        out[:, t] = (p["drift"] - 0.5 * vp - lam * m_bar) * dt + sq * z1[:, t] + zy[:, t]
        v = v + kappa * (theta - vp) * dt + sv * sq * z2[:, t] + zv[:, t]
    return out


def synthetic_market(path_or_mapping: str | Path | Mapping[str, Any], book: Any, start: datetime,
                     seed: int | None = None) -> tuple[MarketPaths, SyntheticSpec]:
    """Read a synthetic market file (or mapping), validate it against ``book`` and generate it."""
    if isinstance(path_or_mapping, Mapping):
        mapping, source = path_or_mapping, "<synthetic>"
    else:
        from gpuskew.policy.limits import read_toml

        mapping, source = read_toml(path_or_mapping), str(path_or_mapping)
    spec = parse_synthetic(mapping, market_defaults(book), source, seed)
    return generate(spec, start), spec


# ---------------------------------------------------------------------------------------------
# recorded markets and flow folders


def _read_event_files(folder: Path, what: str) -> list[tuple[Path, pa.Table]]:
    from gpuskew.io import read_table

    if not folder.is_dir():
        raise InvalidInput(str(folder), None, f"not a folder of {what} event files")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".parquet", ".jsonl", ".json", ".csv")
                   and not p.name.startswith("."))
    if not files:
        raise InvalidInput(str(folder), None, f"no {what} event files (.parquet, .jsonl, .csv)")
    tables = []
    for f in files:
        if f.suffix in (".jsonl", ".json"):
            import pyarrow.json as pajson

            try:
                t = pajson.read_json(f)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(str(f), None, f"not JSON Lines: {str(exc)[:200]}") from None
        else:
            t = read_table(f)
        tables.append((f, t))
    return tables


def _timestamps_us(col: pa.ChunkedArray, source: str) -> np.ndarray:
    """ts as int64 microseconds UTC (timestamps or ISO 8601 strings); null ts is an error."""
    if col.null_count:
        mask = col.is_null().to_numpy(zero_copy_only=False)
        raise InvalidInput(source, "ts", "must be given (ISO 8601 UTC)", rows=np.flatnonzero(mask).tolist())
    if pa.types.is_timestamp(col.type):
        return pc.cast(col.cast(pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy()
    values = col.to_pylist()
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        try:
            out[i] = to_micros(v if isinstance(v, datetime) else str(v), source=f"{source}, column 'ts', row {i}")
        except TypeError:
            raise InvalidInput(source, "ts", "must be an ISO 8601 timestamp", rows=[i], values=[v]) from None
    return out


def _floats(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table[name].cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)


def _strings(table: pa.Table, name: str) -> list:
    if name not in table.column_names:
        return [None] * table.num_rows
    return table[name].cast(pa.string()).to_pylist()


def recorded_market(folder: str | Path, book: Any, step_seconds: float = 60.0) -> MarketPaths:
    """One market path from recorded index / mark / rate events (see the module docstring)."""
    folder = Path(folder)
    defaults = market_defaults(book)
    names = sorted(defaults)
    inst_und = dict(zip(book.instruments["instrument"].to_pylist(), book.instruments["underlying"].to_pylist()))
    events: dict[str, list] = {"index": [], "rate": [], "mark": []}
    for f, t in _read_event_files(folder, "market"):
        src = str(f)
        if "type" not in t.column_names:
            raise InvalidInput(src, "type", "required: the event type (index, mark, rate)")
        ts = _timestamps_us(t["ts"], src) if "ts" in t.column_names else None
        if ts is None:
            raise InvalidInput(src, "ts", "required: the event time (ISO 8601 UTC)")
        kind = _strings(t, "type")
        und = _strings(t, "underlying")
        inst = _strings(t, "instrument")
        spot, iv, funding, vol = (_floats(t, c) for c in ("spot", "iv", "funding_rate", "vol"))
        bad = [i for i, k in enumerate(kind) if k not in ("index", "mark", "rate", "fill", "instrument")]
        if bad:
            raise InvalidInput(src, "type", "must be one of index, mark, rate (fill and instrument events "
                                            "are ignored here)", rows=bad, values=[kind[i] for i in bad])
        for i, k in enumerate(kind):
            if k == "index":
                if und[i] not in defaults:
                    continue  # an underlying the book does not hold
                if not (spot[i] > 0):
                    raise InvalidInput(src, "spot", "an index event needs a spot > 0", rows=[i], values=[spot[i]])
                events["index"].append((ts[i], und[i], spot[i]))
            elif k == "rate" and und[i] in defaults:
                events["rate"].append((ts[i], und[i], funding[i], vol[i]))
            elif k == "mark" and inst[i] is not None and inst_und.get(inst[i]) in defaults and iv[i] > 0:
                events["mark"].append((ts[i], inst[i], iv[i]))
    if not events["index"]:
        raise InvalidInput(str(folder), "spot", "no index events for the book's underlyings "
                                                f"({', '.join(names)})")
    all_ts = [e[0] for lst in events.values() for e in lst]
    t0, t1 = min(all_ts), max(all_ts)
    step_us = int(round(step_seconds * 1e6))
    n_steps = max(1, int((t1 - t0) // step_us))
    grid = t0 + np.arange(n_steps + 1, dtype=np.int64) * step_us

    def held(series: list[tuple[int, float]], initial: float) -> np.ndarray:
        """Value at each grid time: the last event at or before it (``initial`` before the first)."""
        if not series:
            return np.full(grid.size, initial)
        series.sort(key=lambda e: e[0])
        times = np.array([e[0] for e in series], dtype=np.int64)
        vals = np.array([e[1] for e in series], dtype=np.float64)
        idx = np.searchsorted(times, grid, side="right") - 1
        first = vals[0] if not math.isfinite(initial) else initial
        return np.where(idx >= 0, vals[np.maximum(idx, 0)], first)

    n_u = len(names)
    spot = np.empty((1, n_u, n_steps + 1))
    atm = np.empty((1, n_u, n_steps + 1))
    fund = np.empty((1, n_u, n_steps + 1))
    for j, name in enumerate(names):
        d = defaults[name]
        spot[0, j] = held([(e[0], e[2]) for e in events["index"] if e[1] == name], math.nan)
        fund[0, j] = held([(e[0], e[2]) for e in events["rate"] if e[1] == name and math.isfinite(e[2])],
                          d["funding_rate"])
        vols = [(e[0], e[3]) for e in events["rate"] if e[1] == name and math.isfinite(e[3]) and e[3] > 0]
        level = d["iv"] or d["vol"]
        shift = np.zeros(n_steps + 1)
        marks = [e for e in events["mark"] if inst_und.get(e[1]) == name]
        if marks:
            by_inst: dict[str, list[tuple[int, float]]] = {}
            for e in marks:
                by_inst.setdefault(e[1], []).append((e[0], e[2]))
            total = np.zeros(n_steps + 1)
            count = np.zeros(n_steps + 1)
            for series in by_inst.values():
                series.sort(key=lambda e: e[0])
                path = held(series, math.nan)
                seen = grid >= series[0][0]
                total += np.where(seen, path - series[0][1], 0.0)
                count += seen
            shift = np.where(count > 0, total / np.maximum(count, 1), 0.0)
            atm[0, j] = np.maximum(level + shift, IV_FLOOR)
        elif vols:
            atm[0, j] = held(vols, level)
        else:
            atm[0, j] = level
    rate = np.array([defaults[n]["rate"] for n in names])
    start = from_micros(int(t0))
    return MarketPaths(start, step_us / 1e6, names, spot, atm, fund, rate, source=f"recorded:{folder}",
                       models={n: "recorded" for n in names})


@dataclass
class Flow:
    """Client fills applied to the book during the path (the same for every path).

    ``step``: the grid step at which each fill applies (the first grid time at or after its
    ``ts``); ``price``: USD (options: per coin of underlying; perpetuals and futures: the trade
    price, which becomes the entry price), NaN = at the model value with the client paying
    ``edge``; ``fee`` USD; ``tags``: tag columns of the fills.
    """

    step: np.ndarray
    instrument: list[str]
    quantity: np.ndarray
    price: np.ndarray
    fee: np.ndarray
    tags: dict[str, list]
    edge: float = 0.0
    duplicates: int = 0
    source: str = ""

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def summary(self) -> dict:
        return {"source": self.source, "fills": len(self), "duplicates_ignored": self.duplicates,
                "edge": self.edge}


def empty_flow() -> Flow:
    return Flow(np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0), np.zeros(0), {})


def flow_folder(folder: str | Path, book: Any, market: MarketPaths) -> Flow:
    """Fill events from a folder (see :class:`Flow`); fills outside the market's time range are
    an error (naming the file and rows)."""
    folder = Path(folder)
    known = set(book.instruments["instrument"].to_pylist())
    tags = list(book.tags)
    start_us = to_micros(market.start)
    end_us = start_us + int(round(market.n_steps * market.step_seconds * 1e6))
    seen: set[str] = set()
    dup = 0
    cols: dict[str, list] = {"step": [], "instrument": [], "quantity": [], "price": [], "fee": []}
    tag_cols: dict[str, list] = {t: [] for t in tags}
    for f, t in _read_event_files(folder, "fill"):
        src = str(f)
        for req in ("ts", "trade_id", "instrument", "quantity", "price"):
            if req not in t.column_names:
                raise InvalidInput(src, req, "required in fill events")
        if "type" in t.column_names:
            t = t.filter(pc.equal(t["type"].cast(pa.string()), "fill"))
        ts = _timestamps_us(t["ts"], src)
        inst = _strings(t, "instrument")
        qty, price, fee = _floats(t, "quantity"), _floats(t, "price"), _floats(t, "fee")
        ids = _strings(t, "trade_id")
        tag_values: dict[str, list] = {}
        if "tags" in t.column_names and pa.types.is_struct(t["tags"].type):
            nested = t["tags"].combine_chunks()
            for i, fld in enumerate(nested.type):
                tag_values[fld.name] = nested.field(i).cast(pa.string()).to_pylist()
        for name in tags:
            if name in t.column_names:
                tag_values[name] = _strings(t, name)
        unknown_tags = [k for k in tag_values if k not in tags]
        if unknown_tags:
            raise InvalidInput(src, "tags", f"tag(s) {', '.join(unknown_tags)} are not tag columns of the "
                                            f"book's positions ({', '.join(tags) or 'none'})")
        for i in range(t.num_rows):
            if ids[i] in seen:
                dup += 1
                continue
            if inst[i] not in known:
                raise InvalidInput(src, "instrument", "not in the book's instruments table", rows=[i],
                                   values=[inst[i]])
            if not math.isfinite(qty[i]) or not math.isfinite(price[i]) or price[i] < 0:
                raise InvalidInput(src, "quantity" if not math.isfinite(qty[i]) else "price",
                                   "must be a finite number (price >= 0)", rows=[i])
            if ts[i] < start_us or ts[i] > end_us:
                raise InvalidInput(src, "ts", f"fill outside the market's time range ({iso_z(market.start)} "
                                              f"to {iso_z(market.time_at(market.n_steps))})", rows=[i])
            seen.add(ids[i])
            step = int(math.ceil((ts[i] - start_us) / (market.step_seconds * 1e6) - 1e-9))
            cols["step"].append(min(max(step, 0), market.n_steps))
            cols["instrument"].append(inst[i])
            cols["quantity"].append(qty[i])
            cols["price"].append(price[i])
            cols["fee"].append(fee[i] if math.isfinite(fee[i]) else 0.0)
            for name in tags:
                tag_cols[name].append(tag_values.get(name, [None] * t.num_rows)[i])
    order = np.argsort(np.array(cols["step"], dtype=np.int64), kind="stable")
    return Flow(np.array(cols["step"], dtype=np.int64)[order], [cols["instrument"][i] for i in order],
                np.array(cols["quantity"])[order], np.array(cols["price"])[order], np.array(cols["fee"])[order],
                {k: [v[i] for i in order] for k, v in tag_cols.items()}, 0.0, dup, f"folder:{folder}")


def poisson_flow(book: Any, market: MarketPaths, rate_per_hour: float, edge: float = 0.01,
                 size: float | None = None, seed: int = 0) -> Flow:
    """Synthetic client flow: fills arriving as a Poisson process of ``rate_per_hour``, each on an
    option the book holds (uniformly), a random side, ``size`` contracts (default: the median
    |quantity| of the book's option positions), the tags of a random position in that option,
    traded at the model value with the client paying ``edge`` of the premium."""
    pos = book.positions
    inst = book.instruments
    kinds = dict(zip(inst["instrument"].to_pylist(), inst["kind"].to_pylist()))
    names = pos["instrument"].to_pylist()
    rows = [i for i, n in enumerate(names) if kinds.get(n) == "option"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0F10]))
    hours = market.n_steps * market.step_seconds / 3600.0
    n = int(rng.poisson(rate_per_hour * hours)) if rows else 0
    if n == 0:
        f = empty_flow()
        f.edge, f.source = edge, f"poisson(rate_per_hour={rate_per_hour:g})"
        f.tags = {t: [] for t in book.tags}
        return f
    qty_all = np.abs(pos["quantity"].to_numpy(zero_copy_only=False).astype(np.float64))
    sz = float(size) if size is not None else float(np.median(qty_all[rows]))
    steps = np.sort(rng.integers(0, market.n_steps, size=n))
    pick = rng.choice(np.array(rows), size=n)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    tags = {t: [pos[t][int(i)].as_py() for i in pick] for t in book.tags}
    return Flow(steps.astype(np.int64), [names[int(i)] for i in pick], side * sz, np.full(n, np.nan), np.zeros(n),
                tags, edge, 0, f"poisson(rate_per_hour={rate_per_hour:g}, seed={seed})")


__all__ = ["MarketPaths", "SyntheticSpec", "UnderlyingModel", "Flow", "deribit_funding_rate", "parse_synthetic",
           "generate", "synthetic_market", "recorded_market", "flow_folder", "poisson_flow", "empty_flow",
           "market_defaults", "SPOT_MODELS", "SVCJ_DEFAULTS", "FUNDING_DAMPER", "FUNDING_PERIODS_PER_YEAR"]
