#!/usr/bin/env python3
"""sgsyncd end to end: a member's misp-sim and a Portal misp-sim over HTTPS on 127.0.0.1, and
sgsyncd run as operators run it (once, or as a daemon that is signalled and killed).

usage: test_daemon.py MISP_SIM SGSYNCD [unittest arguments]"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MISP_SIM = SGSYNCD = None


uuids_on = harness.uuids_on


def adds_by_uuid(sim):
    """Successful events/add requests on `sim`, counted per event uuid."""
    out = {}
    for r in sim.requests():
        if r["method"] == "POST" and r["target"].startswith("/events/add") and r["status"] == 200:
            u = json.loads(r["body"])["Event"]["uuid"]
            out[u] = out.get(u, 0) + 1
    return out


def event_request_targets(sim):
    return [(r["method"], r["target"].split("/")[1:3]) for r in sim.requests() if not r["target"].startswith("/_sim")]


class DaemonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.sims = harness.TwoSims(MISP_SIM, SGSYNCD, cls.tmp.name)
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.sims.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.sims.reset()
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()
            if d.log is not None and os.environ.get("SGSYNC_E2E_VERBOSE"):
                print(harness.read(d.log.name)[-4000:])

    def sgsyncd(self, extra_link=None, metrics_listen="", max_attempts=8, **settings):
        type(self).counter += 1
        local, remote = self.sims.endpoints()
        base = {"blocked_tags_push": [], "interval_seconds": 1, "overlap_seconds": 0}
        base.update(settings)
        links = [harness.link_toml("portal", local, remote, **base)]
        d = self.sims.sgsyncd(f"{self._testMethodName}-{self.counter}", links, metrics_listen,
                              max_attempts=max_attempts)
        self.daemons.append(d)
        return d

    def edit_and_publish(self, sim, uuid, mutate):
        ev = sim.view(uuid)["Event"]
        mutate(ev)
        ev["timestamp"] = str(int(ev["timestamp"]) + 100)
        status, _, body = sim.request("POST", f"/events/edit/{uuid}", {"Event": ev})
        self.assertEqual(status, 200, body)
        status, _, body = sim.request("POST", f"/events/publish/{ev['id']}")
        self.assertEqual(status, 200, body)
        return int(ev["timestamp"])

    # ------------------------------------------------------------------ the sync itself

    def test_initial_sync_moves_events_both_ways_and_nothing_echoes_back(self):
        pushed = set(self.sims.member.control("POST", "seed", {"events": 5, "attributes": 4, "distribution": 3, "attribute_distribution": 5, "seed": 11})["uuids"])
        pulled = set(self.sims.portal.control("POST", "seed", {"events": 4, "attributes": 3, "distribution": 3, "attribute_distribution": 5, "seed": 12})["uuids"])
        d = self.sgsyncd()
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual([s["run"] for s in stats], ["portal push", "portal pull"])
        self.assertEqual(stats[0]["sent"], 5)
        self.assertEqual(stats[1]["sent"], 4)
        self.assertEqual(stats[1]["queued"], 4, "the 5 pushed events are not pulled back")
        self.assertTrue(pushed <= uuids_on(self.sims.portal))
        self.assertTrue(pulled <= uuids_on(self.sims.member))
        # A pulled event is stored as MISP's own pull stores it: Orgc kept, locked.
        one = self.sims.member.view(sorted(pulled)[0])["Event"]
        self.assertEqual(one["Orgc"]["uuid"], harness.ORG2[1])
        self.assertTrue(one["locked"])
        # A second run: nothing goes anywhere, the echo is not sent back to the member.
        self.sims.member.control("DELETE", "requests")
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(sum(s["sent"] for s in stats), 0, stats)
        self.assertEqual(adds_by_uuid(self.sims.member), {})

    def test_check_validates_the_file_and_refuses_a_key_file_others_can_read(self):
        d = self.sgsyncd()
        r = subprocess.run([SGSYNCD, "--config", d.config, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK (1 link)", r.stdout)
        os.chmod(self.sims.portal_key_file, 0o644)
        try:
            r = subprocess.run([SGSYNCD, "--config", d.config, "--check"], capture_output=True, text=True)
        finally:
            os.chmod(self.sims.portal_key_file, 0o600)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"has mode 0644: an API key file must be readable by the service only (chmod 600 {self.sims.portal_key_file})", r.stderr)
        self.assertIn(d.config + ":", r.stderr)
        self.assertNotIn(self.sims.sync_key, r.stderr)

    def test_several_links_run_in_one_process(self):
        pushed = set(self.sims.member.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 211})["uuids"])
        pulled = set(self.sims.portal.control("POST", "seed", {"events": 3, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 212})["uuids"])
        local, remote = self.sims.endpoints()
        common = {"blocked_tags_push": [], "overlap_seconds": 0}
        d = self.sims.sgsyncd("two-links", [harness.link_toml("outbound", local, remote, directions=["push"], **common),
                                            harness.link_toml("inbound", local, remote, directions=["pull"], **common)])
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual([(s["run"], s["sent"]) for s in stats], [("outbound push", 2), ("inbound pull", 3)])
        self.assertTrue(pushed <= uuids_on(self.sims.portal))
        self.assertTrue(pulled <= uuids_on(self.sims.member))
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        self.assertEqual(sorted(r[0] for r in db.execute("SELECT name FROM links")), ["inbound", "outbound"])

    def test_incremental_sync_sends_an_edit_and_a_soft_delete(self):
        uuid = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 3, "distribution": 3, "attribute_distribution": 5, "seed": 21})["uuids"][0]
        d = self.sgsyncd(directions=["push"])
        self.assertEqual(d.once()[1][0]["sent"], 1)
        deleted_uuid = {}

        def edit(ev):
            ev["info"] = "edited on the member"
            live = [a for a in ev["Attribute"] if not a.get("deleted")]
            live[0]["deleted"] = True
            live[0]["timestamp"] = str(int(live[0]["timestamp"]) + 100)
            deleted_uuid["u"] = live[0]["uuid"]
            ev["Attribute"].append({"type": "ip-dst", "category": "Network activity", "value": "198.51.100.77",
                                    "to_ids": True, "distribution": "5", "uuid": "5f0e3c1e-6b8a-4b8e-9a55-0d0d0d0d0d01",
                                    "timestamp": str(int(ev["timestamp"]) + 100)})
        self.edit_and_publish(self.sims.member, uuid, edit)
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(stats[0]["sent"], 1, stats)
        got = self.sims.portal.view(uuid)["Event"]
        self.assertEqual(got["info"], "edited on the member")
        by_uuid = {a["uuid"]: a for a in got["Attribute"]}
        self.assertIn("5f0e3c1e-6b8a-4b8e-9a55-0d0d0d0d0d01", by_uuid)
        self.assertTrue(by_uuid[deleted_uuid["u"]]["deleted"], "the soft delete travelled")

    def test_policy_refusals_are_recorded_with_their_rule(self):
        # Distribution 0 ("your organisation only") never leaves; tlp:red is blocked by sgsync's default.
        self.sims.member.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 0, "seed": 31})
        d = self.sgsyncd(directions=["push"])
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(stats[0]["sent"], 0)
        self.assertEqual(stats[0]["skipped"], 2)
        self.assertEqual(list(stats[0]["skipped_by_reason"].values()), [2])
        self.assertEqual(uuids_on(self.sims.portal), set())
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        decisions = db.execute("SELECT decision, decision_json FROM ledger").fetchall()
        self.assertEqual(len(decisions), 2)
        for decision, why in decisions:
            self.assertEqual(decision, "skip")
            self.assertEqual(json.loads(why)["decision"], "skip")

    def test_spec_case_36_a_portal_account_without_perm_sync_moves_nothing_either_way(self):
        # MISP's own pull still runs with such an account (spec 12 case 36); sgsync refuses the link
        # whole (issue 16 item 8: only a sync user of the member's organisation is accepted).
        self.sims.member.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 121})
        pulled = set(self.sims.portal.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 122})["uuids"])
        key = self.sims.portal.control("POST", "setup", {"users": [{"email": "user@org1.test", "org_uuid": harness.ORG1[1], "role": "user"}]})["keys"]["user@org1.test"]
        saved = self.sims.portal_key_file
        self.sims.portal_key_file = harness.write_key(self.tmp.name, "portal-user.key", key)
        try:
            d = self.sgsyncd()
        finally:
            self.sims.portal_key_file = saved
        rc, stats, err = d.once()
        self.assertEqual(rc, 1)
        self.assertIn("has no perm_sync", stats[0]["error"])
        self.assertIn("has no perm_sync", stats[1]["error"])
        self.assertEqual(uuids_on(self.sims.portal) - pulled, set())
        self.assertFalse(pulled & uuids_on(self.sims.member), "nothing pulled with a non-sync account")

    def test_a_rule_change_makes_a_withheld_event_eligible_and_sent_and_reports_the_reverse(self):
        events = set(self.sims.member.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 141})["uuids"])
        d = self.sgsyncd(directions=["push"], blocked_tags_push=["tlp:green"])  # the generator tags events tlp:green
        rc, stats, err = d.once()
        self.assertEqual((rc, stats[0]["sent"], stats[0]["skipped"]), (0, 0, 2), err)
        self.assertEqual(uuids_on(self.sims.portal), set())
        text = harness.read(d.config)
        with open(d.config, "w") as f:
            f.write(text.replace('blocked_tags_push = ["tlp:green"]', "blocked_tags_push = []"))
        rc, stats, err = d.once()
        self.assertEqual((rc, stats[0]["sent"]), (0, 2), (stats, err))
        self.assertIn("every event is decided again", err)
        self.assertEqual(uuids_on(self.sims.portal), events)
        with open(d.config, "w") as f:
            f.write(text)
        rc, stats, err = d.once()
        self.assertEqual((rc, stats[0]["sent"], stats[0]["no_longer_eligible"]), (0, 0, 2), err)
        self.assertEqual(uuids_on(self.sims.portal), events, "MISP cannot retract: the Portal keeps its copies")
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        for decision, why in db.execute("SELECT decision, decision_json FROM ledger"):
            self.assertEqual(decision, "skip")
            self.assertIn("MISP cannot retract an event", " ".join(json.loads(why)["warnings"]))

    def test_an_event_with_an_old_timestamp_is_found_by_reconciliation(self):
        first = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 151})["uuids"][0]
        d = self.sgsyncd(directions=["push"])
        self.assertEqual(d.once()[1][0]["sent"], 1)
        self.edit_and_publish(self.sims.member, first, lambda ev: ev.update(info="moves the cursor on"))
        self.assertEqual(d.once()[1][0]["sent"], 1)
        # Created now, but with a timestamp behind the cursor (an import, a slow transaction: MISP #3666).
        late = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 152})["uuids"][0]
        rc, stats, err = d.once()
        self.assertEqual(stats[0]["sent"], 0, "the incremental run cannot see it")
        rc, stats, err = d.once(full=True)
        self.assertEqual((rc, stats[0]["sent"], stats[0]["late_arrivals"]), (0, 1, 1), err)
        self.assertIn(late, uuids_on(self.sims.portal))

    def test_a_copy_lowered_on_the_way_never_lowers_the_origin_on_its_way_back(self):
        # MISP #3155: connected communities (2) arrive as community (1) at the Portal, and would come
        # back as organisation only (0) if the Portal's edited copy were written over the origin.
        uuid = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 2, "attribute_distribution": 5, "seed": 181})["uuids"][0]
        d = self.sgsyncd()
        self.assertEqual(d.once(direction="push")[1][0]["sent"], 1)
        self.assertEqual(self.sims.portal.view(uuid)["Event"]["distribution"], "1")
        ev = self.sims.portal.view(uuid)["Event"]
        ev["info"] = "edited at the Portal"
        ev["timestamp"] = str(int(ev["timestamp"]) + 100)
        self.assertEqual(self.sims.portal.request("POST", f"/events/edit/{uuid}", {"Event": ev})[0], 200)
        self.assertEqual(self.sims.portal.request("POST", f"/events/publish/{ev['id']}")[0], 200)
        rc, stats, err = d.once(direction="pull")
        self.assertEqual((rc, stats[0]["sent"]), (0, 0), err)
        origin = self.sims.member.view(uuid)["Event"]
        self.assertEqual(origin["distribution"], "2")
        self.assertNotEqual(origin["info"], "edited at the Portal")

    def add_sightings(self, sim, event_uuid, n, org, date):
        ev = sim.view(event_uuid)["Event"]
        attribute = ev["Attribute"][0]["uuid"]
        rows = [{"uuid": harness.uuid_from(event_uuid, i), "attribute_uuid": attribute, "event_uuid": event_uuid,
                 "date_sighting": str(date), "source": "sensor", "type": "0",
                 # As MISP's upload sends them: a non-zero org_id with the Organisation (spec 8.1).
                 "org_id": "1", "Organisation": {"name": org[0], "uuid": org[1]}} for i in range(n)]
        status, _, body = sim.request("POST", f"/sightings/bulkSaveSightings/{event_uuid}", rows)
        self.assertEqual(status, 200, body)

    def sightings_on(self, sim, event_uuid, key=None):
        # On the Portal read as ORG1's sync account, which owns what sgsync pushed there: under
        # policy 0 MISP's sightings/restSearch shows the Portal's site admin (ORG2) none of ORG1's
        # sightings on an ORG1-owned event (Sighting::filterSightingsByAttributeACL).
        if key is None and sim is self.sims.portal:
            key = self.sims.sync_key
        status, _, body = sim.request("POST", "/sightings/restSearch/event",
                                      {"returnFormat": "json", "last": 0, "includeUuid": True, "uuid": [event_uuid]},
                                      key=key)
        self.assertEqual(status, 200, body)
        return body["response"]

    def test_spec_case_67_sightings_follow_the_members_sighting_policy_and_go_once(self):
        uuid = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 191})["uuids"][0]
        d = self.sgsyncd(directions=["push"])
        self.assertEqual(d.once()[1][0]["sent"], 1)
        self.add_sightings(self.sims.member, uuid, 3, harness.ORG1, int(time.time()))
        # Policy 0 (MISP's default): the Portal's organisation does not see the member's own sightings.
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual((d.sightings[0]["sent"], d.sightings[0]["withheld"]), (0, 3))
        self.assertEqual(self.sightings_on(self.sims.portal, uuid), [])
        text = harness.read(d.config)
        with open(d.config, "w") as f:
            f.write(text.replace("[link.local]", "sightings_policy = 2\n[link.local]"))
        rc, stats, err = d.once(full=True)
        self.assertEqual((rc, d.sightings[0]["sent"]), (0, 3), err)
        got = self.sightings_on(self.sims.portal, uuid)
        self.assertEqual(len(got), 3)
        self.assertEqual({s["Sighting"]["Organisation"]["uuid"] for s in got}, {harness.ORG1[1]}, "org kept")
        rc, stats, err = d.once(full=True)
        self.assertEqual(d.sightings[0]["sent"], 0, "nothing twice")
        self.assertEqual(len(self.sightings_on(self.sims.portal, uuid)), 3)

    def test_sightings_made_at_the_portal_are_pulled(self):
        uuid = self.sims.portal.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 192})["uuids"][0]
        d = self.sgsyncd(directions=["pull"])
        self.assertEqual(d.once()[1][0]["sent"], 1)
        # Sightings by the member's organisation on the Portal's event: policy 0 serves them to it.
        self.add_sightings(self.sims.portal, uuid, 2, harness.ORG1, int(time.time()))
        rc, stats, err = d.once()
        self.assertEqual((rc, d.sightings[0]["sent"]), (0, 2), err)
        self.assertEqual(len(self.sightings_on(self.sims.member, uuid)), 2)

    def proposal(self, event_uuid, n, org, timestamp, value=None, old_id="0"):
        return {"uuid": harness.uuid_from(event_uuid, 500 + n), "event_uuid": event_uuid, "old_id": old_id,
                "type": "domain", "category": "Network activity", "to_ids": True, "comment": f"proposal {n}",
                "value": value or f"proposed-{n}.example", "timestamp": str(timestamp), "deleted": False,
                "proposal_to_delete": False, "org_uuid": org[1], "Org": {"name": org[0], "uuid": org[1]}}

    def proposals_on(self, sim):
        status, _, body = sim.request("GET", "/shadow_attributes/index/all:1/timestamp:0/deleted[]:0/deleted[]:1.json")
        self.assertEqual(status, 200, body)
        return sorted((p["ShadowAttribute"]["uuid"], p["ShadowAttribute"]["value"], p["ShadowAttribute"]["timestamp"])
                      for p in body)

    def test_spec_case_72_proposals_travel_both_ways_newer_ones_replace_and_old_ones_stay(self):
        uuid = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 193})["uuids"][0]
        d = self.sgsyncd()
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        now = int(time.time())
        # Made at the Portal by its organisation: one ten days old, one a hundred days old.
        recent = self.proposal(uuid, 1, harness.ORG2, now - 10 * 86400)
        ancient = self.proposal(uuid, 2, harness.ORG2, now - 100 * 86400)
        self.sims.portal.control("POST", "proposals", [recent, ancient])
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.proposals_on(self.sims.member), [(recent["uuid"], recent["value"], recent["timestamp"])],
                         "the 90-day window of MISP's pull leaves the 100-day-old proposal out")
        self.assertEqual(sum(s["proposals_sent"] for s in d.sightings), 1)
        rc, stats, err = d.once()
        self.assertEqual(sum(s["proposals_sent"] for s in d.sightings), 0, "nothing twice, in either direction")
        # The same proposal made newer at the Portal replaces the member's copy.
        newer = dict(recent, timestamp=str(now - 5 * 86400))
        self.sims.portal.control("POST", "proposals", [newer])
        rc, stats, err = d.once()
        self.assertEqual(self.proposals_on(self.sims.member), [(newer["uuid"], newer["value"], newer["timestamp"])])
        # A proposal made on the member's MISP reaches the Portal.
        mine = self.proposal(uuid, 3, harness.ORG1, now - 60)
        self.sims.member.control("POST", "proposals", [mine])
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertIn((mine["uuid"], mine["value"], mine["timestamp"]), self.proposals_on(self.sims.portal))
        # Each pushed row names the owner of the receiver's copy by the receiver's own id: real MISP
        # stores the row as sent and refuses one without event_org_id (500), as misp-sim now does.
        for sim in (self.sims.member, self.sims.portal):
            held = sim.view(uuid)["Event"]["org_id"]
            rows = [row for r in sim.requests() if r["target"].startswith("/events/pushProposals")
                    for row in json.loads(r["body"])]
            self.assertTrue(rows)
            self.assertEqual({row["event_org_id"] for row in rows}, {held})
        status, _, _ = self.sims.portal.request("POST", f"/events/pushProposals/{uuid}",
                                                [dict(self.proposal(uuid, 4, harness.ORG1, now - 30))])
        self.assertEqual(status, 500, "a proposal row without event_org_id")

    def note(self, n, org, distribution, modified, locked=False, kind="Note"):
        entry = {"uuid": harness.uuid_from("analyst-data", n), "distribution": str(distribution),
                 "modified": modified, "created": modified, "locked": locked, "orgc_uuid": org[1],
                 "org_uuid": org[1], "object_type": "Event", "object_uuid": harness.uuid_from("target", 1),
                 "Orgc": {"name": org[0], "uuid": org[1]}}
        entry.update({"Note": {"note": f"note {n}"}, "Opinion": {"opinion": "75", "comment": f"opinion {n}"}}[kind])
        return {kind: entry}

    def analyst_data_on(self, sim, kind="Note"):
        status, _, body = sim.request("GET", f"/analyst_data/index/{kind}.json")
        self.assertEqual(status, 200, body)
        return {e[kind]["uuid"]: e[kind] for e in body}

    def test_analyst_data_travel_by_distribution_and_never_overwrite_the_receivers_own(self):
        shared = self.note(1, harness.ORG1, 3, "2026-11-01 10:00:00")
        private = self.note(2, harness.ORG1, 0, "2026-11-01 10:00:00")
        community = self.note(3, harness.ORG1, 2, "2026-11-01 10:00:00", kind="Opinion")
        theirs = self.note(4, harness.ORG1, 3, "2026-11-01 10:00:00")  # the same uuid exists at the Portal, unlocked
        self.sims.member.control("POST", "analyst_data", [shared, private, community, theirs])
        portal_own = self.note(4, harness.ORG2, 3, "2026-10-01 10:00:00")
        portal_note = self.note(5, harness.ORG2, 2, "2026-11-02 10:00:00")
        self.sims.portal.control("POST", "analyst_data", [portal_own, portal_note])
        d = self.sgsyncd()
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        push, pull = d.sightings[0], d.sightings[1]
        self.assertEqual((push["analyst_data_sent"], push["analyst_data_withheld"]), (2, 1), push)
        at_portal = self.analyst_data_on(self.sims.portal)
        self.assertIn(shared["Note"]["uuid"], at_portal)
        self.assertTrue(at_portal[shared["Note"]["uuid"]]["locked"], "sent locked")
        self.assertNotIn(private["Note"]["uuid"], at_portal, "distribution 0 stays home")
        self.assertEqual(self.analyst_data_on(self.sims.portal, "Opinion")[community["Opinion"]["uuid"]]["distribution"],
                         "1", "2 -> 1 on the way")
        # Spec case 75: the Portal's own (unlocked) copy is never overwritten, even by a newer one.
        self.assertEqual(at_portal[theirs["Note"]["uuid"]]["modified"], "2026-10-01 10:00:00")
        # Pulled: the Portal's note, downgraded 2 -> 1 and locked.
        at_member = self.analyst_data_on(self.sims.member)
        self.assertEqual(pull["analyst_data_sent"], 1, pull)
        self.assertEqual(at_member[portal_note["Note"]["uuid"]]["distribution"], "1")
        self.assertTrue(at_member[portal_note["Note"]["uuid"]]["locked"])
        # Nothing twice; a newer version of a note the Portal holds locked replaces it (case 75).
        rc, stats, err = d.once()
        self.assertEqual([s["analyst_data_sent"] for s in d.sightings], [0, 0])
        newer = self.note(1, harness.ORG1, 3, "2026-11-20 10:00:00")
        self.sims.member.control("POST", "analyst_data", [newer])
        rc, stats, err = d.once()
        self.assertEqual(d.sightings[0]["analyst_data_sent"], 1)
        self.assertEqual(self.analyst_data_on(self.sims.portal)[shared["Note"]["uuid"]]["modified"], "2026-11-20 10:00:00")

    def cluster(self, n, org, distribution, version, published=True, default=False, relations=None):
        uuid = harness.uuid_from("cluster", n)
        return {"GalaxyCluster": {
            "uuid": uuid, "type": "threat-actor", "value": f"Actor {n}", "description": "custom",
            "version": str(version), "distribution": str(distribution), "published": published, "default": default,
            "locked": False, "org_uuid": org[1], "orgc_uuid": org[1], "Orgc": {"name": org[0], "uuid": org[1]},
            "tag_name": f'misp-galaxy:threat-actor="{uuid}"',
            "Galaxy": {"uuid": "698774c7-8022-42c4-917f-8d6e4f06ada3", "name": "Threat Actor", "type": "threat-actor",
                       "namespace": "misp"},
            "GalaxyElement": [{"id": "9", "key": "synonyms", "value": f"A{n}"}],
            "GalaxyClusterRelation": relations or []}}

    def clusters_on(self, sim):
        status, _, body = sim.request("POST", "/galaxy_clusters/restSearch", {"minimal": 0, "custom": 1})
        self.assertEqual(status, 200, body)
        return {c["GalaxyCluster"]["uuid"]: c["GalaxyCluster"] for c in body["response"]}

    def test_spec_cases_73_74_custom_clusters_travel_by_version_and_distribution(self):
        relations = [{"id": "1", "distribution": "0", "referenced_galaxy_cluster_uuid": harness.uuid_from("cluster", 9),
                      "referenced_galaxy_cluster_type": "related-to"},
                     {"id": "2", "distribution": "3", "referenced_galaxy_cluster_uuid": harness.uuid_from("cluster", 8),
                      "referenced_galaxy_cluster_type": "similar"}]
        shared = self.cluster(1, harness.ORG1, 3, 5, relations=relations)
        private = self.cluster(2, harness.ORG1, 0, 1)
        draft = self.cluster(3, harness.ORG1, 3, 1, published=False)
        community = self.cluster(4, harness.ORG1, 2, 2)
        self.sims.member.control("POST", "clusters", [shared, private, draft, community])
        portal_cluster = self.cluster(5, harness.ORG2, 2, 3)
        self.sims.portal.control("POST", "clusters", [portal_cluster])
        d = self.sgsyncd()
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        push, pull = d.sightings[0], d.sightings[1]
        self.assertEqual((push["clusters_sent"], push["clusters_withheld"]), (2, 1), push)
        at_portal = self.clusters_on(self.sims.portal)
        sent = at_portal[shared["GalaxyCluster"]["uuid"]]
        self.assertEqual([r["referenced_galaxy_cluster_type"] for r in sent["GalaxyClusterRelation"]], ["similar"],
                         "the distribution-0 relation stays home")
        self.assertNotIn(private["GalaxyCluster"]["uuid"], at_portal)
        self.assertNotIn(draft["GalaxyCluster"]["uuid"], at_portal, "unpublished clusters are not pushed")
        self.assertEqual(at_portal[community["GalaxyCluster"]["uuid"]]["distribution"], "1")
        # Case 74: pulled from a non-internal server, 2 -> 1 and locked.
        self.assertEqual(pull["clusters_sent"], 1, pull)
        pulled = self.clusters_on(self.sims.member)[portal_cluster["GalaxyCluster"]["uuid"]]
        self.assertEqual((pulled["distribution"], pulled["locked"]), ("1", True))
        # Case 73: the same version is not sent again; a newer one is.
        rc, stats, err = d.once()
        self.assertEqual([s["clusters_sent"] for s in d.sightings], [0, 0])
        self.sims.member.control("POST", "clusters", [self.cluster(1, harness.ORG1, 3, 6, relations=relations)])
        rc, stats, err = d.once()
        self.assertEqual(d.sightings[0]["clusters_sent"], 1)
        self.assertEqual(self.clusters_on(self.sims.portal)[shared["GalaxyCluster"]["uuid"]]["version"], "6")

    def test_10k_sightings_sync_without_delaying_a_new_event_behind_them(self):
        first = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 193})["uuids"][0]
        d = self.sgsyncd(directions=["push"], sightings_policy=2)
        self.assertEqual(d.once()[1][0]["sent"], 1)
        self.add_sightings(self.sims.member, first, 10000, harness.ORG1, int(time.time()))
        # The Portal takes 1.5 s per bulkSaveSightings (2 000 sightings each): 7.5 s for the backlog.
        self.sims.portal.control("POST", "faults", {"route": "/sightings/bulkSaveSightings", "latency_ms": 1500})
        new = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 194})["uuids"][0]
        d.start(os.path.join(self.tmp.name, "sightings.log"))
        harness.wait_for(lambda: self.sims.portal.view(new) is not None, timeout=60, what="the new event")
        self.assertLess(len(self.sightings_on(self.sims.portal, first)), 10000,
                        "the event arrived while the sightings were still on their way")
        harness.wait_for(lambda: len(self.sightings_on(self.sims.portal, first)) == 10000, timeout=120,
                         interval=1, what="all 10 000 sightings")

    def edit_info(self, sim, uuid, info, bump):
        ev = sim.view(uuid)["Event"]
        ev["info"] = info
        ev["timestamp"] = str(int(ev["timestamp"]) + bump)
        self.assertEqual(sim.request("POST", f"/events/edit/{uuid}", {"Event": ev})[0], 200)
        self.assertEqual(sim.request("POST", f"/events/publish/{ev['id']}")[0], 200)

    def pull_conflict(self, policy):
        """A Portal event pulled, then changed on the member and at the Portal (newer there)."""
        uuid = self.sims.portal.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 201})["uuids"][0]
        d = self.sgsyncd(conflict_policy=policy)
        self.assertEqual(d.once(direction="pull")[1][0]["sent"], 1)
        self.edit_info(self.sims.member, uuid, "changed on the member", 100)
        d.once(direction="push")
        self.edit_info(self.sims.portal, uuid, "changed at the Portal", 200)
        rc, stats, err = d.once(direction="pull")
        self.assertEqual((rc, stats[0]["conflicts"]), (0, 1), err)
        return uuid, d, stats[0]

    def push_conflict(self, policy):
        """A member event pushed, then changed at the Portal, then on the member (newer there)."""
        uuid = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 202})["uuids"][0]
        d = self.sgsyncd(conflict_policy=policy)
        self.assertEqual(d.once(direction="push")[1][0]["sent"], 1)
        self.edit_info(self.sims.portal, uuid, "changed at the Portal", 200)
        d.once(direction="pull")
        self.edit_info(self.sims.member, uuid, "changed on the member", 300)
        rc, stats, err = d.once(direction="push")
        self.assertEqual((rc, stats[0]["conflicts"]), (0, 1), err)
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        differences = json.loads(db.execute("SELECT differences FROM conflicts").fetchone()[0])
        self.assertEqual(differences["event_fields"], ["info"])
        return uuid, d, stats[0]

    def test_a_conflict_under_prefer_newer_lets_the_strictly_newer_copy_win(self):
        uuid, d, stats = self.push_conflict("prefer-newer")
        self.assertEqual(stats["sent"], 1)
        self.assertEqual(self.sims.portal.view(uuid)["Event"]["info"], "changed on the member")

    def test_a_conflict_under_prefer_portal_keeps_the_portals_copy(self):
        uuid, d, stats = self.push_conflict("prefer-portal")
        self.assertEqual((stats["sent"], stats["held"]), (0, 1))
        self.assertEqual(self.sims.portal.view(uuid)["Event"]["info"], "changed at the Portal")

    def test_a_conflict_under_prefer_local_keeps_the_members_copy(self):
        uuid, d, stats = self.pull_conflict("prefer-local")
        self.assertEqual((stats["sent"], stats["held"]), (0, 1))
        self.assertEqual(self.sims.member.view(uuid)["Event"]["info"], "changed on the member")

    def delete_at_portal(self, uuid):
        ev = self.sims.portal.view(uuid)["Event"]
        status, _, body = self.sims.portal.request("POST", f"/events/delete/{ev['id']}")
        self.assertEqual(status, 200, body)
        return ev

    def test_an_event_deleted_at_the_portal_stays_on_the_member_when_tombstones_are_off(self):
        uuid = self.sims.portal.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 161})["uuids"][0]
        d = self.sgsyncd(directions=["pull"])
        self.assertEqual(d.once()[1][0]["sent"], 1)
        self.delete_at_portal(uuid)
        rc, stats, err = d.once(full=True)
        self.assertEqual((rc, stats[0]["deleted_at_source"], stats[0]["tombstoned"]), (0, 1, 0), err)
        self.assertIsNotNone(self.sims.member.view(uuid))
        self.assertIn("tombstones are off", err)

    def test_a_tombstone_removes_the_members_copy_only_when_enabled_and_it_is_never_pulled_again(self):
        uuids = self.sims.portal.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 171})["uuids"]
        d = self.sgsyncd(directions=["pull"], tombstones=True)
        self.assertEqual(d.once()[1][0]["sent"], 2)
        gone = self.delete_at_portal(uuids[0])
        # The other one only leaves the sync account's view: distribution lowered to 0 at the Portal.
        kept = self.sims.portal.view(uuids[1])["Event"]
        kept["distribution"] = "0"
        kept["timestamp"] = str(int(kept["timestamp"]) + 100)
        self.assertEqual(self.sims.portal.request("POST", f"/events/edit/{uuids[1]}", {"Event": kept})[0], 200)
        rc, stats, err = d.once(full=True)
        self.assertEqual((rc, stats[0]["deleted_at_source"], stats[0]["tombstoned"]), (0, 1, 1), err)
        self.assertIsNone(self.sims.member.view(uuids[0]), "the member's copy is deleted")
        self.assertIsNotNone(self.sims.member.view(uuids[1]), "not deleted at the Portal: the copy stays")
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        self.assertEqual(db.execute("SELECT count(*) FROM tombstones").fetchone()[0], 1)
        audit = db.execute("SELECT actor, action, target, result FROM audit").fetchall()
        self.assertEqual(audit, [("sgsyncd", "tombstone", f"portal {uuids[0]}", "ok")])
        # The event comes back at the Portal (restored from a backup): it is not pulled again.
        self.sims.portal.control("POST", "load", {"Event": gone})
        rc, stats, err = d.once(full=True)
        self.assertEqual(stats[0]["sent"], 0, err)
        self.assertIsNone(self.sims.member.view(uuids[0]))

    # ------------------------------------------------------------------ cost and resilience

    def test_a_links_start_asks_both_misps_at_once(self):
        # The Portal holds its users/view/me answer for 3 s. Asked one after the other, the
        # member's getVersion would come only after it; asked at once, it is answered while the
        # Portal still holds it. The order of answers is asserted, not a duration.
        self.sims.portal.control("POST", "faults", {"route": "/users/view/me", "latency_ms": 3000})
        d = self.sgsyncd(directions=["push"])
        d.start(os.path.join(self.tmp.name, "discovery.log"))

        def asked(sim, path):
            return any(r["target"].startswith(path) for r in sim.requests())
        harness.wait_for(lambda: asked(self.sims.member, "/servers/getVersion"), what="the member's getVersion")
        self.assertFalse(asked(self.sims.portal, "/users/view/me"),
                         "the member was asked only once the Portal had answered who sgsync is")
        harness.wait_for(lambda: asked(self.sims.portal, "/users/view/me"), what="the Portal's answer")
        harness.wait_for(lambda: "link portal: ready" in harness.read(os.path.join(self.tmp.name, "discovery.log")),
                         what="the link ready")

    def test_writes_after_an_idle_pause_do_not_go_out_on_connections_the_misp_closed(self):
        # misp-sim closes a kept-alive connection idle for 5 s and says so (Keep-Alive: timeout=5),
        # as Apache in front of a MISP does (KeepAliveTimeout). The runs are 8 s apart, so every
        # connection the first run kept is closed by the time the second writes; a write is never
        # repeated, so one sent on such a connection would fail and its event wait the queue's backoff
        # (30 s). Without the announcement (nginx) the pool sees the close itself: the transport's
        # AConnectionTheServerClosedWhileIdleIsNotUsedForAWrite and the real-MISP scenario.
        first = set(self.sims.member.control("POST", "seed", {"events": 8, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 141})["uuids"])
        d = self.sgsyncd(directions=["push"], interval_seconds=8, sightings=False, proposals=False,
                         galaxy_clusters=False, analyst_data=False)
        log = os.path.join(self.tmp.name, "idle-pause.log")
        d.start(log)
        harness.wait_for(lambda: first <= uuids_on(self.sims.portal), what="the first events at the Portal")
        second = set(self.sims.member.control("POST", "seed", {"events": 8, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 142})["uuids"])
        harness.wait_for(lambda: second <= uuids_on(self.sims.portal), timeout=60, what="the events added after the pause")
        # The run's summary is logged just after its last write lands: waited for, not raced.
        clean = "sent 8, already there 0, skipped 0, echo 0, failed 0"
        harness.wait_for(lambda: harness.read(log).count(clean) >= 2, timeout=10,
                         what="each of the two runs' summary: 8 events written, none failed")
        self.assertNotIn("closed while", harness.read(log), "a write went out on a connection the MISP had closed")

    def test_two_links_first_adds_naming_one_new_tag_do_not_race_at_the_portal(self):
        # MISP creates a tag in the add that first names it; two adds creating it at once fail (500),
        # and misp-sim answers so (TagRace). Two links of one sgsyncd each push one event naming the
        # same new tag, their adds slowed to 1 s: the Portal's gate is one for both links.
        now = int(time.time())
        uuids = []
        for n, pick in enumerate(["pick:a", "pick:b"]):
            ev = {"uuid": harness.uuid_from("newtag", n), "info": f"names a new tag ({pick})", "distribution": "3",
                  "analysis": "0", "threat_level_id": "2", "published": True, "date": "2026-12-05",
                  "timestamp": str(now),
                  "Tag": [{"name": "campaign:new-at-the-portal", "colour": "#339900", "exportable": True},
                          {"name": pick, "colour": "#339900", "exportable": True}],
                  "Attribute": [{"uuid": harness.uuid_from("newtag", 10 + n), "type": "domain",
                                 "category": "Network activity", "value": f"newtag{n}.example",
                                 "distribution": "5", "timestamp": str(now)}]}
            status, _, body = self.sims.member.request("POST", "/events/add", {"Event": ev})
            self.assertEqual(status, 200, body)
            uuids.append(ev["uuid"])
        self.sims.portal.control("POST", "faults", {"route": "/events/add", "latency_ms": 1000})
        local, remote = self.sims.endpoints()
        common = {"blocked_tags_push": [], "overlap_seconds": 0, "interval_seconds": 1, "directions": ["push"],
                  "sightings": False, "proposals": False, "galaxy_clusters": False, "analyst_data": False}
        d = self.sims.sgsyncd("new-tag-links", [
            harness.link_toml("a", local, remote, push_rules={"tags": {"OR": ["pick:a"]}}, **common),
            harness.link_toml("b", local, remote, push_rules={"tags": {"OR": ["pick:b"]}}, **common)])
        self.daemons.append(d)
        d.start(os.path.join(self.tmp.name, "new-tag-links.log"))
        harness.wait_for(lambda: set(uuids) <= uuids_on(self.sims.portal), timeout=90, what="both events at the Portal")
        refused = [r for r in self.sims.portal.requests() if r["target"] == "/events/add" and r["status"] == 500]
        self.assertEqual(len(refused), 0, "one link's add met the other's creating the tag (500)")

    def test_events_are_fetched_in_bulk_with_restsearch(self):
        events = set(self.sims.member.control("POST", "seed", {"events": 70, "attributes": 3, "distribution": 3, "attribute_distribution": 5, "seed": 131})["uuids"])
        d = self.sgsyncd(directions=["push"])
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(events, uuids_on(self.sims.portal))
        requests = [r for r in self.sims.member.requests() if not r["target"].startswith("/_sim")]
        targets = [r["target"] for r in requests]
        searches = [json.loads(r["body"]) for r in requests if r["target"] == "/events/restSearch"]
        # 70 events, 4 in flight: the run's first lease is two events per writer (8), so the
        # Portal starts writing while the full batch after them (64; 62 left) is fetched.
        self.assertEqual([len(b["uuid"]) for b in searches if "metadata" not in b], [8, 62],
                         "a small first wave, then a batch's wave in one request")
        self.assertEqual([len(b["uuid"]) for b in searches if b.get("metadata")], [8, 62],
                         "each batch's sizes (batch_memory_mb), asked once for the batch")
        self.assertFalse([t for t in targets if t.startswith("/events/view")])

    def test_a_link_with_a_large_backlog_takes_turns_so_another_links_small_change_is_not_held_behind_it(self):
        # One worker for every run: without time slices the pull link would wait for the whole
        # backlog (40 adds of 300 ms, one at a time: about 12 s) before its turn.
        backlog = set(self.sims.member.control("POST", "seed", {"events": 40, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 301})["uuids"])
        self.sims.portal.control("POST", "faults", {"route": "/events/add", "latency_ms": 300})
        local, remote = self.sims.endpoints(portal_max_in_flight=1)
        common = {"blocked_tags_push": [], "overlap_seconds": 0, "interval_seconds": 1, "sightings": False,
                  "proposals": False, "galaxy_clusters": False, "analyst_data": False}
        d = self.sims.sgsyncd("fair-turns", [
            harness.link_toml("backlog", local, remote, directions=["push"], **common),
            harness.link_toml("small", local, remote, directions=["pull"], pull_rules={"tags": {"OR": ["fresh"]}}, **common)],
            extra="workers = 1\nrun_time_slice_seconds = 1")
        self.daemons.append(d)
        d.start(os.path.join(self.tmp.name, "fair-turns.log"))
        harness.wait_for(lambda: len(uuids_on(self.sims.portal) & backlog) >= 2, what="the backlog under way")
        now = int(time.time())
        fresh = {"uuid": harness.uuid_from("fair", 1), "info": "one small change", "distribution": "3", "analysis": "0",
                 "threat_level_id": "2", "published": True, "date": "2026-12-01", "timestamp": str(now),
                 "Tag": [{"name": "fresh", "colour": "#339900", "exportable": True}],
                 "Attribute": [{"uuid": harness.uuid_from("fair", 2), "type": "domain", "category": "Network activity",
                                "value": "fresh.example", "distribution": "5", "timestamp": str(now)}]}
        status, _, body = self.sims.portal.request("POST", "/events/add", {"Event": fresh})
        self.assertEqual(status, 200, body)
        harness.wait_for(lambda: fresh["uuid"] in uuids_on(self.sims.member), timeout=60, what="the small change pulled")
        on_portal = len(uuids_on(self.sims.portal) & backlog)
        self.assertLess(on_portal, 30, "the pull waited for most of the backlog")
        harness.wait_for(lambda: backlog <= uuids_on(self.sims.portal), timeout=120, what="the whole backlog")
        log = harness.read(os.path.join(self.tmp.name, "fair-turns.log"))
        self.assertIn("its time slice is up, more queued", log)
        self.assertEqual(adds_by_uuid(self.sims.portal), {u: 1 for u in backlog} | {fresh["uuid"]: 1})

    def test_thirty_links_run_on_the_configured_workers_not_threads_per_link(self):
        uuids = set(self.sims.member.control("POST", "seed", {"events": 5, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 302})["uuids"])
        local, remote = self.sims.endpoints(member_max_in_flight=2, portal_max_in_flight=2)
        common = {"blocked_tags_push": [], "overlap_seconds": 0, "interval_seconds": 1}
        links = [harness.link_toml(f"member-{i}", local, remote, **common) for i in range(30)]
        d = self.sims.sgsyncd("thirty-links", links, extra="workers = 2\nmax_requests_in_flight = 3")
        self.daemons.append(d)
        d.start(os.path.join(self.tmp.name, "thirty-links.log"))
        peak = 0

        def threads():
            with open(f"/proc/{d.proc.pid}/status") as f:
                return int(next(l.split()[1] for l in f if l.startswith("Threads:")))

        def converged():
            nonlocal peak
            peak = max(peak, threads())
            path = d.config.replace(".toml", ".db")
            if not os.path.exists(path):
                return False
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                ran = db.execute("SELECT COUNT(DISTINCT link_id) FROM cursors WHERE last_timestamp > 0").fetchone()[0]
            except sqlite3.OperationalError:  # the daemon is still creating its schema
                return False
            finally:
                db.close()
            return uuids <= uuids_on(self.sims.portal) and ran >= 30
        harness.wait_for(converged, timeout=120, interval=0.05, what="every link's first runs")
        for _ in range(40):  # idle cycles
            peak = max(peak, threads())
            time.sleep(0.05)
        # Three threads per link before (push, pull, side channels): 90. Now 2 workers, each with up to
        # max_in_flight (2) helpers in a batch, beside the admin API's and the metrics listener's.
        self.assertLess(peak, 30, f"{peak} threads for 30 links on 2 workers")

    def test_a_cycle_with_nothing_new_costs_one_conditional_index_request_per_direction(self):
        self.sims.member.control("POST", "seed", {"events": 3, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 41})
        # Every side channel off (each switch means its own channel, issue 20): the events index is
        # then asked with the cursor's timestamp (with sightings on it is asked without one and
        # shared with them; the next test).
        d = self.sgsyncd(sightings=False, proposals=False, galaxy_clusters=False, analyst_data=False)
        d.start(os.path.join(self.tmp.name, "cheap.log"))
        harness.wait_for(lambda: len(uuids_on(self.sims.portal)) == 3, what="the first push")
        time.sleep(2.5)  # the second cycle learns the ETags
        self.sims.member.control("DELETE", "requests")
        self.sims.portal.control("DELETE", "requests")
        time.sleep(3.5)  # three cycles at interval_seconds = 1 (each about 1 s plus the run)
        member = [r for r in self.sims.member.requests() if not r["target"].startswith("/_sim")]
        portal = [r for r in self.sims.portal.requests() if not r["target"].startswith("/_sim")]
        # One request per cycle: the push lists the member's MISP, the pull the Portal.
        self.assertIn(len(member), (2, 3, 4))
        self.assertIn(len(portal), (2, 3, 4))
        for r in member + portal:
            self.assertEqual((r["method"], r["target"], r["status"]), ("POST", "/events/index", 304))
            self.assertIn("if-none-match", r["headers"])

    def test_an_idle_cycle_with_every_channel_on_costs_conditional_index_requests_only(self):
        self.sims.member.control("POST", "seed", {"events": 3, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 42})
        # The defaults: sightings every cycle, from the events channel's own conditional index
        # request (issue 19: one request per direction, not one per channel), proposals, clusters
        # and analyst data every other_channels_interval_seconds (an hour), asked once at the start.
        d = self.sgsyncd()
        d.start(os.path.join(self.tmp.name, "idle-defaults.log"))
        harness.wait_for(lambda: len(uuids_on(self.sims.portal)) == 3, what="the first push")
        harness.wait_for(lambda: any(r["target"].startswith("/shadow_attributes/index") for r in self.sims.portal.requests()),
                         what="the other channels asked once at the start")
        time.sleep(3.5)  # later cycles learn the ETags
        self.sims.member.control("DELETE", "requests")
        self.sims.portal.control("DELETE", "requests")
        time.sleep(3.5)  # three cycles at interval_seconds = 1
        requests = [r for sim in (self.sims.member, self.sims.portal) for r in sim.requests()
                    if not r["target"].startswith("/_sim")]
        self.assertTrue(requests)
        for r in requests:
            self.assertEqual((r["method"], r["target"], r["status"]), ("POST", "/events/index", 304), r["target"])
        # About three cycles: one request each to each MISP (two, with sightings asking their own).
        for sim in (self.sims.member, self.sims.portal):
            self.assertIn(len([r for r in sim.requests() if not r["target"].startswith("/_sim")]), (2, 3, 4))

    def test_portal_down_then_up_converges(self):
        events = set(self.sims.member.control("POST", "seed", {"events": 6, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 51})["uuids"])
        self.sims.portal.control("POST", "faults", {"error_rate": 1.0, "error_status": 503})
        d = self.sgsyncd(directions=["push"])
        rc, stats, err = d.once()
        self.assertNotEqual(rc, 0)
        self.assertIn("503", err + json.dumps(stats))
        self.sims.portal.control("DELETE", "faults")
        # The failed items wait out their backoff; a full run from a fresh process takes what is due.
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        db.execute("UPDATE work_queue SET next_attempt_at = 0")
        db.commit()
        db.close()
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(events, uuids_on(self.sims.portal))

    def test_a_failing_event_is_dead_lettered_without_blocking_the_others_and_then_no_longer_holds_the_cursor(self):
        events = self.sims.member.control("POST", "seed", {"events": 4, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 111})["uuids"]
        bad = events[0]
        self.sims.member.control("POST", "faults", {"route": f"/events/view/{bad}", "error_rate": 1.0, "error_status": 500})
        # The bulk fetch fails too: sgsync falls back to one view per event.
        self.sims.member.control("POST", "faults", {"route": "/events/restSearch", "error_rate": 1.0, "error_status": 500})
        d = self.sgsyncd(directions=["push"], max_attempts=1)
        rc, stats, err = d.once()
        self.assertEqual(rc, 1, "a failed event makes the run's exit code 1")
        self.assertEqual(stats[0]["sent"], 3)
        self.assertEqual(stats[0]["failed"], 1)
        self.assertEqual(uuids_on(self.sims.portal), set(events[1:]))
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        state, error = db.execute("SELECT state, last_error FROM work_queue WHERE uuid = ?", (bad,)).fetchone()
        self.assertEqual(state, "dead")
        self.assertIn("500", error)
        ts = int(self.sims.member.view(events[1])["Event"]["timestamp"])
        cursor = db.execute("SELECT last_timestamp FROM cursors WHERE direction = 'push' AND kind = 'events'").fetchone()[0]
        # Issue 23 item 5: a dead letter stops holding the cursor (a peer that never serves one event
        # would otherwise stop every later incremental run); it stays listed for retry.
        self.assertGreaterEqual(cursor, ts, "the cursor passes the dead event")
        self.assertNotIn(self.sims.member.admin_key, err)

    def test_daemon_rides_out_a_429_storm_and_converges(self):
        events = set(self.sims.member.control("POST", "seed", {"events": 8, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 61})["uuids"])
        self.sims.portal.control("POST", "faults", {"route": "/events/add", "error_rate": 0.6, "error_status": 429, "retry_after_s": 1})
        d = self.sgsyncd(directions=["push"])
        d.start(os.path.join(self.tmp.name, "storm.log"))
        time.sleep(3)
        self.sims.portal.control("DELETE", "faults")
        # Failed events back off (30 s base in the store); the test lowers nothing: it waits.
        harness.wait_for(lambda: events <= uuids_on(self.sims.portal), timeout=120, what="convergence after the storm")
        self.assertTrue(all(n == 1 for n in adds_by_uuid(self.sims.portal).values()))
        statuses = {r["status"] for r in self.sims.portal.requests() if r["target"].startswith("/events/add")}
        self.assertIn(429, statuses)

    def test_sigkill_in_the_middle_of_a_sync_then_restart_delivers_every_event_exactly_once(self):
        events = set(self.sims.member.control("POST", "seed", {"events": 60, "attributes": 5, "distribution": 3, "attribute_distribution": 5, "seed": 71})["uuids"])
        self.sims.portal.control("POST", "faults", {"route": "/events/add", "latency_ms": 60})
        d = self.sgsyncd(directions=["push"])
        log = os.path.join(self.tmp.name, "kill.log")
        d.start(log)
        harness.wait_for(lambda: len(adds_by_uuid(self.sims.portal)) >= 10, what="some events pushed")
        d.signal(signal.SIGKILL)
        d.wait()
        before = len(uuids_on(self.sims.portal))
        self.assertLess(before, 60, "killed before the end")
        self.sims.portal.control("DELETE", "faults")
        d.start(log + ".2")
        harness.wait_for(lambda: events <= uuids_on(self.sims.portal), timeout=120, what="all events after restart")
        adds = adds_by_uuid(self.sims.portal)
        self.assertEqual(set(adds), events)
        self.assertEqual(max(adds.values()), 1, "no event was added twice")

    def test_sigterm_stops_cleanly_and_leaves_a_consistent_state(self):
        self.sims.member.control("POST", "seed", {"events": 30, "attributes": 3, "distribution": 3, "attribute_distribution": 5, "seed": 81})
        self.sims.portal.control("POST", "faults", {"route": "/events/add", "latency_ms": 50})
        d = self.sgsyncd(directions=["push"])
        d.start(os.path.join(self.tmp.name, "term.log"))
        harness.wait_for(lambda: len(adds_by_uuid(self.sims.portal)) >= 5, what="some events pushed")
        d.signal(signal.SIGTERM)
        self.assertEqual(d.wait(timeout=15), 0)
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        # What the Portal acknowledged is recorded as done, and nothing else; the rest was handed back.
        done = {r[0] for r in db.execute("SELECT uuid FROM work_queue WHERE state = 'done'")}
        self.assertEqual(done, set(adds_by_uuid(self.sims.portal)))
        self.assertEqual(db.execute("SELECT count(*) FROM work_queue WHERE state = 'leased'").fetchone()[0], 0)
        self.assertIn("SIGTERM received", harness.read(d.log.name))

    def test_sighup_reloads_the_configuration_and_a_bad_file_keeps_the_old_one(self):
        d = self.sgsyncd(directions=["push"])
        log = os.path.join(self.tmp.name, "hup.log")
        d.start(log)
        harness.wait_for(lambda: "running 1 link" in harness.read(log), what="start")
        text = harness.read(d.config)
        with open(d.config, "w") as f:
            f.write(text + "\nthis is not toml = = =\n")
        d.signal(signal.SIGHUP)
        harness.wait_for(lambda: "reload refused" in harness.read(log), what="the refusal")
        with open(d.config, "w") as f:
            f.write(text.replace('directions = ["push"]', 'directions = ["push", "pull"]'))
        d.signal(signal.SIGHUP)
        harness.wait_for(lambda: "configuration reloaded" in harness.read(log), what="the reload")
        pulled = set(self.sims.portal.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 91})["uuids"])
        harness.wait_for(lambda: pulled <= uuids_on(self.sims.member), what="the pull enabled by the reload")
        self.assertTrue(d.proc.poll() is None)

    def test_metrics_endpoint_counts_events_requests_and_queue(self):
        self.sims.member.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 101})
        port = harness.free_port()
        d = self.sgsyncd(metrics_listen=f"127.0.0.1:{port}", directions=["push"])
        d.start(os.path.join(self.tmp.name, "metrics.log"))
        harness.wait_for(lambda: len(uuids_on(self.sims.portal)) == 2, what="the push")

        text = harness.wait_for(lambda: (lambda t: t if t and "sgsync_last_success_timestamp_seconds{" in t else None)(harness.scrape_metrics(port)),
                                what="a successful run in the metrics")
        self.assertIn('sgsync_events_total{link="portal",direction="push",outcome="sent"} 2', text)
        self.assertIn('sgsync_requests_total{peer="portal/remote",method="POST",route="/events/add",status="200"} 2', text)
        self.assertIn('sgsync_request_duration_seconds_bucket{peer="portal/local",route="/events/index",le="+Inf"}', text)
        self.assertIn('sgsync_queue_depth{link="portal",direction="push",state="dead"} 0', text)
        self.assertNotIn(self.sims.member.admin_key, text)
        self.assertNotIn(self.sims.sync_key, text)
        log = harness.read(d.log.name)
        self.assertNotIn(self.sims.member.admin_key, log)
        self.assertNotIn(self.sims.sync_key, log)

    def test_runs_after_the_misp_closed_idle_connections_resume_their_tls_sessions(self):
        # misp-sim closes connections idle for 5 s, as Apache does: each run 7 s apart connects anew to
        # the member's MISP (a push run asks its index), and a resumed handshake spares both sides the
        # certificate and the key exchange's signature.
        port = harness.free_port()
        d = self.sgsyncd(metrics_listen=f"127.0.0.1:{port}", directions=["push"], interval_seconds=7,
                         sightings=False, proposals=False, galaxy_clusters=False, analyst_data=False)
        d.start(os.path.join(self.tmp.name, "resume.log"))

        def handshakes():
            text = harness.scrape_metrics(port)
            if text is None:
                return None
            found = dict(re.findall(r'^sgsync_tls_handshakes_total\{peer="portal/local",resumed="(true|false)"\} (\d+)$',
                                    text, re.M))
            return found if "true" in found else None
        found = harness.wait_for(handshakes, timeout=30, what="a resumed TLS handshake with the member's MISP")
        self.assertGreaterEqual(int(found["false"]), 1, "the first connection made the session")

    def test_log_lines_carry_link_direction_run_and_event_in_json_and_text_and_a_journald_priority(self):
        uuids = self.sims.member.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 103})["uuids"]
        d = self.sgsyncd(directions=["push"])
        with open(d.config) as f:
            text = f.read()
        with open(d.config, "w") as f:
            f.write(text.replace('[log]\nlevel = "info"', '[log]\nformat = "json"\nlevel = "info"'))
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        lines = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
        written = [l for l in lines if l["message"].endswith(" written")]
        self.assertEqual(sorted(l["event_uuid"] for l in written), sorted(uuids))
        for l in written:
            self.assertEqual((l["link"], l["direction"]), ("portal", "push"))
            self.assertRegex(l["run_id"], r"^[0-9a-f]{8}$")
        self.assertEqual(len({l["run_id"] for l in written}), 1, "one run")
        # The text format shows the same fields as key=value; under journald, the priority first.
        with open(d.config, "w") as f:
            f.write(text)
        self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 104})
        os.environ["JOURNAL_STREAM"] = "8:12345"
        try:
            rc, stats, err = d.once(full=True)
        finally:
            del os.environ["JOURNAL_STREAM"]
        self.assertEqual(rc, 0, err)
        line = next(l for l in err.splitlines() if " written" in l)
        self.assertTrue(line.startswith("<6>info "), line)
        self.assertRegex(line, r" link=portal direction=push run_id=[0-9a-f]{8} event_uuid=[0-9a-f-]{36}$")

    def test_health_probes_say_live_and_ready_and_why_not(self):
        self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 102})
        port = harness.free_port()
        d = self.sgsyncd(metrics_listen=f"127.0.0.1:{port}", directions=["push"], sightings=False, proposals=False,
                         galaxy_clusters=False, analyst_data=False)
        with open(d.config) as f:
            text = f.read()
        with open(d.config, "w") as f:
            f.write(text.replace("[metrics]\n", "[metrics]\nready_failing_seconds = 2\n"))

        def probe(path):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
            except (urllib.error.URLError, ConnectionError):
                return 0, ""  # not listening yet
        d.start(os.path.join(self.tmp.name, "health.log"))
        harness.wait_for(lambda: probe("/readyz") == (200, "ready\n"), what="ready")
        self.assertEqual(probe("/healthz"), (200, "ok\n"))
        self.assertEqual(probe("/nope")[0], 404)
        self.sims.member.control("POST", "faults", {"error_rate": 1.0, "error_status": 503})
        status, body = harness.wait_for(lambda: (lambda a: a if a[0] == 503 else None)(probe("/readyz")),
                                        what="not ready while the member's MISP fails", timeout=30)
        self.assertIn("link portal push: failing for", body)
        self.assertEqual(probe("/healthz"), (200, "ok\n"), "alive all the same")
        self.sims.member.control("DELETE", "faults")
        harness.wait_for(lambda: probe("/readyz") == (200, "ready\n"), what="ready again", timeout=30)


if __name__ == "__main__":
    MISP_SIM, SGSYNCD = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
