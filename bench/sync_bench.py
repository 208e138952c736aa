#!/usr/bin/env python3
"""End-to-end sync benchmark: sgsyncd pushing a member's events to a Portal, both misp-sim over
HTTPS on loopback, with the per-request latencies measured on real MISP 2.5.1 added by misp-sim's
fault injection (any request 80 ms, events/view 90 ms, events/add of 100 attributes 250 ms;
restSearch 80 ms plus misp-sim's own time). Prints wall time and requests per phase.

usage: sync_bench.py MISP_SIM SGSYNCD [EVENTS] [ATTRIBUTES]    (build with the release preset)"""
import collections
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import harness  # noqa: E402

# misp-sim applies the first fault whose route prefixes the path: the catch-all goes last.
REAL_MISP_LATENCY_MS = {"/events/view": 90, "/events/add": 250, "/events/edit": 250, "": 80}


def add_latencies(sim):
    for route, ms in REAL_MISP_LATENCY_MS.items():
        sim.control("POST", "faults", {"route": route, "latency_ms": ms})


def requests_by_route(sim):
    c = collections.Counter()
    for r in sim.requests():
        if r["target"].startswith("/_sim"):
            continue
        parts = r["target"].split("/")
        c[f"{r['method']} /{parts[1]}/{parts[2]}" if len(parts) > 2 else r["target"]] += 1
    return dict(sorted(c.items()))


def phase(name, sims, fn):
    sims.member.control("DELETE", "requests")
    sims.portal.control("DELETE", "requests")
    start = time.monotonic()
    result = fn()
    took = time.monotonic() - start
    print(f"{name}: {took:.2f} s")
    print(f"  member requests: {requests_by_route(sims.member)}")
    print(f"  portal requests: {requests_by_route(sims.portal)}")
    return result


def main():
    misp_sim, sgsyncd = sys.argv[1], sys.argv[2]
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    attributes = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    with tempfile.TemporaryDirectory() as work:
        sims = harness.TwoSims(misp_sim, sgsyncd, work)
        try:
            uuids = sims.member.control("POST", "seed", {"events": events, "attributes": attributes, "distribution": 3,
                                                         "attribute_distribution": 5, "seed": 7})["uuids"]
            add_latencies(sims.member)
            add_latencies(sims.portal)
            local, remote = sims.endpoints()
            d = sims.sgsyncd("bench", [harness.link_toml("portal", local, remote, directions=["push"],
                                                         blocked_tags_push=[], overlap_seconds=0)])
            print(f"{events} events x {attributes} attributes, member -> Portal, max_in_flight 4")
            rc, stats, err = phase("initial push (sgsyncd --once)", sims, lambda: d.once())
            assert rc == 0 and stats[0]["sent"] == events, (rc, stats, err)
            rc, stats, err = phase("second run, nothing changed (new process: no ETag yet)", sims, lambda: d.once())
            assert rc == 0 and stats[0]["sent"] == 0, (rc, stats, err)

            def edit_five():
                for u in uuids[:5]:
                    ev = sims.member.view(u)["Event"]
                    ev["info"] = "edited"
                    ev["timestamp"] = str(int(ev["timestamp"]) + 1000)
                    sims.member.request("POST", f"/events/edit/{u}", {"Event": ev})
                    sims.member.request("POST", f"/events/publish/{ev['id']}")
            edit_five()
            rc, stats, err = phase("incremental push of 5 edited events", sims, lambda: d.once())
            assert rc == 0 and stats[0]["sent"] == 5, (rc, stats, err)
        finally:
            sims.stop()


if __name__ == "__main__":
    main()
