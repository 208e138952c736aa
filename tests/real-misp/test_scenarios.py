#!/usr/bin/env python3
"""sgsyncd against a real MISP pair (docs/testing.md): the end-to-end scenarios of tests/e2e that
make sense against real MISP, each asserting what arrived on the real instances.

Each scenario creates its own events, carrying a tag of its own (`sgsync-suite:<run>-<scenario>`),
and scopes its link to that tag with push and pull rules, and to the suite's own time with a sync
window (`initial_sync_since`), so that the events of earlier runs and other scenarios on the same
pair are left alone. MISP's own push and pull on instance 1's server
record are switched off while the suite runs and restored afterwards.

Usage: test_scenarios.py PAIR.json SGSYNCD SGSYNCCTL [unittest arguments]
"""
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness  # noqa: E402
from pair import Pair  # noqa: E402

PAIR = SGSYNCD = SGSYNCCTL = None


class RealMispTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pair = Pair(PAIR)
        cls.native = cls.pair.quiet_native_sync()
        cls.tmp = tempfile.TemporaryDirectory()
        # The sync window starts just before the suite: the pair's history (earlier runs, anything
        # else on it) is never listed, which is what a member joining with a large history does.
        cls.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))

    @classmethod
    def tearDownClass(cls):
        cls.pair.restore_native_sync(cls.native)
        cls.tmp.cleanup()

    def setUp(self):
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()

    # ---- sgsyncd for one scenario
    def config(self, scenario, metrics_listen="", **settings):
        p, work = self.pair, self.tmp.name
        local = {"url": p.member.url, "api_key_file": harness.write_key(work, scenario + "-member.key", p.member.key),
                 "org_uuid": p.member.org_uuid, "org_name": p.member.org_name}
        remote = {"url": p.portal.url, "api_key_file": harness.write_key(work, scenario + "-portal.key", p.sync_key),
                  "org_uuid": p.portal.org_uuid, "org_name": p.portal.org_name}
        for e in (local, remote):
            if e["url"].startswith("http://"):
                e["insecure_http"] = True
        tag = p.tag(scenario)
        link = dict(overlap_seconds=0, initial_sync_since=self.since,
                    push_rules={"tags": {"OR": [tag]}}, pull_rules={"tags": {"OR": [tag]}},
                    sightings=False, proposals=False, galaxy_clusters=False, analyst_data=False)
        link.update(settings)
        path = os.path.join(work, scenario + ".toml")
        with open(path, "w") as f:
            f.write(harness.daemon_toml(os.path.join(work, scenario + ".db"), [harness.link_toml("portal", local, remote, **link)],
                                        metrics_listen=metrics_listen))
        d = harness.Sgsyncd(SGSYNCD, path, harness.admin_socket_for(os.path.join(work, scenario + ".db")))
        self.daemons.append(d)
        return d, tag

    def once(self, d, **kw):
        rc, stats, err = d.once(**kw)
        self.assertEqual(rc, 0, err[-3000:])
        return {s["run"].split()[-1]: s for s in stats}

    def seed_member(self, tag, n, distribution="3", **extra):
        return [self.pair.member.add_event(self.pair.event(i, tag, distribution, **extra))["uuid"] for i in range(n)]

    def seed_portal(self, tag, n):
        return [self.pair.portal.add_event(self.pair.event(100 + i, tag))["uuid"] for i in range(n)]

    def assert_once(self, inst, tag, uuids):
        listed = inst.index_uuids(tag)
        for u in uuids:
            self.assertEqual(listed.count(u), 1, f"{u} on {inst.url}: {listed.count(u)} times")

    # ---- the scenarios
    def test_initial_sync_both_ways_sends_the_shareable_and_keeps_the_private_home(self):
        d, tag = self.config("initial")
        out = self.seed_member(tag, 3)
        private = self.seed_member(tag, 1, distribution="0")
        into = self.seed_portal(tag, 2)
        stats = self.once(d)
        self.assertEqual(stats["push"]["sent"], 3, stats["push"])
        self.assertEqual(stats["pull"]["sent"], 2, stats["pull"])
        self.assert_once(self.pair.portal, tag, out)
        self.assertNotIn(private[0], self.pair.portal.index_uuids(tag))
        self.assert_once(self.pair.member, tag, into)
        for u in out:
            self.assertEqual(len(self.pair.portal.view(u)["Attribute"]), 3)
        for u in into:
            got = self.pair.member.view(u)
            self.assertEqual(got["Orgc"]["uuid"], self.pair.portal.org_uuid)
            self.assertTrue(got["locked"], "a pulled event is stored locked, as MISP's pull stores it")
            self.assertEqual(len(got["Attribute"]), 3)

    def test_an_edit_and_a_soft_delete_cross_and_nothing_echoes_back(self):
        d, tag = self.config("edit")
        uuid = self.seed_member(tag, 1)[0]
        self.assertEqual(self.once(d)["push"]["sent"], 1)
        ev = self.pair.member.view(uuid)
        gone = ev["Attribute"][0]
        self.pair.member.request("POST", f"/attributes/delete/{gone['id']}")  # soft delete
        self.pair.member.request("POST", f"/attributes/add/{ev['id']}", {
            "type": "ip-dst", "category": "Network activity", "value": "198.51.100.23", "to_ids": True,
            "distribution": "5"})
        self.pair.member.publish(uuid)
        stats = self.once(d)
        self.assertEqual(stats["push"]["sent"], 1, stats["push"])
        at_portal = self.pair.portal.view(uuid, deleted=True)
        by_uuid = {a["uuid"]: a for a in at_portal["Attribute"]}
        self.assertTrue(by_uuid[gone["uuid"]]["deleted"], "the soft delete crossed")
        self.assertIn("198.51.100.23", [a["value"] for a in at_portal["Attribute"]])
        # No echo: the pull sees sgsync's own copy at the Portal and brings nothing back.
        again = self.once(d)
        self.assertEqual((again["push"]["sent"], again["pull"]["sent"]), (0, 0), again)
        self.assert_once(self.pair.member, tag, [uuid])
        self.assert_once(self.pair.portal, tag, [uuid])

    def metrics(self, port):
        text = harness.scrape_metrics(port, timeout=10)
        self.assertIsNotNone(text, "sgsyncd's /metrics did not answer")
        out = {}
        for line in text.splitlines():
            m = re.match(r'^(sgsync_requests_total|sgsync_runs_total)\{(.*)\} ([0-9.e+]+)$', line)
            if m:
                out[(m.group(1), m.group(2))] = float(m.group(3))
        return out

    def idle_cycle(self, scenario, interval, cycles, **channels):
        port = harness.free_port()
        d, tag = self.config(scenario, metrics_listen=f"127.0.0.1:{port}", interval_seconds=interval, **channels)
        self.seed_member(tag, 1)
        log = os.path.join(self.tmp.name, scenario + ".log")
        d.start(log)
        harness.wait_for(lambda: "portal push (full): listed" in harness.read(log) and
                         "portal pull (full): listed" in harness.read(log), timeout=600, what="the first runs")
        time.sleep(2 * interval + 1)  # conditional cycles fill the ETags for the cursors' new filters
        before = self.metrics(port)
        time.sleep(interval * cycles)
        after = self.metrics(port)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        runs = sum(v for (name, _), v in delta.items() if name == "sgsync_runs_total")
        requests = {labels: v for (name, labels), v in delta.items() if name == "sgsync_requests_total"}
        return runs, requests

    def test_a_no_change_cycle_in_daemon_mode_costs_one_conditional_request_per_direction(self):
        runs, requests = self.idle_cycle("idle", interval=3, cycles=4)
        self.assertGreaterEqual(runs, 4, "several idle runs happened")
        self.assertTrue(requests, "the idle runs asked something")
        for labels, n in requests.items():
            self.assertIn('route="/events/index"', labels, labels)
            self.assertIn('status="304"', labels, labels)
        self.assertEqual(sum(requests.values()), runs, f"one request per run: {requests}")
        print(f"\nidle cycle, side channels off: {runs:.0f} runs, {sum(requests.values()):.0f} requests, all "
              f"events/index answered 304")

    def test_an_idle_cycle_with_every_channel_on_asks_only_conditional_index_requests(self):
        runs, requests = self.idle_cycle("idle-defaults", interval=3, cycles=4, sightings=True, proposals=True,
                                         galaxy_clusters=True, analyst_data=True)
        self.assertGreaterEqual(runs, 4)
        for labels, n in requests.items():
            self.assertIn('route="/events/index"', labels, labels)
            self.assertIn('status="304"', labels, labels)
        # The sightings read the events channel's index (issue 19): one request per event run.
        self.assertEqual(sum(requests.values()), runs, f"one request per run: {requests}")
        print(f"\nidle cycle, every channel on (defaults): {runs:.0f} event runs, {sum(requests.values()):.0f} "
              f"requests, all events/index answered 304 (shared by events and sightings)")

    # nginx in front of the pair closes a kept-alive connection idle for 75 s (keepalive_timeout's
    # default; Apache's KeepAliveTimeout is 5 s). A write is never repeated: one sent on a connection
    # the server closed would fail and wait the queue's backoff (30 s, then 60 s).
    def test_writes_after_a_pause_longer_than_the_web_servers_keep_alive_timeout_land_at_once(self):
        d, tag = self.config("keepalive", interval_seconds=85)
        first = self.seed_member(tag, 4)
        log = os.path.join(self.tmp.name, "keepalive.log")
        d.start(log)
        harness.wait_for(lambda: set(first) <= set(self.pair.portal.index_uuids(tag)), timeout=120,
                         what="the first events at the Portal")
        second = self.seed_member(tag, 4)
        try:
            harness.wait_for(lambda: set(second) <= set(self.pair.portal.index_uuids(tag)), timeout=240,
                             what="the events added during the pause")
        except AssertionError as e:
            warnings = [l for l in harness.read(log).splitlines() if " warn" in l or " error" in l]
            raise AssertionError(f"{e}; sgsyncd's warnings:\n" + "\n".join(warnings[-12:])) from None
        # The run's summary is logged just after its last write lands: waited for, not raced.
        # Other tests' events on the member are listed and skipped (not this test's tag).
        clean = re.compile(r"push( \(full\))?: listed \d+, sent 4, already there 0, skipped \d+, echo 0, failed 0")
        try:
            harness.wait_for(lambda: len(clean.findall(harness.read(log))) >= 2, timeout=30,
                             what="each of the two push runs' summary: 4 events written, none failed")
        except AssertionError as e:
            summaries = [l for l in harness.read(log).splitlines() if " sent " in l or " warn" in l]
            raise AssertionError(f"{e}; sgsyncd's summaries and warnings:\n" + "\n".join(summaries[-12:])) from None
        self.assertNotIn("closed while", harness.read(log), "a write went out on a connection the web server had closed")

    def test_kill_9_mid_push_and_resume_leaves_every_event_once(self):
        d, tag = self.config("kill", interval_seconds=2)
        out = self.seed_member(tag, 25, attributes=20)
        log = os.path.join(self.tmp.name, "kill.log")
        d.start(log)
        harness.wait_for(lambda: " written" in harness.read(log), timeout=120, what="the first event written")
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        arrived_before = len(set(self.pair.portal.index_uuids(tag)) & set(out))
        d.start(log + ".2")
        harness.wait_for(lambda: set(out) <= set(self.pair.portal.index_uuids(tag)), timeout=300,
                         what="every event at the Portal after the restart")
        self.assert_once(self.pair.portal, tag, out)
        for u in out:
            self.assertEqual(len(self.pair.portal.view(u)["Attribute"]), 20, u)
        self.assertLess(arrived_before, len(out), "the kill fell in the middle of the push")

    def test_an_event_of_more_than_a_mib_is_streamed_both_ways_and_saved_whole(self):
        # Above 1 MiB sgsyncd streams the add's body from the event's tree with its Content-Length
        # counted first, and reads MISP's answer (the saved event) without building its tree: real
        # MISP behind Apache must take the one and give the other as misp-sim does.
        d, tag = self.config("large")
        n = 3000
        def large(i, inst):
            e = self.pair.event(200 + i, tag, attributes=n)
            for a in e["Attribute"]:
                a["comment"] = "c" * 300
            return inst.add_event(e)["uuid"]
        out, into = large(0, self.pair.member), large(1, self.pair.portal)
        stats = self.once(d)
        self.assertEqual(stats["push"]["sent"], 1, stats["push"])
        self.assertEqual(stats["pull"]["sent"], 1, stats["pull"])
        self.assertEqual(stats["push"]["partial"], 0, stats["push"])
        self.assertEqual(stats["pull"]["partial"], 0, stats["pull"])
        self.assertEqual(len(self.pair.portal.view(out)["Attribute"]), n)
        self.assertEqual(len(self.pair.member.view(into)["Attribute"]), n)

    def test_a_published_sighting_crosses_as_the_members_sighting_policy_allows(self):
        d, tag = self.config("sightings", sightings=True)
        uuid = self.seed_member(tag, 1)[0]
        self.assertEqual(self.once(d)["push"]["sent"], 1)
        attribute = self.pair.member.view(uuid)["Attribute"][0]["uuid"]
        _, s = self.pair.member.request("POST", f"/sightings/add/{attribute}", {"type": "0", "source": "sgsync-suite"})
        sighting = s["Sighting"]["uuid"]
        # MISP exports sightings once they are published (Event::publishSightings sets the event's
        # sighting_timestamp; sightings/add alone does not, unless Sightings_enable_realtime_publish).
        self.pair.member.request("POST", f"/events/publishSightings/{self.pair.member.view(uuid)['id']}")

        def at_portal():
            # Read as ORG1's sync user: under the Portal's policy 0, real MISP 2.5.1 does not show
            # ORG1's sighting to the Portal's own site admin (ORG2) in sightings/restSearch.
            _, found = self.pair.portal.request("POST", "/sightings/restSearch/event",
                                                {"returnFormat": "json", "last": 0, "includeUuid": True, "uuid": [uuid]},
                                                key=self.pair.sync_key)
            return [x["Sighting"]["uuid"] for x in found.get("response", [])]
        # Under the default policy 0 (event owner), MISP selects what it pushes as the Portal's
        # organisation, which may not see ORG1's sighting: withheld, as MISP's own push does.
        d.once()
        push = [s for s in d.sightings if s["run"] == "portal push sightings"][0]
        self.assertEqual((push["sent"], push["withheld"]), (0, 1), push)
        self.assertNotIn(sighting, at_portal())
        # Policy 2 (everyone) on the member's MISP, and said so in sgsync's configuration: it crosses.
        _, before = self.pair.member.request("GET", "/servers/getSetting/Plugin.Sightings_policy")
        self.pair.member.request("POST", "/servers/serverSettingsEdit/Plugin.Sightings_policy", {"value": "2"})
        try:
            d2, _ = self.config("sightings", sightings=True, sightings_policy=2)
            rc, stats, err = d2.once(full=True)
            push = [s for s in d2.sightings if s["run"] == "portal push sightings"][0]
            self.assertIn(sighting, at_portal(), f"{push}\n" + "\n".join(l for l in err.splitlines() if "sighting" in l.lower()))
        finally:
            self.pair.member.request("POST", "/servers/serverSettingsEdit/Plugin.Sightings_policy",
                                     {"value": str(before["value"])})

    def test_a_proposal_made_at_the_portal_reaches_the_members_event(self):
        d, tag = self.config("proposals", proposals=True)
        uuid = self.seed_member(tag, 1)[0]
        self.assertEqual(self.once(d)["push"]["sent"], 1)
        at_portal = self.pair.portal.view(uuid)
        # The Portal's organisation proposes a new attribute on the member's event.
        _, made = self.pair.portal.request("POST", f"/shadow_attributes/add/{at_portal['id']}", {
            "type": "ip-dst", "category": "Network activity", "value": "203.0.113.77", "to_ids": True,
            "comment": "proposed at the Portal"})
        self.once(d)
        got = self.pair.member.view(uuid)
        proposals = got.get("ShadowAttribute", [])
        self.assertIn("203.0.113.77", [x["value"] for x in proposals], f"made: {made}")

    def test_an_event_deleted_at_the_portal_is_deleted_on_the_member_with_tombstones(self):
        d, tag = self.config("tombstones", tombstones=True)
        uuid = self.seed_portal(tag, 1)[0]
        self.assertEqual(self.once(d, direction="pull")["pull"]["sent"], 1)
        self.assertIsNotNone(self.pair.member.view(uuid))
        self.pair.portal.delete(uuid)
        self.once(d, direction="pull", full=True)
        self.assertIsNone(self.pair.member.view(uuid), "the member's copy was deleted")
        self.once(d, direction="pull", full=True)
        self.assertIsNone(self.pair.member.view(uuid), "and it never returns")

    def test_a_change_on_both_sides_is_recorded_as_a_conflict(self):
        d, tag = self.config("conflict", conflict_policy="manual")
        uuid = self.seed_member(tag, 1)[0]
        self.assertEqual(self.once(d)["push"]["sent"], 1)
        time.sleep(1.1)  # MISP's timestamps are seconds
        self.pair.portal.edit(uuid, {"info": "changed at the Portal"})
        self.pair.portal.publish(uuid)
        self.pair.member.edit(uuid, {"info": "changed on the member"})
        self.pair.member.publish(uuid)
        self.once(d)
        db = sqlite3.connect(d.config.replace(".toml", ".db"))
        conflicts = db.execute("SELECT uuid FROM conflicts").fetchall()
        self.assertIn((uuid,), conflicts)
        self.assertEqual(self.pair.portal.view(uuid)["info"], "changed at the Portal", "manual: nothing overwritten")
        self.assertEqual(self.pair.member.view(uuid)["info"], "changed on the member")

    # Local tags are read in the bulk fetch (restSearch with excludeLocalTags), not one view each.
    def test_a_member_event_held_by_a_local_tag_stays_home_and_its_neighbour_crosses(self):
        hold = self.pair.tag("hold")
        d, tag = self.config("localhold", push_rules={"tags": {"OR": [self.pair.tag("localhold")], "NOT": [hold]}})
        held = self.pair.member.add_event(self.pair.event(0, tag, local_tags=[hold]))["uuid"]
        crosses = self.seed_member(tag, 1)[0]
        stats = self.once(d)
        self.assertEqual(stats["push"]["sent"], 1, stats["push"])
        self.assertNotIn(held, self.pair.portal.index_uuids(tag))
        self.assert_once(self.pair.portal, tag, [crosses])

    def test_an_internal_pull_brings_the_portals_local_tags_read_by_its_sync_user(self):
        d, tag = self.config("internal", internal=True, host_org_id_set=True)
        mine = self.pair.tag("internal-local")
        uuid = self.pair.portal.add_event(self.pair.event(100, tag, local_tags=[mine]))["uuid"]
        stats = self.once(d)
        self.assertEqual(stats["pull"]["sent"], 1, stats["pull"])
        got = {t["name"]: t.get("local") for t in self.pair.member.view(uuid).get("Tag", [])}
        self.assertIn(mine, got, "the Portal's local tag travels on an internal link")
        self.assertTrue(got[mine])


if __name__ == "__main__":
    PAIR, SGSYNCD, SGSYNCCTL = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)
