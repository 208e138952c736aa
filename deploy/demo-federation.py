#!/usr/bin/env python3
"""A two-MISP federation on this machine, synced by sgsyncd: a member's MISP and a Portal
(both misp-sim, over HTTPS on 127.0.0.1 with a throw-away CA), 10 events on each side, one
`sgsyncd --once` run each way, then a second run showing that nothing is sent twice.

usage: demo-federation.py MISP_SIM SGSYNCD"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import harness  # noqa: E402


def main():
    misp_sim, sgsyncd = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        sims = harness.TwoSims(misp_sim, sgsyncd, work)
        try:
            print(f"member's MISP (ORG1): {sims.member.url}   Portal (ORG2): {sims.portal.url}")
            sims.member.control("POST", "seed", {"events": 10, "attributes": 20, "distribution": 3, "seed": 1})
            sims.member.control("POST", "seed", {"events": 2, "attributes": 5, "distribution": 0, "seed": 2})
            sims.portal.control("POST", "seed", {"events": 10, "attributes": 20, "distribution": 3, "seed": 3})
            print("seeded: member 10 community events + 2 'your organisation only' events; Portal 10 events")
            local, remote = sims.endpoints()
            d = sims.sgsyncd("demo", [harness.link_toml("portal", local, remote)])
            print(f"configuration: {d.config}")
            for attempt in ("first run", "second run (nothing new)"):
                rc, stats, err = d.once()
                print(f"== sgsyncd --once, {attempt}: exit {rc}")
                for s in stats:
                    print("  " + json.dumps({k: s[k] for k in ("run", "listed", "sent", "already", "skipped",
                                                                 "skipped_by_reason", "echo", "failed")}))
            print("The 2 'your organisation only' events stayed home (push.event.distribution), the pushed "
                  "events were not pulled back, and the second run sent nothing.")
        finally:
            sims.stop()


if __name__ == "__main__":
    main()
