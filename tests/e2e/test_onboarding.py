#!/usr/bin/env python3
"""`sgsyncctl onboarding check` and `probe` against misp-sim set up to pass and to fail each check:
a wrong key, a member key that is not a site admin, a Portal user without perm_sync, a Portal user
of another organisation, an older MISP, a skewed Date header, a certificate for another host, a
pin mismatch, a sharing group that does not reach the Portal, a rule naming a tag that does not
exist. The JSON report validates against docs/onboarding.schema.json.

usage: test_onboarding.py MISP_SIM SGSYNCD SGSYNCCTL SOURCE_DIR [unittest arguments]"""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import hostile  # noqa: E402
from hostile import Answer, route  # noqa: E402

MISP_SIM = SGSYNCD = SGSYNCCTL = SOURCE = None

try:
    import jsonschema
except ImportError:  # Debian's python3-jsonschema serves /usr/bin/python3 (deploy/install-deps)
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise


class OnboardingTest(harness.SimsTestCase):
    def config(self, name, remote_extra=None, local_extra=None, **settings):
        type(self).counter += 1
        local, remote = self.sims.endpoints()
        local.update(local_extra or {})
        remote.update(remote_extra or {})
        settings.setdefault("host_org_id_set", True)  # as the member's MISP (misp-sim) has it
        link = harness.link_toml("portal", local, remote, **settings)
        d = self.sims.sgsyncd(f"{name}-{self.counter}", [link])
        return d.config

    def check(self, config, *extra):
        r = subprocess.run([SGSYNCCTL, "onboarding", "check", "--config", config, "--json"] + list(extra),
                           capture_output=True, text=True, timeout=120)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        report = json.loads(r.stdout)
        with open(os.path.join(SOURCE, "docs", "onboarding.schema.json")) as f:
            jsonschema.validate(report, json.load(f))
        self.assertEqual(r.returncode, 0 if report["ready"] else 1, "exit 1 exactly when something FAILs")
        return {x["id"]: x for x in report["results"]}, r.returncode

    def key(self, email, org, role):
        return self.sims.portal.control("POST", "setup", {"users": [{"email": email, "org_uuid": org[1], "role": role}]})["keys"][email]

    def test_a_ready_installation_passes_and_the_json_report_validates(self):
        results, rc = self.check(self.config("ready"))
        self.assertEqual(rc, 0)
        for cid in ("config.valid", "state.writable", "state.disk_space", "member.reachable", "member.key",
                    "member.site_admin", "member.version", "portal.reachable", "portal.key", "portal.sync_user",
                    "portal.org_matches", "settings.match", "rules.known", "sharing_groups.reach"):
            self.assertEqual(results[cid]["outcome"], "PASS", results[cid])
        # The test CA signs certificates for two days: due for renewal.
        self.assertEqual(results["portal.tls"]["outcome"], "WARN")
        self.assertIn("renew", results["portal.tls"]["remedy"])
        self.assertEqual(results["member.clock"]["outcome"], "SKIP", "misp-sim sends no Date header")

    def test_each_wrong_key_and_role_fails_its_check(self):
        bad = harness.write_key(self.tmp.name, "bad.key", harness.random_key())
        results, rc = self.check(self.config("wrong-key", remote_extra={"api_key_file": bad}))
        self.assertEqual((rc, results["portal.key"]["outcome"]), (1, "FAIL"))
        self.assertIn("sync user", results["portal.key"]["remedy"])
        user = self.sims.member.control("POST", "setup", {"users": [
            {"email": "analyst@org1.test", "org_uuid": harness.ORG1[1], "role": "user"}]})["keys"]["analyst@org1.test"]
        results, _ = self.check(self.config("not-admin", local_extra={
            "api_key_file": harness.write_key(self.tmp.name, "user.key", user)}))
        self.assertEqual(results["member.site_admin"]["outcome"], "FAIL")
        nosync = self.key("user@org1.test", harness.ORG1, "user")
        results, _ = self.check(self.config("no-sync", remote_extra={
            "api_key_file": harness.write_key(self.tmp.name, "nosync.key", nosync)}))
        self.assertEqual(results["portal.sync_user"]["outcome"], "FAIL")
        self.assertIn("perm_sync no", results["portal.sync_user"]["found"])
        other = self.key("sync@org3.test", harness.ORG3, "sync_user")
        results, _ = self.check(self.config("other-org", remote_extra={
            "api_key_file": harness.write_key(self.tmp.name, "org3.key", other)}))
        self.assertEqual(results["portal.org_matches"]["outcome"], "FAIL")
        self.assertIn(harness.ORG3[1], results["portal.org_matches"]["found"])
        # The same rule as sgsyncd's (docs/operations.md, "Whose key it is"): a Portal site admin of
        # the member's organisation fails, unless remote.allow_site_admin lets sgsyncd run with it.
        root = harness.write_key(self.tmp.name, "root.key", self.key("root@org1.test", harness.ORG1, "site_admin"))
        results, _ = self.check(self.config("portal-admin", remote_extra={"api_key_file": root}))
        self.assertEqual(results["portal.sync_user"]["outcome"], "FAIL")
        results, _ = self.check(self.config("portal-admin-allowed", remote_extra={"api_key_file": root,
                                                                                  "allow_site_admin": True}))
        self.assertEqual(results["portal.sync_user"]["outcome"], "WARN")
        self.assertIn("allow_site_admin", results["portal.sync_user"]["remedy"])

    def test_a_pin_mismatch_a_certificate_for_another_host_and_an_expired_one_fail_tls(self):
        results, _ = self.check(self.config("pin", remote_extra={"pin_sha256": "00" * 32}))
        self.assertEqual(results["portal.tls"]["outcome"], "FAIL")
        self.assertIn("pin mismatch", results["portal.tls"]["found"])
        directory = os.path.join(self.tmp.name, "other")
        os.makedirs(directory, exist_ok=True)
        other = harness.Pki(directory, host="localhost")
        sim = harness.Sim(MISP_SIM, other, harness.ORG2, harness.INSTANCE2_URL)
        try:
            results, _ = self.check(self.config("host", remote_extra={"url": sim.url, "ca_file": other.ca}))
            self.assertEqual(results["portal.tls"]["outcome"], "FAIL")
            self.assertIn("does not name 127.0.0.1", results["portal.tls"]["found"])
        finally:
            sim.stop()
        # A certificate that has expired (valid for 0 days, a moment ago).
        directory = os.path.join(self.tmp.name, "expired")
        os.makedirs(directory, exist_ok=True)
        expired = harness.Pki(directory, days=0)
        time.sleep(1.5)
        sim = harness.Sim(MISP_SIM, expired, harness.ORG2, harness.INSTANCE2_URL)
        try:
            results, _ = self.check(self.config("expired", remote_extra={"url": sim.url, "ca_file": expired.ca}))
            self.assertEqual(results["portal.tls"]["outcome"], "FAIL")
            self.assertIn("certificate has expired", results["portal.tls"]["found"])
        finally:
            sim.stop()

    def test_an_older_member_warns_another_minor_fails_and_a_skewed_clock_fails(self):
        portal = hostile.HostilePortal(self.sims.portal, self.sims.pki)
        try:
            for version, outcome in (("2.5.2", "WARN"), ("2.6.0", "FAIL")):
                portal.clear()

                def bend(req, version=version):
                    if route(req.path) != "/servers/getVersion":
                        return None
                    answer = portal.forward(req)
                    body = answer.json()
                    body["version"] = version
                    skewed = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 600))
                    return Answer.of_json(200, body, {"Date": skewed})
                portal.bend(bend)
                results, rc = self.check(self.config("version", remote_extra={"url": portal.url}))
                self.assertEqual(results["member.version"]["outcome"], outcome, results["member.version"])
                self.assertEqual(results["portal.clock"]["outcome"], "FAIL")
                self.assertEqual(results["member.version"]["outcome"] == "WARN", version == "2.5.2")
                self.assertIn("600 s", results["portal.clock"]["found"].replace("599 s", "600 s").replace("601 s", "600 s"))
            # A Date within the minute passes.
            portal.clear()

            def on_time(req):
                if route(req.path) != "/servers/getVersion":
                    return None
                answer = portal.forward(req)
                answer.headers["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
                return answer
            portal.bend(on_time)
            results, rc = self.check(self.config("clock", remote_extra={"url": portal.url}))
            self.assertEqual(results["portal.clock"]["outcome"], "PASS", results["portal.clock"])
        finally:
            portal.stop()

    def test_a_sharing_group_outside_the_portals_reach_warns_with_its_count(self):
        with open(os.path.join(SOURCE, "tests/data/conformance/cases/push-sg-event-remote-org-in-server-out.json")) as f:
            case = json.load(f)
        self.sims.member.control("POST", "load", {"Event": case["origin_event"]})
        results, rc = self.check(self.config("groups"))
        self.assertEqual(results["sharing_groups.reach"]["outcome"], "WARN", results["sharing_groups.reach"])
        self.assertIn("1 event(s) will not cross", results["sharing_groups.reach"]["found"])

    def test_the_dry_run_counts_what_each_direction_would_send_and_withhold_and_writes_nothing(self):
        self.sims.member.control("POST", "seed", {"events": 3, "attributes": 2, "distribution": 3,
                                                  "attribute_distribution": 5, "seed": 1701})
        self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 0,
                                                  "attribute_distribution": 5, "seed": 1702})
        self.sims.portal.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 3,
                                                  "attribute_distribution": 5, "seed": 1703})
        results, rc = self.check(self.config("dry"))
        self.assertEqual(results["dry_run.push"]["found"],
                         "of 4 published event(s): would send 3, withhold 1; push.event.distribution x 1")
        self.assertEqual(results["dry_run.pull"]["found"], "of 2 published event(s): would send 2, withhold 0")
        writes = [r for sim in (self.sims.member, self.sims.portal) for r in sim.requests()
                  if r["target"].startswith(("/events/add", "/events/edit", "/sightings/bulkSave"))]
        self.assertEqual(writes, [], "the checks write nothing")

    def test_the_canary_crosses_both_ways_and_the_report_names_exactly_what_it_left_behind(self):
        import re
        results, rc = self.check(self.config("canary"), "--canary")
        self.assertEqual((results["canary.push"]["outcome"], results["canary.pull"]["outcome"]), ("PASS", "PASS"),
                         (results["canary.push"], results["canary.pull"]))
        cleanup = results["canary.cleanup"]
        self.assertEqual(cleanup["outcome"], "WARN")
        named_groups = set(re.findall(r"sharing group ([0-9a-f-]{36})", cleanup["found"]))
        named_events = set(re.findall(r"event ([0-9a-f-]{36}) deleted", cleanup["found"]))
        self.assertEqual(len(named_groups), 2)
        self.assertEqual(len(named_events), 2)
        for sim in (self.sims.member, self.sims.portal):
            for uuid in named_events:
                self.assertIsNone(sim.view(uuid), "the canary events are gone")
            status, _, blocked = sim.request("GET", "/event_blocklists/index")
            self.assertEqual({r["event_uuid"] for r in blocked}, named_events, "exactly what the report names")
            status, _, groups = sim.request("GET", "/sharing_groups/index")
            held = {g["SharingGroup"]["uuid"] for g in groups["response"]}
            self.assertEqual(held, named_groups, "exactly the groups the report names")

    def test_a_broken_file_an_unwritable_state_and_an_unreachable_misp_fail_their_checks(self):
        broken = os.path.join(self.tmp.name, "broken.toml")
        with open(broken, "w") as f:
            f.write("[state]\ndatabase = \n")
        results, rc = self.check(broken)
        self.assertEqual((rc, results["config.valid"]["outcome"], len(results)), (1, "FAIL", 1),
                         "nothing else runs on a broken file")
        cfg = self.config("unwritable")
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace(os.path.join(self.tmp.name, ""), "/proc/sgsync-nowhere/", 1))
        results, rc = self.check(cfg)
        self.assertEqual(results["state.writable"]["outcome"], "FAIL", results["state.writable"])
        results, rc = self.check(self.config("down", local_extra={"url": "https://127.0.0.1:9"}))
        self.assertEqual(results["member.reachable"]["outcome"], "FAIL")
        self.assertIn("cannot connect", results["member.reachable"]["found"])
        self.assertEqual(results["member.site_admin"]["outcome"], "SKIP", "what depends on it is skipped, saying why")

    def test_a_setting_of_the_members_misp_that_contradicts_the_file_fails_naming_both(self):
        self.sims.member.control("POST", "settings", {"Plugin.Sightings_policy": 2,
                                                      "_org_blocklist": [harness.ORG3[1]]})
        results, rc = self.check(self.config("settings"))
        found = results["settings.match"]["found"]
        self.assertEqual((rc, results["settings.match"]["outcome"]), (1, "FAIL"))
        self.assertIn("Plugin.Sightings_policy is 2 on the member's MISP, sightings_policy = 0 in the file", found)
        self.assertIn(f"org blocklist entry {harness.ORG3[1]}", found)
        results, rc = self.check(self.config("settings-ok", sightings_policy=2, pull_blocked_orgs=[harness.ORG3[1]]))
        self.assertEqual(results["settings.match"]["outcome"], "PASS", results["settings.match"])

    def test_a_rule_naming_a_tag_that_does_not_exist_fails_and_ids_are_explained(self):
        results, rc = self.check(self.config("rules", push_rules={"tags": {"OR": [], "NOT": ["tlp:nonexistent"]}}))
        self.assertEqual((rc, results["rules.known"]["outcome"]), (1, "FAIL"))
        self.assertIn('no tag named "tlp:nonexistent"', results["rules.known"]["found"])

    def test_the_report_speaks_japanese_and_renders_markdown_for_the_secretariat(self):
        cfg = self.config("ja")
        r = subprocess.run([SGSYNCCTL, "onboarding", "check", "--config", cfg, "--lang", "ja", "--markdown"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("# sgsync オンボーディング確認レポート", r.stdout)
        self.assertIn("| PASS | `portal.sync_user` ポータルのキーが会員組織の同期ユーザーのもの", r.stdout)
        r = subprocess.run([SGSYNCCTL, "onboarding", "check", "--lang", "fr"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, "a usage error")

    def test_through_the_running_daemon_each_result_streams_from_its_configuration(self):
        type(self).counter += 1
        local, remote = self.sims.endpoints()
        d = self.sims.sgsyncd(f"daemon-{self.counter}", [harness.link_toml("portal", local, remote, interval_seconds=3600,
                                                                         host_org_id_set=True)])
        self.daemons.append(d)
        d.start(os.path.join(self.tmp.name, "onboarding-daemon.log"))
        harness.wait_for(lambda: os.path.exists(d.admin_socket), what="the admin socket")
        r = subprocess.run([SGSYNCCTL, "--socket", d.admin_socket, "onboarding", "check", "--json"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        report = json.loads(r.stdout)
        with open(os.path.join(SOURCE, "docs", "onboarding.schema.json")) as f:
            jsonschema.validate(report, json.load(f))
        got = {x["id"]: x["outcome"] for x in report["results"]}
        self.assertEqual(got["config.valid"], "PASS")
        self.assertEqual(got["portal.sync_user"], "PASS")
        r = subprocess.run([SGSYNCCTL, "--socket", os.path.join(self.tmp.name, "nobody.sock"), "onboarding", "check"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 3, "the daemon is unreachable")

    def test_the_secretariat_probe_sees_a_sync_capable_key_and_refuses_a_plain_users(self):
        member_key = harness.write_key(self.tmp.name, "probe.key", self.sims.member.admin_key)
        r = subprocess.run([SGSYNCCTL, "onboarding", "probe", "--url", self.sims.member.url, "--key-file", member_key,
                            "--ca", self.sims.pki.ca, "--json"], capture_output=True, text=True, timeout=60)
        report = json.loads(r.stdout)
        with open(os.path.join(SOURCE, "docs", "onboarding.schema.json")) as f:
            jsonschema.validate(report, json.load(f))
        got = {x["id"]: x["outcome"] for x in report["results"]}
        self.assertEqual((r.returncode, got["member.key"], got["member.sync_capable"], got["member.version"]),
                         (0, "PASS", "PASS", "PASS"))
        user = self.sims.member.control("POST", "setup", {"users": [
            {"email": "plain@org1.test", "org_uuid": harness.ORG1[1], "role": "user"}]})["keys"]["plain@org1.test"]
        r = subprocess.run([SGSYNCCTL, "onboarding", "probe", "--url", self.sims.member.url, "--key-file",
                            harness.write_key(self.tmp.name, "plain.key", user), "--ca", self.sims.pki.ca],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAIL  member.sync_capable", r.stdout)


if __name__ == "__main__":
    MISP_SIM, SGSYNCD, SGSYNCCTL, SOURCE = sys.argv[1:5]
    harness.SimsTestCase.MISP_SIM, harness.SimsTestCase.SGSYNCD = MISP_SIM, SGSYNCD
    unittest.main(argv=[sys.argv[0]] + sys.argv[5:], verbosity=2)
