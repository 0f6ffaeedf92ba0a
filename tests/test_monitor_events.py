"""Canonical events and the Deribit adapter: parsing, validation, documented message shapes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from gpuskew.monitor.deribit import (DeribitMapper, NotDeribitName, default_channels, parse_instrument_name,
                                     underlying_of_index)
from gpuskew.monitor.events import (Fill, IndexTick, Listing, MarkTick, RateTick, EventRejected, parse_event,
                                    parse_line, ts_to_us, us_to_iso)

TS = "2026-11-20T08:00:00Z"
US = int(datetime(2026, 11, 20, 8, tzinfo=timezone.utc).timestamp()) * 1_000_000


def fill(**kw):
    ev = {"type": "fill", "ts": TS, "trade_id": "t1", "instrument": "BTC-PERPETUAL", "quantity": 10, "price": 97000.5,
          "tags": {"desk": "mm"}}
    ev.update(kw)
    return ev


def test_every_event_type_parses_with_its_fields():
    f = parse_event(fill(fee=1.5, venue="x"))
    assert isinstance(f, Fill) and f.ts_us == US and f.quantity == 10.0 and f.price == 97000.5 and f.fee == 1.5
    assert f.tags == {"desk": "mm"} and f.raw["venue"] == "x"  # unknown fields kept
    i = parse_event({"type": "index", "ts": TS, "underlying": "BTC", "spot": 97000})
    assert isinstance(i, IndexTick) and i.spot == 97000.0 and i.key == ("index", "BTC")
    m = parse_event({"type": "mark", "ts": "2026-11-20T09:00:00+01:00", "instrument": "X", "iv": 0.6})
    assert isinstance(m, MarkTick) and m.iv == 0.6 and m.forward is None and m.ts_us == US  # offset -> UTC
    r = parse_event({"type": "rate", "ts": TS, "underlying": "BTC", "funding_rate": -0.05})
    assert isinstance(r, RateTick) and r.funding_rate == -0.05 and r.rate is None
    li = parse_event({"type": "instrument", "ts": TS, "instrument": "BTC-27DEC26-100000-C", "underlying": "BTC",
                      "kind": "option", "settlement": "inverse", "option_type": "call", "strike": 100000,
                      "expiry": "2026-12-27T08:00:00Z", "contract_size": 1})
    assert isinstance(li, Listing) and li.row["strike"] == 100000.0
    assert li.row["expiry_us"] == int(datetime(2026, 12, 27, 8, tzinfo=timezone.utc).timestamp()) * 1_000_000


@pytest.mark.parametrize("line, reason", [
    ("garbage", "invalid_json"),
    ("{\"type\": \"fill\"", "invalid_json"),
    ("[1, 2]", "not_an_object"),
    (json.dumps({"type": "trade", "ts": TS}), "unknown_type"),
    (json.dumps(fill(ts=None)), "missing_field"),
    (json.dumps(fill(ts="yesterday")), "bad_timestamp"),
    (json.dumps(fill(trade_id=None)), "missing_field"),
    (json.dumps(fill(instrument="")), "missing_field"),
    (json.dumps(fill(quantity=0)), "bad_value"),
    (json.dumps(fill(quantity="10")), "bad_number"),
    (json.dumps(fill(price=-1)), "bad_value"),
    (json.dumps(fill(quantity=True)), "bad_number"),
    (json.dumps(fill(tags=["desk"])), "bad_tags"),
    (json.dumps(fill(tags={"desk": 1.5})), "bad_tags"),
    ('{"type": "fill", "ts": "2026-11-20T08:00:00Z", "trade_id": "t", "instrument": "X", "quantity": 1, '
     '"price": NaN}', "bad_number"),
    ('{"type": "index", "ts": "2026-11-20T08:00:00Z", "underlying": "BTC", "spot": Infinity}', "bad_number"),
    (json.dumps({"type": "index", "ts": TS, "underlying": "BTC", "spot": 0}), "bad_value"),
    (json.dumps({"type": "mark", "ts": TS, "instrument": "X"}), "missing_field"),
    (json.dumps({"type": "mark", "ts": TS, "instrument": "X", "iv": -0.5}), "bad_value"),
    (json.dumps({"type": "rate", "ts": TS, "underlying": "BTC"}), "missing_field"),
    (json.dumps({"type": "instrument", "ts": TS, "instrument": "X", "underlying": "BTC", "kind": "option",
                 "settlement": "inverse", "contract_size": 1}), "bad_instrument"),
    (json.dumps({"type": "instrument", "ts": TS, "instrument": "X", "underlying": "BTC", "kind": "swap",
                 "settlement": "inverse", "contract_size": 1}), "bad_instrument"),
])
def test_malformed_events_are_rejected_with_a_reason(line, reason):
    with pytest.raises(EventRejected) as info:
        parse_line(line)
    assert info.value.reason == reason
    assert info.value.detail


def test_timestamps_round_trip():
    assert ts_to_us(TS) == US
    assert ts_to_us("2026-11-20") == US  # a date alone means 08:00 UTC (gpuskew.timeutil)
    assert us_to_iso(US) == TS
    assert us_to_iso(US + 5) == "2026-11-20T08:00:00.000005Z"


# ------------------------------------------------------------------------------------------------
# Deribit instrument names (https://www.deribit.com/docs/naming/)

@pytest.mark.parametrize("name, expected", [
    ("BTC-27DEC26-100000-C", dict(underlying="BTC", kind="option", settlement="inverse", option_type="call",
                                  strike=100000.0, contract_size=1.0)),
    ("BTC-PERPETUAL", dict(underlying="BTC", kind="perpetual", settlement="inverse", contract_size=10.0, expiry=None)),
    ("ETH-PERPETUAL", dict(underlying="ETH", kind="perpetual", settlement="inverse", contract_size=1.0)),
    ("SOL_USDC-27DEC26-150-P", dict(underlying="SOL", kind="option", settlement="linear", option_type="put",
                                    strike=150.0, contract_size=10.0)),
    ("XRP_USDC-27NOV26-2d3-P", dict(underlying="XRP", kind="option", settlement="linear", strike=2.3,
                                    contract_size=1000.0)),
    ("BTC-27DEC26", dict(underlying="BTC", kind="future", settlement="inverse", option_type=None, strike=None)),
    ("BTC_USDC-27DEC26", dict(underlying="BTC", kind="future", settlement="linear")),
    ("BTC_USDC-PERPETUAL", dict(underlying="BTC", kind="perpetual", settlement="linear")),
    ("ETH-5JAN27", dict(underlying="ETH", kind="future")),
    ("BTC_USDC", dict(underlying="BTC", kind="spot", settlement="linear", expiry=None)),
])
def test_deribit_names_parse_into_instrument_rows(name, expected):
    row = parse_instrument_name(name)
    assert row["instrument"] == name
    for k, v in expected.items():
        assert row[k] == v, k


def test_deribit_expiry_is_08_utc_of_the_named_day():
    assert parse_instrument_name("BTC-27DEC26-100000-C")["expiry"] == \
        int(datetime(2026, 12, 27, 8, tzinfo=timezone.utc).timestamp()) * 1_000_000
    assert parse_instrument_name("ETH-5JAN27")["expiry"] == \
        int(datetime(2027, 1, 5, 8, tzinfo=timezone.utc).timestamp()) * 1_000_000


@pytest.mark.parametrize("bad", ["FOO", "BTC-32DEC26", "BTC-27XYZ26-1-C", "BTC-27DEC26-0-C", "BTC-27DEC26-1-X",
                                 "btc-perpetual", "", "BTC-27DEC26-1d-C"])
def test_names_not_in_deribit_form_are_refused(bad):
    with pytest.raises(NotDeribitName):
        parse_instrument_name(bad)


def test_index_names_map_to_underlyings():
    assert underlying_of_index("btc_usd") == "BTC"
    assert underlying_of_index("sol_usdc") == "SOL"
    assert "user.changes.any.BTC.100ms" in default_channels(["BTC"])
    assert "markprice.options.sol_usdc" in default_channels(["sol"])


# ------------------------------------------------------------------------------------------------
# notifications, in the shapes of Deribit's documentation pages

def note(channel, data):
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}


#: user.changes.(kind).(currency).(interval): the documented example trade (BTC-PERPETUAL, sell 10 USD)
USER_CHANGES = note("user.changes.future.BTC.100ms", {
    "trades": [{"trade_seq": 866638, "trade_id": "1430914", "timestamp": 1605780344032, "tick_direction": 1,
                "state": "filled", "reduce_only": False, "price": 17391, "post_only": False, "order_type": "market",
                "order_id": "3398016", "matching_id": None, "mark_price": 17391, "liquidity": "T",
                "instrument_name": "BTC-PERPETUAL", "index_price": 17501.88, "fee_currency": "BTC", "fee": 1.6e-7,
                "direction": "sell", "amount": 10}],
    "positions": [{"instrument_name": "BTC-PERPETUAL", "size": 185160, "direction": "buy"}],
    "orders": []})


def test_user_changes_trade_becomes_a_fill_in_contracts_and_usd():
    mapper = DeribitMapper(lambda n: {"kind": "perpetual", "settlement": "inverse", "contract_size": 10.0}
                           if n == "BTC-PERPETUAL" else None, tags={"desk": "deribit"})
    events = mapper.map(USER_CHANGES)
    assert len(events) == 1
    ev = parse_event(events[0])
    assert isinstance(ev, Fill)
    assert ev.trade_id == "1430914" and ev.instrument == "BTC-PERPETUAL"
    assert ev.quantity == -1.0  # sell 10 USD of a 10-USD contract
    assert ev.price == 17391.0
    assert ev.fee == pytest.approx(1.6e-7 * 17501.88)  # BTC fee in USD at the index
    assert ev.tags == {"desk": "deribit"}
    assert ev.ts_us == 1605780344032 * 1000


def test_inverse_option_trade_price_is_converted_to_usd_and_the_name_listed():
    trade = {"trade_id": "9", "timestamp": 1790000000000, "instrument_name": "BTC-27DEC26-100000-C",
             "direction": "buy", "amount": 2.5, "price": 0.05, "index_price": 97000.0, "fee": 0.0003,
             "fee_currency": "BTC"}
    events = DeribitMapper().map(note("user.changes.option.BTC.raw", {"trades": [trade]}))
    assert [e["type"] for e in events] == ["instrument", "fill"]
    listing = parse_event(events[0])
    assert listing.row["kind"] == "option" and listing.row["strike"] == 100000.0
    f = parse_event(events[1])
    assert f.quantity == 2.5 and f.price == pytest.approx(0.05 * 97000.0)


def test_trade_with_contracts_field_uses_it():
    trade = {"trade_id": "10", "timestamp": 1790000000000, "instrument_name": "SOL_USDC-27DEC26-150-P",
             "direction": "sell", "amount": 30.0, "contracts": 3.0, "price": 4.2, "index_price": 190.0}
    events = DeribitMapper().map(note("user.changes.option.SOL.raw", {"trades": [trade]}))
    f = parse_event(events[-1])
    assert f.quantity == -3.0 and f.price == 4.2  # USDC-settled: price already in USD(C)


#: markprice.options.(index_name): documented example items
MARKPRICE = note("markprice.options.btc_usd", [
    {"timestamp": 1622470378005, "mark_price": 0.0333, "iv": 0.9, "instrument_name": "BTC-2JUN21-37000-P"},
    {"timestamp": 1622470378005, "mark_price": 0.117, "iv": 0.9, "instrument_name": "BTC-4JUN21-40500-P"}])


def test_markprice_options_become_marks_with_iv():
    events = DeribitMapper(lambda n: {"kind": "option", "settlement": "inverse", "contract_size": 1.0}).map(MARKPRICE)
    marks = [parse_event(e) for e in events]
    assert [m.instrument for m in marks] == ["BTC-2JUN21-37000-P", "BTC-4JUN21-40500-P"]
    assert all(isinstance(m, MarkTick) and m.iv == 0.9 and m.forward is None for m in marks)


def test_price_index_and_perpetual_channels():
    idx = DeribitMapper().map(note("deribit_price_index.btc_usd",
                                   {"timestamp": 1550588002899, "price": 3937.89, "index_name": "btc_usd"}))
    tick = parse_event(idx[0])
    assert isinstance(tick, IndexTick) and tick.underlying == "BTC" and tick.spot == 3937.89
    perp = DeribitMapper().map(note("perpetual.BTC-PERPETUAL.100ms",
                                    {"interest": 0.004999511380756577, "timestamp": 1571386349530,
                                     "index_price": 7872.88}))
    rate = parse_event(perp[0])
    assert isinstance(rate, RateTick) and rate.underlying == "BTC"
    assert rate.funding_rate == pytest.approx(0.004999511380756577 * 3 * 365)  # 8-hour rate, annualised


def test_responses_and_other_channels_map_to_nothing_and_broken_notifications_to_rejected_events():
    m = DeribitMapper()
    assert m.map({"jsonrpc": "2.0", "id": 1, "result": ["x"]}) == []
    assert m.map(note("book.BTC-PERPETUAL.100ms", {})) == []
    broken = m.map(note("user.changes.any.BTC.raw", {"trades": [{"instrument_name": "BTC-PERPETUAL",
                                                                  "direction": "sideways", "amount": 1}]}))
    with pytest.raises(EventRejected):
        parse_event(broken[-1])


@pytest.mark.parametrize("event", [
    {"type": "fill", "trade_id": "t", "instrument": "BTC-PERPETUAL", "quantity": 1e307, "price": 97000},
    {"type": "fill", "trade_id": "t", "instrument": "BTC-PERPETUAL", "quantity": 1e20, "price": 1e20},
    {"type": "fill", "trade_id": "t", "instrument": "BTC-PERPETUAL", "quantity": 1, "price": 1e300},
    {"type": "index", "underlying": "BTC", "spot": 1e300},
    {"type": "mark", "instrument": "BTC-PERPETUAL", "forward": 1e300},
    {"type": "instrument", "instrument": "X-PERP", "underlying": "BTC", "kind": "perpetual",
     "settlement": "linear", "contract_size": 1e300},
])
def test_magnitudes_that_would_overflow_the_measures_are_rejected_as_nonfinite(event):
    with pytest.raises(EventRejected) as info:
        parse_event(dict(event, ts="2026-11-20T09:00:00Z"))
    assert info.value.reason == "nonfinite"
    assert parse_event(dict(event, ts="2026-11-20T09:00:00Z", **{k: 1.0 for k in ("quantity", "price", "spot",
                                                                             "forward", "contract_size")
                                                               if k in event})).type == event["type"]
