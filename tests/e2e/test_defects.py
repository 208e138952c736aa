#!/usr/bin/env python3
"""Defects found in review and on real MISP (issue 16), each pinned end to end: misp-sim processes
over HTTPS, sgsyncd and sgsyncctl as operators run them, the state database on disk.

usage: test_defects.py MISP_SIM SGSYNCD SGSYNCCTL [unittest arguments]"""
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MISP_SIM = SGSYNCD = SGSYNCCTL = None


uuids_on = harness.uuids_on


class DefectsTest(harness.SimsTestCase):
    def sgsyncd(self, remote_extra=None, max_attempts=8, extra="", **settings):
        type(self).counter += 1
        local, remote = self.sims.endpoints()
        remote.update(remote_extra or {})
        base = {"interval_seconds": 1, "overlap_seconds": 0, "blocked_tags_push": []}
        base.update(settings)
        links = [harness.link_toml("portal", local, remote, **base)]
        d = self.sims.sgsyncd(f"{self._testMethodName}-{self.counter}", links, max_attempts=max_attempts,
                              extra=extra)
        self.daemons.append(d)
        return d

    def db(self, d):
        return sqlite3.connect(d.config.replace(".toml", ".db"))

    def ctl(self, d, *args):
        return subprocess.run([SGSYNCCTL, "--socket", d.admin_socket] + list(args), capture_output=True,
                              text=True, timeout=60)

    def seed(self, sim, n, seed, **shape):
        body = {"events": n, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": seed}
        body.update(shape)
        return sim.control("POST", "seed", body)["uuids"]

    # ------------------------------------------------------------------ 5. errors are not dropped

    def test_issue16_5_a_conflict_that_cannot_be_recorded_holds_the_event_instead_of_sending_it(self):
        uuid = self.seed(self.sims.member, 1, seed=1601)[0]
        d = self.sgsyncd()
        self.assertEqual(d.once(direction="push")[1][0]["sent"], 1)
        self.edit_info(self.sims.portal, uuid, "changed at the Portal", 200)
        d.once(direction="pull")
        self.edit_info(self.sims.member, uuid, "changed on the member", 300)
        db = self.db(d)
        db.execute("ALTER TABLE conflicts RENAME TO conflicts_gone")
        db.commit()
        rc, stats, err = d.once(direction="push")
        self.assertEqual(rc, 1, err)
        self.assertEqual((stats[0]["sent"], stats[0]["failed"]), (0, 1), stats)
        self.assertIn("no such table: conflicts", err)
        self.assertEqual(self.sims.portal.view(uuid)["Event"]["info"], "changed at the Portal",
                         "an unrecorded conflict is not resolved silently by sending")
        db.execute("ALTER TABLE conflicts_gone RENAME TO conflicts")
        db.commit()
        db.execute("UPDATE work_queue SET next_attempt_at = 0")
        db.commit()
        rc, stats, err = d.once(direction="push")
        self.assertEqual((stats[0]["conflicts"], stats[0]["sent"]), (1, 1), (stats, err))

    def test_issue16_5_a_state_database_that_cannot_be_read_is_reported_by_status_and_the_loop(self):
        self.seed(self.sims.member, 1, seed=1602)
        d = self.sgsyncd(directions=["push"])
        d.start(os.path.join(self.tmp.name, "store-fails.log"))
        harness.wait_for(lambda: len(uuids_on(self.sims.portal)) == 1, what="the push")
        self.assertEqual(self.ctl(d, "status").returncode, 0)
        db = self.db(d)
        db.execute("ALTER TABLE cursors RENAME TO cursors_gone")
        db.commit()
        r = self.ctl(d, "status")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("the state database could not be read", r.stderr)
        self.assertIn("no such table: cursors", r.stderr)
        harness.wait_for(lambda: "cannot read the cursor" in harness.read(d.log.name), timeout=30,
                         what="the loop reporting the cursor it cannot read")
        db.execute("ALTER TABLE cursors_gone RENAME TO cursors")
        db.commit()
        harness.wait_for(lambda: self.ctl(d, "status").returncode == 0, timeout=30, what="status again")


    # ------------------------------------------------------------------ 8. whose key

    def with_portal_key(self, key, **kw):
        saved = self.sims.portal_key_file
        self.sims.portal_key_file = harness.write_key(self.tmp.name, f"portal-{self.counter}.key", key)
        try:
            return self.sgsyncd(**kw)
        finally:
            self.sims.portal_key_file = saved

    def test_issue16_8_a_portal_key_of_the_portals_own_admin_is_refused_and_nothing_moves(self):
        private = self.seed(self.sims.portal, 1, seed=1681, distribution=0)[0]
        mine = self.seed(self.sims.member, 1, seed=1682)[0]
        d = self.with_portal_key(self.sims.portal.admin_key)
        rc, stats, err = d.once()
        self.assertEqual(rc, 1, err)
        for s in stats:
            self.assertIn("not to a user of the member's organisation ORG1", s["error"])
            self.assertIn("admin@ORG2 of ORG2", s["error"])
        self.assertNotIn(private, uuids_on(self.sims.member), "the Portal's distribution-0 event stays there")
        self.assertNotIn(mine, uuids_on(self.sims.portal))
        self.assertNotIn(self.sims.portal.admin_key, err)

    def test_issue16_8_a_site_admin_of_the_members_org_on_the_portal_needs_the_override(self):
        key = self.sims.portal.control("POST", "setup", {"users": [
            {"email": "root@org1.test", "org_uuid": harness.ORG1[1], "role": "site_admin"}]})["keys"]["root@org1.test"]
        self.seed(self.sims.member, 1, seed=1683)
        d = self.with_portal_key(key)
        rc, stats, err = d.once(direction="push")
        self.assertEqual(rc, 1)
        self.assertIn("is a site admin of the Portal", stats[0]["error"])
        d = self.with_portal_key(key, remote_extra={"allow_site_admin": True})
        rc, stats, err = d.once(direction="push")
        self.assertEqual((rc, stats[0]["sent"]), (0, 1), (stats, err))

    def test_issue16_8_a_remote_org_uuid_that_is_not_the_portals_own_is_refused(self):
        for org, why in ((harness.ORG3[1], "not one of its own organisations"),
                         (harness.ORG1[1], "the member's own organisation"),
                         ("00000000-0000-4000-8000-000000000001", "not an organisation the Portal knows")):
            d = self.sgsyncd(remote_extra={"org_uuid": org}, directions=["pull"])
            rc, stats, err = d.once()
            self.assertEqual(rc, 1, org)
            self.assertIn(why, stats[0]["error"], org)
            self.assertIn("remote.org_uuid", stats[0]["error"])

    def test_issue16_8_one_link_refused_leaves_the_other_links_running(self):
        pulled = self.seed(self.sims.portal, 1, seed=1684)[0]
        local, remote = self.sims.endpoints()
        bad_remote = dict(remote, api_key_file=harness.write_key(self.tmp.name, "admin.key", self.sims.portal.admin_key))
        links = [harness.link_toml("wrong-key", local, bad_remote, interval_seconds=1, directions=["pull"]),
                 harness.link_toml("portal", local, remote, interval_seconds=1, directions=["pull"])]
        d = self.sims.sgsyncd("two-links", links)
        self.daemons.append(d)
        rc, stats, err = d.once()
        by_run = {s["run"]: s for s in stats}
        self.assertIn("error", by_run["wrong-key pull"])
        self.assertEqual(by_run["portal pull"]["sent"], 1, err)
        self.assertIn(pulled, uuids_on(self.sims.member))
        d.start(os.path.join(self.tmp.name, "two-links.log"))
        harness.wait_for(lambda: os.path.exists(d.admin_socket), what="the admin socket")
        status = harness.wait_for(lambda: (lambda r: r if "not to a user of the member" in r.stdout else None)(
            self.ctl(d, "--json", "status")), timeout=30, what="the refused link in status")
        links = {l["link"]: l for l in json.loads(status.stdout)["links"]}
        self.assertIn("error:", links["wrong-key"]["directions"][0]["last_run_outcome"])

    # ------------------------------------------------------------------ 6. pause is remembered

    def sgsync_requests(self):
        """sgsync's requests to both MISPs since the logs were last cleared."""
        return [r for sim in (self.sims.member, self.sims.portal) for r in sim.requests()
                if not r["target"].startswith("/_sim")]

    def test_issue16_6_a_pause_stops_every_run_and_survives_a_reload_and_a_restart(self):
        d = self.sgsyncd()
        d.start(os.path.join(self.tmp.name, "pause-1.log"))
        harness.wait_for(lambda: os.path.exists(d.admin_socket), what="the admin socket")
        r = self.ctl(d, "pause", "--link", "portal")
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(1.5)  # a run in progress finishes
        self.sims.member.control("DELETE", "requests")
        self.sims.portal.control("DELETE", "requests")
        events = set(self.seed(self.sims.member, 2, seed=1661))
        time.sleep(3.5)  # interval 1 s: three cycles would have run
        self.assertEqual(self.sgsync_requests(), [], "paused: not one request to either MISP")
        status = json.loads(self.ctl(d, "--json", "status").stdout)["links"][0]
        for direction in status["directions"]:
            self.assertEqual(direction["state"], "paused")
            self.assertRegex(direction["paused_by"], r"^unix socket uid \d+.*, pid \d+, operator ")
            self.assertGreater(int(direction["paused_at"]), 0)
        self.assertIn("push paused by unix socket uid ", self.ctl(d, "status").stdout)
        # A reload, then a restart: still paused, still silent.
        d.signal(__import__("signal").SIGHUP)
        time.sleep(2.5)
        d.stop()
        d.start(os.path.join(self.tmp.name, "pause-2.log"))
        harness.wait_for(lambda: os.path.exists(d.admin_socket), what="the admin socket after the restart")
        time.sleep(3)
        self.assertEqual(self.sgsync_requests(), [], "still paused after a reload and a restart")
        self.assertEqual(events & uuids_on(self.sims.portal), set())
        status = json.loads(self.ctl(d, "--json", "status").stdout)["links"][0]
        self.assertEqual({x["state"] for x in status["directions"]}, {"paused"})
        audit = self.db(d).execute("SELECT action, result FROM audit WHERE action = 'Pause'").fetchall()
        self.assertEqual(audit, [("Pause", "ok")])
        # Resumed: the events flow.
        self.assertEqual(self.ctl(d, "resume", "--link", "portal").returncode, 0)
        harness.wait_for(lambda: events <= uuids_on(self.sims.portal), timeout=30, what="the push after resume")
        self.assertEqual(self.db(d).execute("SELECT count(*) FROM pauses").fetchone()[0], 0)

    # ------------------------------------------------------------------ 10. tombstones switched on later

    def test_issue16_10_a_deletion_seen_while_tombstones_were_off_is_applied_once_they_are_on(self):
        uuid = self.seed(self.sims.portal, 1, seed=1610)[0]
        d = self.sgsyncd(directions=["pull"])
        self.assertEqual(d.once()[1][0]["sent"], 1)
        ev = self.sims.portal.view(uuid)["Event"]
        self.assertEqual(self.sims.portal.request("POST", f"/events/delete/{ev['id']}")[0], 200)
        rc, stats, err = d.once(full=True)
        self.assertEqual((stats[0]["deleted_at_source"], stats[0]["tombstoned"]), (1, 0), err)
        rc, stats, err = d.once(full=True)
        self.assertEqual(stats[0]["deleted_at_source"], 0, "reported once, not at every full run")
        self.assertIsNotNone(self.sims.member.view(uuid))
        # The operator switches tombstones on: the next full run applies what was seen before.
        with open(d.config) as f:
            text = f.read()
        with open(d.config, "w") as f:
            f.write(text.replace('name = "portal"\n', 'name = "portal"\ntombstones = true\n', 1))
        rc, stats, err = d.once(full=True)
        self.assertEqual((rc, stats[0]["deleted_at_source"], stats[0]["tombstoned"]), (0, 1, 1), err)
        self.assertIsNone(self.sims.member.view(uuid))
        audit = self.db(d).execute("SELECT action, target, result FROM audit").fetchall()
        self.assertEqual(audit, [("tombstone", f"portal {uuid}", "ok")])

    # ------------------------------------------------------------------ 2. proposals follow the policy

    def proposals_on(self, sim):
        status, _, body = sim.request("GET", "/shadow_attributes/index/all:1/timestamp:0/deleted[]:0/deleted[]:1.json")
        self.assertEqual(status, 200, body)
        return {p["ShadowAttribute"]["uuid"] for p in body}

    def test_issue16_2_a_proposal_on_an_attribute_the_policy_withheld_stays_home(self):
        now = int(time.time())
        keep, private = harness.uuid_from("p162", 1), harness.uuid_from("p162", 2)
        ev = {"uuid": harness.uuid_from("p162", 0), "info": "proposals under the policy", "distribution": "3",
              "analysis": "0", "threat_level_id": "2", "published": True, "date": "2026-11-30",
              "timestamp": str(now - 600),
              "Attribute": [{"uuid": keep, "type": "domain", "category": "Network activity", "value": "keep.example",
                             "distribution": "5", "timestamp": str(now - 600)},
                            {"uuid": private, "type": "domain", "category": "Network activity",
                             "value": "private.example", "distribution": "0", "timestamp": str(now - 600)}]}
        status, _, body = self.sims.member.request("POST", "/events/add", {"Event": ev})
        self.assertEqual(status, 200, body)
        ids = {a["uuid"]: a["id"] for a in self.sims.member.view(ev["uuid"])["Event"]["Attribute"]}
        d = self.sgsyncd(directions=["push"])
        self.assertEqual(d.once()[1][0]["sent"], 1)
        portal_attrs = {a["uuid"] for a in self.sims.portal.view(ev["uuid"])["Event"]["Attribute"]}
        self.assertEqual(portal_attrs, {keep}, "the distribution-0 attribute stayed home")

        def proposal(n, uuid, old_id, value):
            return {"uuid": uuid, "event_uuid": ev["uuid"], "old_id": old_id, "type": "domain",
                    "category": "Network activity", "to_ids": True, "comment": f"proposal {n}", "value": value,
                    "timestamp": str(now - 60), "deleted": False, "proposal_to_delete": False,
                    "org_uuid": harness.ORG1[1], "Org": {"name": harness.ORG1[0], "uuid": harness.ORG1[1]}}
        on_private = proposal(1, private, ids[private], "still-private.example")
        on_keep = proposal(2, keep, ids[keep], "keep-changed.example")
        new_attr = proposal(3, harness.uuid_from("p162", 3), "0", "new.example")
        self.sims.member.control("POST", "proposals", [on_private, on_keep, new_attr])
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.proposals_on(self.sims.portal), {keep, new_attr["uuid"]})
        self.assertEqual(sum(s["proposals_withheld"] for s in d.sightings), 1)
        self.assertIn("proposal.attribute_withheld", err)
        bodies = [r["body"] for r in self.sims.portal.requests() if r["target"].startswith("/events/pushProposals")]
        self.assertFalse(any("still-private.example" in b or private in b for b in bodies),
                         "neither the value nor the uuid of the withheld attribute left")

    # ------------------------------------------------------------------ 9. conflicts, push first

    def test_issue16_9_a_conflict_is_recorded_when_push_runs_first(self):
        for policy, newer_at, expect_sent in (("prefer-newer", "member", 1), ("prefer-newer", "portal", 0),
                                              ("prefer-portal", "member", 0)):
            self.sims.reset()
            uuid = self.seed(self.sims.member, 1, seed=1690)[0]
            d = self.sgsyncd(conflict_policy=policy)
            self.assertEqual(d.once(direction="push")[1][0]["sent"], 1)
            # Both sides change the event; no pull runs in between.
            member_bump, portal_bump = (300, 200) if newer_at == "member" else (200, 300)
            self.edit_info(self.sims.portal, uuid, "changed at the Portal", portal_bump)
            self.edit_info(self.sims.member, uuid, "changed on the member", member_bump)
            rc, stats, err = d.once(direction="push")
            self.assertEqual((rc, stats[0]["conflicts"], stats[0]["sent"]), (0, 1, expect_sent),
                             (policy, newer_at, stats, err))
            row = self.db(d).execute("SELECT local_timestamp, remote_timestamp, differences FROM conflicts").fetchone()
            self.assertEqual(json.loads(row[2])["event_fields"], ["info"])
            want = "changed on the member" if expect_sent else "changed at the Portal"
            self.assertEqual(self.sims.portal.view(uuid)["Event"]["info"], want)

    # ------------------------------------------------------------------ 11. a write accepted in part

    def event_with_bad_object(self, n):
        now = int(time.time()) - 600
        return {"uuid": harness.uuid_from("p1611", n), "info": "an object without a description",
                "Orgc": {"name": harness.ORG1[0], "uuid": harness.ORG1[1]}, "distribution": "3", "attribute_count": "2", "analysis": "0", "threat_level_id": "2", "published": True,
                "date": "2026-11-30", "timestamp": str(now),
                "Attribute": [{"uuid": harness.uuid_from("p1611", 100 + n), "type": "domain",
                               "category": "Network activity", "value": f"fine-{n}.example", "distribution": "5",
                               "timestamp": str(now)}],
                "Object": [{"uuid": harness.uuid_from("p1611", 200 + n), "name": "domain-ip",
                            "meta-category": "network", "description": "",
                            "template_uuid": "43b3b146-77eb-4931-b4cc-b66c60f28734", "template_version": "9",
                            "distribution": "5", "timestamp": str(now),
                            "Attribute": [{"uuid": harness.uuid_from("p1611", 300 + n), "type": "ip-dst",
                                           "category": "Network activity", "value": "192.0.2.7",
                                           "object_relation": "ip", "distribution": "5",
                                           "timestamp": str(now)}]}]}

    def test_issue16_11_a_write_the_receiver_accepts_in_part_is_seen_recorded_and_handled_as_configured(self):
        # The member's MISP holds an object with an empty description (it was made through the API
        # before such a rule, or by a newer MISP): the Portal accepts the event and drops the object.
        for mode in ("accept", "retry", "dead_letter"):
            self.sims.reset()
            ev = self.event_with_bad_object({"accept": 1, "retry": 2, "dead_letter": 3}[mode])
            self.sims.member.control("POST", "load", {"Event": ev})
            d = self.sgsyncd(directions=["push"], on_partial_write=mode, max_attempts=2)
            rc, stats, err = d.once()
            self.assertIn("did not save Object " + ev["Object"][0]["uuid"], err, mode)
            saved = self.sims.portal.view(ev["uuid"])["Event"]
            self.assertEqual(saved.get("Object", []), [], "the Portal dropped the object: the case is real")
            db = self.db(d)
            state, last_error = db.execute("SELECT state, last_error FROM work_queue WHERE uuid = ?",
                                           (ev["uuid"],)).fetchone()
            if mode == "accept":
                self.assertEqual((rc, stats[0]["sent"], stats[0]["partial"]), (0, 1, 1), (stats, err))
                self.assertEqual(state, "done")
                decision = json.loads(db.execute("SELECT decision_json FROM ledger WHERE uuid = ?",
                                                 (ev["uuid"],)).fetchone()[0])
                self.assertEqual([x["uuid"] for x in decision["receiver_dropped"]], [ev["Object"][0]["uuid"]])
                r = subprocess.run([SGSYNCD, "--config", d.config, "--once"], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, "accepted: not sent again")
            elif mode == "retry":
                self.assertEqual((rc, stats[0]["sent"], stats[0]["failed"]), (1, 0, 1), (stats, err))
                self.assertEqual(state, "failed")
                self.assertIn("partial write: the Portal saved the event without 1 of its elements", last_error)
                # The next attempt finds the Portal's copy still short: dead-lettered (max_attempts 2).
                db.execute("UPDATE work_queue SET next_attempt_at = 0")
                db.commit()
                rc, stats, err = d.once()
                self.assertEqual(stats[0]["failed"], 1, (stats, err))
                self.assertEqual(db.execute("SELECT state FROM work_queue WHERE uuid = ?", (ev["uuid"],)).fetchone()[0],
                                 "dead")
            else:
                self.assertEqual((rc, stats[0]["failed"], stats[0]["partial"]), (1, 1, 1), (stats, err))
                self.assertEqual(state, "dead")
                self.assertIn("partial write", last_error)

    # ------------------------------------------------------------------ 3. sightings as MISP pushes them

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

    def test_issue16_3_a_members_sighting_made_before_publishing_follows_the_sighting_policy_not_the_event(self):
        for policy, expect in ((0, 0), (2, 1)):
            self.sims.reset()
            now = int(time.time()) - 600
            ev = {"uuid": harness.uuid_from("p163", policy), "info": "sighted before publishing", "distribution": "3",
                  "analysis": "0", "threat_level_id": "2", "published": False, "date": "2026-11-30",
                  "timestamp": str(now),
                  "Attribute": [{"uuid": harness.uuid_from("p163", 10 + policy), "type": "domain",
                                 "category": "Network activity", "value": "sighted.example", "distribution": "5",
                                 "timestamp": str(now)}]}
            status, _, body = self.sims.member.request("POST", "/events/add", {"Event": ev})
            self.assertEqual(status, 200, body)
            attribute_id = self.sims.member.view(ev["uuid"])["Event"]["Attribute"][0]["id"]
            # ORG1 (the member) sights it, then publishes the event (no publishSightings).
            self.assertEqual(self.sims.member.request("POST", f"/sightings/add/{attribute_id}", {"source": "ids"})[0], 200)
            self.assertEqual(self.sims.member.request("POST", f"/events/publish/{body['Event']['id']}")[0], 200)
            self.assertEqual(len(self.sightings_on(self.sims.member, ev["uuid"])), 1)
            d = self.sgsyncd(directions=["push"], sightings_policy=policy)
            rc, stats, err = d.once()
            self.assertEqual((rc, stats[0]["sent"]), (0, 1), err)
            adds = [r["body"] for r in self.sims.portal.requests() if r["target"].startswith("/events/add")]
            self.assertTrue(adds and all('"Sighting"' not in b for b in adds), "no sighting rides in the payload")
            arrived = self.sightings_on(self.sims.portal, ev["uuid"])
            self.assertEqual(len(arrived), expect,
                             f"policy {policy}: MISP's push shows the Portal's organisation "
                             f"{'only its own' if policy == 0 else 'every'} sighting (spec 8.1)")

    def test_issue16_3_a_portal_sighting_never_published_is_not_pulled_until_it_is(self):
        uuid = self.seed(self.sims.member, 1, seed=1631)[0]
        d = self.sgsyncd()
        self.assertEqual(d.once()[1][0]["sent"], 1)
        attribute_id = self.sims.portal.view(uuid)["Event"]["Attribute"][0]["id"]
        key = self.sims.portal.control("POST", "setup", {"users": [
            {"email": "analyst@org2.test", "org_uuid": harness.ORG2[1], "role": "user"}]})["keys"]["analyst@org2.test"]
        status, _, body = self.sims.portal.request("POST", f"/sightings/add/{attribute_id}", {"source": "portal"}, key=key)
        self.assertEqual(status, 200, body)
        rc, stats, err = d.once()
        self.assertEqual(self.sightings_on(self.sims.member, uuid), [], "not published: real MISP pulls none")
        ev = self.sims.portal.view(uuid)["Event"]
        self.assertEqual(self.sims.portal.request("POST", f"/events/publishSightings/{ev['id']}", key=key)[0], 200)
        rc, stats, err = d.once()
        self.assertEqual(len(self.sightings_on(self.sims.member, uuid)), 1, err)

    def test_issue16_3_misp_sim_dates_sightings_as_misp_does_captured_ones_do_not_move_sighting_timestamp(self):
        # MISP 2.5.1: Sighting::captureSightings (an event added or edited with sightings in it) leaves
        # Event.sighting_timestamp alone; events/publishSightings sets it (Event::publishSightings).
        now = int(time.time()) - 600
        ev = {"uuid": harness.uuid_from("p163s", 0), "info": "sightings inside", "distribution": "3",
              "analysis": "0", "threat_level_id": "2", "published": True, "date": "2026-11-30", "timestamp": str(now),
              "Attribute": [{"uuid": harness.uuid_from("p163s", 1), "type": "domain", "category": "Network activity",
                             "value": "inside.example", "distribution": "5", "timestamp": str(now),
                             "Sighting": [{"uuid": harness.uuid_from("p163s", 2), "date_sighting": str(now),
                                           "source": "x", "type": "0",
                                           "Organisation": {"name": harness.ORG1[0], "uuid": harness.ORG1[1]}}]}]}
        status, _, body = self.sims.portal.request("POST", "/events/add", {"Event": ev})
        self.assertEqual(status, 200, body)
        # Added by the Portal's admin, so owned by ORG2: its admin sees every sighting on it.
        self.assertEqual(len(self.sightings_on(self.sims.portal, ev["uuid"], key=self.sims.portal.admin_key)), 1,
                         "the sighting was captured")

        def row():
            status, _, rows = self.sims.portal.request("POST", "/events/index", {"minimal": 1})
            return [r for r in rows if r["uuid"] == ev["uuid"]][0]
        self.assertEqual(int(row()["sighting_timestamp"]), 0)
        self.assertEqual(self.sims.portal.request("POST", f"/events/publishSightings/{body['Event']['id']}")[0], 200)
        self.assertGreater(int(row()["sighting_timestamp"]), 0)

    # ------------------------------------------------------------------ 1. rules with ids

    def tagged_event(self, n, tag):
        now = int(time.time()) - 600
        ev = {"uuid": harness.uuid_from("p161", n), "info": f"tagged {tag}", "distribution": "3", "analysis": "0",
              "threat_level_id": "2", "published": True, "date": "2026-11-30", "timestamp": str(now),
              "Tag": [{"name": tag, "colour": "#cc0033", "exportable": True}],
              "Attribute": [{"uuid": harness.uuid_from("p161", 100 + n), "type": "domain",
                             "category": "Network activity", "value": f"t{n}.example", "distribution": "5",
                             "timestamp": str(now)}]}
        status, _, body = self.sims.member.request("POST", "/events/add", {"Event": ev})
        self.assertEqual(status, 200, body)
        return ev["uuid"]

    def test_issue16_1_push_rules_pasted_with_tag_ids_block_what_they_name(self):
        red = self.tagged_event(1, "tlp:red")
        green = self.tagged_event(2, "tlp:green")
        status, _, tags = self.sims.member.request("GET", "/tags/index")
        red_id = [t["id"] for t in tags["Tag"] if t["name"] == "tlp:red"][0]
        rules = {"tags": {"OR": [], "NOT": [red_id]}, "orgs": {"OR": [], "NOT": []}}
        d = self.sgsyncd(directions=["push"], push_rules=rules)
        rc, stats, err = d.once()
        self.assertEqual(rc, 0, err)
        self.assertEqual(stats[0]["skipped_by_reason"], {"push.rules.tags_not": 1}, (stats, err))
        self.assertEqual(uuids_on(self.sims.portal), {green})
        self.assertIn(f"push_rules.tags.NOT: {red_id} = tlp:red", err)
        # sgsyncctl config shows each id with its name.
        d.start(os.path.join(self.tmp.name, "rule-ids.log"))
        harness.wait_for(lambda: os.path.exists(d.admin_socket), what="the admin socket")
        shown = harness.wait_for(lambda: (lambda r: r.stdout if "= tlp:red" in r.stdout else None)(self.ctl(d, "config")),
                                 timeout=30, what="the resolved rule in sgsyncctl config")
        self.assertIn(f"# link portal: push_rules.tags.NOT: {red_id} = tlp:red (the member's MISP", shown)

    def test_issue16_1_a_rule_id_that_does_not_resolve_refuses_the_link_naming_it(self):
        self.tagged_event(3, "tlp:red")
        d = self.sgsyncd(directions=["push"], push_rules={"tags": {"OR": [], "NOT": ["999"]}})
        rc, stats, err = d.once()
        self.assertEqual(rc, 1)
        self.assertIn("push_rules.tags.NOT: tag id 999 is not a tag of the member's MISP", stats[0]["error"])
        self.assertEqual(uuids_on(self.sims.portal), set(), "nothing moves under a rule that cannot be read")

    def test_issue16_1_pull_rules_with_tag_ids_are_resolved_through_the_portal(self):
        now = int(time.time()) - 600
        made = {}
        for n, tag in ((1, "tlp:green"), (2, "tlp:amber")):
            ev = {"uuid": harness.uuid_from("p161p", n), "info": f"portal {tag}", "distribution": "3",
                  "analysis": "0", "threat_level_id": "2", "published": True, "date": "2026-11-30",
                  "timestamp": str(now), "Tag": [{"name": tag, "colour": "#339900", "exportable": True}],
                  "Attribute": [{"uuid": harness.uuid_from("p161p", 10 + n), "type": "domain",
                                 "category": "Network activity", "value": f"p{n}.example", "distribution": "5",
                                 "timestamp": str(now)}]}
            status, _, body = self.sims.portal.request("POST", "/events/add", {"Event": ev})
            self.assertEqual(status, 200, body)
            made[tag] = ev["uuid"]
        status, _, tags = self.sims.portal.request("GET", "/tags/index")
        green_id = [t["id"] for t in tags["Tag"] if t["name"] == "tlp:green"][0]
        d = self.sgsyncd(directions=["pull"], pull_rules={"tags": {"OR": [green_id], "NOT": []}})
        rc, stats, err = d.once()
        self.assertEqual((rc, stats[0]["sent"]), (0, 1), (stats, err))
        self.assertIn(made["tlp:green"], uuids_on(self.sims.member))
        self.assertNotIn(made["tlp:amber"], uuids_on(self.sims.member))
        self.assertIn(f"pull_rules.tags.OR: {green_id} = tlp:green", err)

if __name__ == "__main__":
    MISP_SIM, SGSYNCD, SGSYNCCTL = sys.argv[1], sys.argv[2], sys.argv[3]
    harness.SimsTestCase.MISP_SIM, harness.SimsTestCase.SGSYNCD = MISP_SIM, SGSYNCD
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)
