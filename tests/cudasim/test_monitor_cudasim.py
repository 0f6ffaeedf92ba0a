"""The monitor's live state on the CUDA backend (simulated) == on the CPU, bit for bit: dirty-only
re-pricing scattered into the device-resident per-position array, group sums through the
re-indexed reduction plan, after fills, ticks, a listing and a time step."""

from __future__ import annotations

import numpy as np

import gpuskew
from gpuskew.monitor.events import parse_event
from gpuskew.monitor.sample import sample_day
from gpuskew.monitor.state import LiveState
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book


def test_live_state_cuda_simulated_equals_cpu_bitwise():
    tables = make_demo_book(n_positions=150, seed=4)
    events = [parse_event(e) for e in sample_day(tables, DEMO_AS_OF, n_events=80, seed=2, seconds=3 * 3600)]
    as_of_us = int(DEMO_AS_OF.timestamp()) * 1_000_000
    states = {b: LiveState(gpuskew.load_book(tables), group_by=["desk", "desk,book"], backend=b, as_of_us=as_of_us)
              for b in ("cpu", "cuda")}
    assert states["cuda"].backend.device == "cuda-simulator"
    for k in range(0, len(events), 40):
        pubs = {}
        for b, state in states.items():
            for ev in events[k:k + 40]:
                state.apply(ev)
            pubs[b] = state.publish()
        assert pubs["cuda"].repriced == pubs["cpu"].repriced > 0
        assert pubs["cuda"].exposures.equals(pubs["cpu"].exposures)
        out_cpu, st_cpu = states["cpu"].pricer.host_out(states["cpu"].pricer.rows)
        out_gpu, st_gpu = states["cuda"].pricer.host_out(states["cuda"].pricer.rows)
        np.testing.assert_array_equal(out_cpu.view(np.int64), out_gpu.view(np.int64))
        np.testing.assert_array_equal(st_cpu, st_gpu)
    # and both equal a fresh run of the engine on the CUDA backend
    book = gpuskew.load_book(states["cuda"].book_tables())
    run = gpuskew.compute(book, as_of=pubs["cuda"].as_of, backend="cuda", group_by=["desk", "desk,book"])
    assert run.exposures.equals(pubs["cuda"].exposures)
