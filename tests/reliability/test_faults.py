#!/usr/bin/env python3
"""The faults campaign (issue #22): both MISPs misbehave at once while sgsyncd syncs both ways:
20% of answers 5xx, 5% connections reset mid-body, 5% bodies truncated under a full
Content-Length, 2% latency spikes of 2 s, and a burst of 429 with Retry-After at the start. sgsyncd
runs as a daemon until it converges; then every eligible event is on the other side once with the
content it has at its source (its attributes, by uuid), nothing ineligible crossed, and the metrics
counted the failed requests it retried.

Usage: test_faults.py MISP_SIM SGSYNCD [EVENTS]   (the CTest short form: 40 events each way)
"""
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402
import leaks  # noqa: E402

MISP_SIM = SGSYNCD = None
EVENTS = 40

FAULTS = [
    {"route": "", "count": 6, "error_rate": 1.0, "error_status": 429, "retry_after": 1},
    {"route": "", "rate": 0.05, "reset_after_bytes": 20},
    {"route": "", "rate": 0.05, "truncate": True},
    {"route": "", "rate": 0.02, "latency_ms": 2000},
    {"route": "", "rate": 0.20, "error_rate": 1.0, "error_status": 503},
]


def attribute_uuids(event):
    uuids = {a["uuid"] for a in event.get("Attribute", [])}
    for o in event.get("Object", []):
        uuids |= {a["uuid"] for a in o.get("Attribute", [])}
    return uuids


index = harness.uuids_on


class FaultsTest(unittest.TestCase):
    def test_under_mixed_faults_both_ways_converge_with_nothing_lost_duplicated_or_leaked(self):
        with harness.two_sims_in_temp_dir(MISP_SIM, SGSYNCD) as (sims, tmp):
            self.campaign(sims, tmp)

    def campaign(self, sims, tmp):
        member, portal = sims.member, sims.portal
        shared_out = member.control("POST", "seed", {"events": EVENTS, "attributes": 4, "objects": 1, "distribution": 3, "attribute_distribution": 5, "seed": 401})["uuids"]
        private = member.control("POST", "seed", {"events": max(2, EVENTS // 10), "attributes": 2, "distribution": 0, "attribute_distribution": 5, "seed": 402})["uuids"]
        bait = leaks.plant(member, shared_out[0], 4, 2)
        shared_in = portal.control("POST", "seed", {"events": EVENTS, "attributes": 4, "objects": 1, "distribution": 3, "attribute_distribution": 5, "seed": 403})["uuids"]
        for sim in (member, portal):
            for f in FAULTS:
                sim.control("POST", "faults", f)
        local, remote = sims.endpoints()
        port = harness.free_port()
        d = sims.sgsyncd("faults", [harness.link_toml("portal", local, remote, interval_seconds=1, blocked_tags_push=[leaks.BLOCKED],
                                                      overlap_seconds=0, sightings=False, proposals=False,
                                                      galaxy_clusters=False, analyst_data=False)],
                         metrics_listen=f"127.0.0.1:{port}", max_attempts=1000)
        started = time.time()
        d.start(os.path.join(tmp, "faults.log"))
        try:
            def converged():
                # Read without faults in the way: the checks are not the campaign.
                return set(shared_out) | set(bait) <= set(index(portal)) and set(shared_in) <= set(index(member))
            harness.wait_for(lambda: self.quietly(sims, converged), timeout=600, interval=2, what="convergence")
            took = time.time() - started
            metrics = harness.scrape_metrics(port)
            self.assertIsNotNone(metrics, "sgsyncd's /metrics did not answer")
        finally:
            d.stop()
        for sim in (member, portal):
            sim.control("DELETE", "faults")
        # Each eligible event once, with its attributes as at its source; nothing ineligible crossed.
        on_portal, on_member = index(portal), index(member)
        for uuid in shared_out:
            self.assertEqual(attribute_uuids(portal.view(uuid)["Event"]), attribute_uuids(member.view(uuid)["Event"]), uuid)
        for uuid in shared_in:
            self.assertEqual(attribute_uuids(member.view(uuid)["Event"]), attribute_uuids(portal.view(uuid)["Event"]), uuid)
        self.assertFalse(set(private) & set(on_portal), "a distribution-0 event reached the Portal")
        self.assertEqual(len(on_portal), len(shared_out) + len(bait) + len(shared_in), "no other event appeared at the Portal")
        self.assertEqual(len(on_member), len(shared_out) + len(bait) + len(private) + len(shared_in))
        self.assertEqual(leaks.scan(portal, list(on_portal)), [], "what must stay home arrived")
        failed = sum(float(v) for v in re.findall(r'sgsync_requests_total\{[^}]*status="(?:5\d\d|429|0)"\} (\S+)', metrics))
        self.assertGreater(failed, 0, "the failed requests are counted")
        print(f"faults campaign: {len(shared_out)} events pushed and {len(shared_in)} pulled under mixed faults, "
              f"converged in {took:.1f} s; {int(failed)} failed requests counted (5xx, 429, no answer); "
              f"nothing lost, duplicated or leaked ({len(bait)} events with 4 elements each that must stay home: none arrived)")

    @staticmethod
    def quietly(sims, check):
        """Runs `check` with the faults lifted for its own requests only (misp-sim's faults are global)."""
        for sim in (sims.member, sims.portal):
            sim.control("DELETE", "faults")
        try:
            return check()
        finally:
            for sim in (sims.member, sims.portal):
                for f in FAULTS[1:]:
                    sim.control("POST", "faults", f)


if __name__ == "__main__":
    MISP_SIM, SGSYNCD = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3 and sys.argv[3].isdigit():
        EVENTS = int(sys.argv.pop(3))
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
