#!/usr/bin/env python3
"""The admin API through sgsyncctl: every call over a real gRPC channel on the Unix socket, against
a running sgsyncd with two misp-sim behind it; exit codes; the progress bar on a pseudo-terminal.

usage: test_admin.py MISP_SIM SGSYNCD SGSYNCCTL [unittest arguments]"""
import json
import os
import pty
import re
import select
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MISP_SIM = SGSYNCD = SGSYNCCTL = None


class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.sims = harness.TwoSims(MISP_SIM, SGSYNCD, cls.tmp.name)
        cls.shareable = cls.sims.member.control("POST", "seed", {"events": 6, "attributes": 3, "distribution": 3,
                                                                  "attribute_distribution": 5, "seed": 201})["uuids"]
        cls.private = cls.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 0,
                                                                "attribute_distribution": 5, "seed": 202})["uuids"]
        # One event the member's MISP cannot serve: it becomes a dead letter (max_attempts 1).
        cls.broken = cls.shareable[0]
        cls.sims.member.control("POST", "faults", {"route": f"/events/view/{cls.broken}", "error_rate": 1.0, "error_status": 500})
        cls.sims.member.control("POST", "faults", {"route": "/events/restSearch", "error_rate": 1.0, "error_status": 500})
        local, remote = cls.sims.endpoints()
        # A long interval: the runs the tests see are the ones they trigger (plus the first).
        cls.daemon = cls.sims.sgsyncd("admin", [harness.link_toml("portal", local, remote, interval_seconds=3600,
                                                                  blocked_tags_push=[], overlap_seconds=0)],
                                      max_attempts=1)
        cls.socket = cls.daemon.admin_socket
        cls.daemon.start(os.path.join(cls.tmp.name, "admin.log"))
        harness.wait_for(lambda: os.path.exists(cls.socket), what="the admin socket")
        log = os.path.join(cls.tmp.name, "admin.log")
        harness.wait_for(lambda: "portal push (full): listed" in harness.read(log) and
                         "portal pull (full): listed" in harness.read(log), what="the first runs")
        # The broken event is a dead letter now. The member's restSearch works again (sgsync reads the
        # member's copy of an event before some pulls, docs/security.md); its view stays broken until
        # test_failures_retry_and_drop_act_on_dead_letters mends it.
        cls.sims.member.control("DELETE", "faults")
        cls.sims.member.control("POST", "faults", {"route": f"/events/view/{cls.broken}", "error_rate": 1.0, "error_status": 500})

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.sims.stop()
        cls.tmp.cleanup()

    def ctl(self, *args, expect=0, json_out=False):
        cmd = [SGSYNCCTL, "--socket", self.socket] + (["--json"] if json_out else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if expect is not None:
            self.assertEqual(r.returncode, expect, f"{' '.join(args)}: {r.stdout}{r.stderr}")
        return json.loads(r.stdout) if json_out and r.stdout.strip() else r.stdout

    def test_a_socket_is_created_with_mode_0600(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.socket).st_mode), 0o600)

    def test_status_shows_both_directions_versions_and_skips(self):
        r = subprocess.run([SGSYNCCTL, "--socket", self.socket, "--json", "status"], capture_output=True, text=True)
        s = json.loads(r.stdout)
        link = s["links"][0]
        self.assertEqual(link["link"], "portal")
        self.assertEqual(link["local_misp_version"], "2.5.1")
        self.assertGreater(int(s["state_db_bytes"]), 0)
        dirs = {d["direction"]: d for d in link["directions"]}
        self.assertEqual(set(dirs), {"DIRECTION_PUSH", "DIRECTION_PULL"})
        # Exit code 1 exactly when something is failing (here: the dead letter, until a test retries it).
        self.assertEqual(r.returncode, 1 if int(dirs["DIRECTION_PUSH"]["dead_letters"]) > 0 else 0)
        table = self.ctl("status", expect=r.returncode)
        self.assertIn("DIRECTION  STATE", table)
        self.assertIn("\npush ", table)
        self.assertIn("\npull ", table)

    def test_events_lists_decisions_filters_and_pages(self):
        all_events = self.ctl("events", json_out=True)["events"]
        self.assertEqual({e["uuid"] for e in all_events} >= set(self.shareable[1:] + self.private), True)
        skipped = self.ctl("events", "--decision", "skip", json_out=True)["events"]
        self.assertEqual([e["uuid"] for e in skipped], self.private)
        self.assertEqual(skipped[0]["state"], "skipped")
        page = self.ctl("events", "--limit", "2", json_out=True)
        self.assertEqual(len(page["events"]), 2)
        rest = self.ctl("events", "--limit", "100", "--page-token", page["next_page_token"], json_out=True)["events"]
        self.assertEqual(len(rest), len(all_events) - 2)

    def test_explain_prints_the_rule_that_kept_an_event_home(self):
        out = self.ctl("explain", self.private[0])
        self.assertIn("stored decision: not sent", out)
        self.assertIn("push.event.distribution", out)
        self.assertIn("└─ ", out)
        self.assertIn("no difference", out)
        j = self.ctl("explain", self.private[0], json_out=True)
        self.assertFalse(j["stored"]["send"])
        self.assertEqual(j["differences"], [])

    def test_failures_retry_and_drop_act_on_dead_letters(self):
        self.assertEqual(self.ctl("status", json_out=True, expect=1)["links"][0]["directions"][0]["dead_letters"], "1")
        failures = self.ctl("failures", json_out=True, expect=1)["failures"]
        self.assertEqual([f["uuid"] for f in failures], [self.broken])
        self.assertEqual(failures[0]["state"], "dead")
        self.assertIn("500", failures[0]["last_error"])
        fid = failures[0]["id"]
        self.sims.member.control("DELETE", "faults")
        retried = self.ctl("retry", fid, json_out=True)["failure"]
        self.assertEqual(retried["state"], "pending")
        progress = self.ctl("sync", "--direction", "push", "--wait", json_out=True)
        self.assertTrue(progress["finished"])
        harness.wait_for(lambda: self.sims.portal.view(self.broken) is not None, what="the retried event")
        self.assertEqual(self.ctl("failures", json_out=True).get("failures", []), [])
        self.ctl("drop", fid, expect=2)  # not dead any more: nothing to drop
        # A second dead letter, dropped: it leaves the queue and is not retried.
        doomed = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3,
                                                           "attribute_distribution": 5, "seed": 204})["uuids"][0]
        self.sims.member.control("POST", "faults", {"route": f"/events/view/{doomed}", "error_rate": 1.0, "error_status": 500})
        self.sims.member.control("POST", "faults", {"route": "/events/restSearch", "error_rate": 1.0, "error_status": 500})
        # Seeded events carry an old timestamp, behind the cursor: a full run finds them (late arrivals).
        self.ctl("sync", "--direction", "push", "--full", "--wait", expect=1)
        self.sims.member.control("DELETE", "faults")
        dead = self.ctl("failures", "--dead-only", json_out=True, expect=1)["failures"]
        self.assertEqual([f["uuid"] for f in dead], [doomed])
        self.assertEqual(self.ctl("drop", dead[0]["id"], json_out=True)["failure"]["state"], "dropped")
        self.assertEqual(self.ctl("failures", json_out=True).get("failures", []), [])
        db = sqlite3.connect(self.daemon.config.replace(".toml", ".db"))
        actions = [r[0] for r in db.execute("SELECT action FROM audit ORDER BY id")]
        actors = {r[0] for r in db.execute("SELECT actor FROM audit")}
        self.assertIn("RetryFailure", actions)
        self.assertIn("TriggerSync", actions)
        # Who: the kernel's word on the Unix socket (SO_PEERCRED: this test's uid, sgsyncctl's pid),
        # with the operator name the client states alongside.
        for actor in actors:
            self.assertRegex(actor, rf"^unix socket uid {os.getuid()}( \([^)]+\))?, pid \d+, operator \S+$")
            self.assertNotIn(f"pid {os.getpid()},", actor)
        # The same trail through the admin API: a table, and every entry as a JSON line for a SIEM,
        # paged through to the end whatever the page size.
        lines = [json.loads(l) for l in self.ctl("audit", "--format", "jsonl", "--limit", "2").splitlines()]
        self.assertEqual([l["action"] for l in lines], actions)
        self.assertTrue(all(l["actor"] and l["at"] for l in lines), lines)
        self.assertIn("RetryFailure", self.ctl("audit", "--link", "portal"))
        self.ctl("audit", "--link", "nope", expect=2)

    def test_vacuum_compacts_the_state_database_and_is_audited(self):
        out = self.ctl("vacuum")
        self.assertRegex(out, r"state database compacted: \d+ -> \d+ bytes")
        self.assertIn("VacuumState", self.ctl("audit"))

    def test_preview_is_read_only_and_says_why(self):
        out = self.ctl("preview", "--direction", "push")
        self.assertIn("would be sent", out)
        before = len(self.ctl("audit", "--format", "jsonl").splitlines())
        p = self.ctl("preview", "--direction", "pull", json_out=True)
        self.assertIn("listed", p)
        self.assertEqual(len(self.ctl("audit", "--format", "jsonl").splitlines()), before, "a preview changes nothing")
        self.ctl("preview", expect=2)  # usage: --direction is required

    def status_link(self):
        return self.ctl("status", json_out=True, expect=None)["links"][0]

    def test_a_rotated_key_is_tried_before_use_and_status_shows_its_fingerprint(self):
        key_file = self.sims.portal_key_file
        with open(key_file) as f:
            original = f.read().strip()
        before = self.status_link()["remote_key_fingerprint"]
        self.assertRegex(before, r"^sha256:[0-9a-f]{16}$")
        try:
            # A key the Portal does not know: refused, and the old key stays in use.
            harness.write_key(os.path.dirname(key_file), os.path.basename(key_file), "Z" * 40)
            out = self.ctl("reload")
            self.assertIn("the Portal key changed", out)
            self.assertIn("refuses the new key", out)
            self.assertIn("the old key stays in use", out)
            self.assertEqual(self.status_link()["remote_key_fingerprint"], before)
            # A second key of the same sync account's organisation: taken, and shown.
            answer = self.sims.portal.control("POST", "setup", {"users": [{"email": "sync2@org1.test", "org_uuid": harness.ORG1[1], "role": "sync_user"}]})
            second = answer["keys"]["sync2@org1.test"]
            harness.write_key(os.path.dirname(key_file), os.path.basename(key_file), second)
            out = self.ctl("reload")
            self.assertIn("accepts it", out)
            link = self.status_link()
            self.assertNotEqual(link["remote_key_fingerprint"], before)
            self.assertTrue(int(link["keys_loaded_at"]) > 0)
            for text in (out, json.dumps(link), self.ctl("config")):
                self.assertNotIn(second, text)
                self.assertNotIn(original, text)
            self.ctl("sync", "--direction", "pull", "--wait", expect=None)
        finally:
            harness.write_key(os.path.dirname(key_file), os.path.basename(key_file), original)
            self.ctl("reload")
        self.assertEqual(self.status_link()["remote_key_fingerprint"], before)

    def test_pause_and_resume_change_the_state(self):
        self.assertEqual(self.ctl("pause", "--direction", "pull", json_out=True)["state"], "paused")
        s = subprocess.run([SGSYNCCTL, "--socket", self.socket, "--json", "status"], capture_output=True, text=True)
        dirs = {d["direction"]: d for d in json.loads(s.stdout)["links"][0]["directions"]}
        self.assertEqual(dirs["DIRECTION_PULL"]["state"], "paused")
        self.assertEqual(self.ctl("resume", "--direction", "pull", json_out=True)["state"], "idle")

    def edit_and_publish(self, sim, uuid, info, bump):
        ev = sim.view(uuid)["Event"]
        ev["info"] = info
        ev["timestamp"] = str(int(ev["timestamp"]) + bump)
        status, _, body = sim.request("POST", f"/events/edit/{uuid}", {"Event": ev})
        self.assertEqual(status, 200, body)
        status, _, body = sim.request("POST", f"/events/publish/{ev['id']}")
        self.assertEqual(status, 200, body)

    def test_a_conflict_is_listed_and_resolved(self):
        uuid = self.sims.portal.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3,
                                                         "attribute_distribution": 5, "seed": 205})["uuids"][0]
        self.ctl("sync", "--direction", "pull", "--wait")
        self.edit_and_publish(self.sims.member, uuid, "changed on the member", 100)
        self.ctl("sync", "--direction", "push", "--wait")
        self.edit_and_publish(self.sims.portal, uuid, "changed at the Portal", 200)
        self.ctl("sync", "--direction", "pull", "--wait")
        conflicts = self.ctl("conflicts", json_out=True, expect=1)["conflicts"]
        mine = [c for c in conflicts if c["uuid"] == uuid]
        self.assertEqual(len(mine), 1, conflicts)
        self.assertLess(int(mine[0]["local_timestamp"]), int(mine[0]["remote_timestamp"]))
        self.assertIn("open", self.ctl("conflicts", expect=1))
        resolved = self.ctl("resolve", mine[0]["id"], "--resolution", "prefer-portal", json_out=True)["conflict"]
        self.assertEqual(resolved["resolution"], "prefer-portal")
        self.assertNotIn(uuid, [c["uuid"] for c in self.ctl("conflicts", json_out=True).get("conflicts", [])])
        self.assertIn(uuid, [c["uuid"] for c in self.ctl("conflicts", "--all", json_out=True)["conflicts"]])
        # MISP's rule applied meanwhile: the Portal's newer copy reached the member.
        self.assertEqual(self.sims.member.view(uuid)["Event"]["info"], "changed at the Portal")

    def test_a_conflict_under_the_manual_policy_is_held_until_resolved(self):
        local, remote = self.sims.endpoints()
        d = self.sims.sgsyncd("manual", [harness.link_toml("manual", local, remote, interval_seconds=3600,
                                                            blocked_tags_push=[], overlap_seconds=0,
                                                            conflict_policy="manual")])
        d.start(os.path.join(self.tmp.name, "manual.log"))
        try:
            harness.wait_for(lambda: os.path.exists(d.admin_socket), what="the second daemon's socket")
            ctl = lambda *a, **k: subprocess.run([SGSYNCCTL, "--socket", d.admin_socket] + list(a),
                                                 capture_output=True, text=True, **k)
            uuid = self.sims.member.control("POST", "seed", {"events": 1, "attributes": 2, "distribution": 3,
                                                             "attribute_distribution": 5, "seed": 206})["uuids"][0]
            self.assertEqual(ctl("sync", "--direction", "push", "--full", "--wait").returncode, 0)
            self.edit_and_publish(self.sims.portal, uuid, "changed at the Portal", 200)
            ctl("sync", "--direction", "pull", "--wait")
            self.edit_and_publish(self.sims.member, uuid, "changed on the member", 300)
            ctl("sync", "--direction", "push", "--wait")
            self.assertEqual(self.sims.portal.view(uuid)["Event"]["info"], "changed at the Portal", "held")
            r = ctl("--json", "conflicts")
            self.assertEqual(r.returncode, 1)
            conflict = [c for c in json.loads(r.stdout)["conflicts"] if c["uuid"] == uuid][0]
            self.assertIn("info", json.loads(conflict["differences_json"])["event_fields"])
            ctl("sync", "--direction", "push", "--wait")
            self.assertEqual(self.sims.portal.view(uuid)["Event"]["info"], "changed at the Portal", "still held")
            self.assertEqual(ctl("resolve", conflict["id"], "--resolution", "prefer-local").returncode, 0)
            self.assertEqual(ctl("sync", "--direction", "push", "--wait").returncode, 0)
            self.assertEqual(self.sims.portal.view(uuid)["Event"]["info"], "changed on the member")
        finally:
            d.stop()

    def test_resolving_an_unknown_conflict_is_refused(self):
        r = subprocess.run([SGSYNCCTL, "--socket", self.socket, "resolve", "999", "--resolution", "prefer-local"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no conflict 999", r.stderr)

    def test_config_is_redacted(self):
        out = self.ctl("config")
        self.assertIn("<redacted: file", out)
        self.assertNotIn(self.sims.member.admin_key, out)
        self.assertNotIn(self.sims.sync_key, out)
        self.assertNotIn(self.sims.sync_key, json.dumps(self.ctl("config", json_out=True)))

    def test_reload_reports_what_changed(self):
        r = self.ctl("reload", json_out=True)
        self.assertTrue(r["reloaded"])
        self.assertEqual(r["changes"], ["nothing changed"])

    def test_backup_writes_a_copy_and_refuses_a_relative_path(self):
        path = os.path.join(self.tmp.name, "backup.db")
        out = self.ctl("backup", path)
        self.assertIn("backup written", out)
        self.assertEqual(sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0], "ok")
        r = subprocess.run([SGSYNCCTL, "--socket", self.socket, "backup", "relative.db"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("must be absolute", r.stderr)

    def test_unreachable_daemon_exits_3_naming_the_socket(self):
        r = subprocess.run([SGSYNCCTL, "--socket", "/nonexistent/admin.sock", "status"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 3)
        self.assertIn("/nonexistent/admin.sock", r.stderr)

    def test_usage_error_exits_2(self):
        r = subprocess.run([SGSYNCCTL, "sync", "--direction", "sideways"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)

    def test_sync_wait_draws_a_progress_bar_on_a_terminal(self):
        self.sims.member.control("POST", "seed", {"events": 3, "attributes": 2, "distribution": 3,
                                                  "attribute_distribution": 5, "seed": 203})
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(SGSYNCCTL, [SGSYNCCTL, "--socket", self.socket, "sync", "--direction", "push", "--wait"])
        out = b""
        deadline = time.time() + 60
        while time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        text = out.decode(errors="replace")
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, text)
        self.assertIn("\r", text)
        self.assertIn("portal push [", text)
        self.assertIn("#", text)
        self.assertIn("ETA done", text)
        # Without a terminal: plain lines, no carriage returns.
        plain = self.ctl("sync", "--direction", "push", "--wait")
        self.assertNotIn("\r", plain)
        self.assertIn("portal push: listed", plain)


class AdminTlsTest(unittest.TestCase):
    """The admin API over TCP with client certificates: who made a call is the certificate's subject."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.sims = harness.TwoSims(MISP_SIM, SGSYNCD, cls.tmp.name)
        d = lambda n: os.path.join(cls.tmp.name, n)
        # A client certificate from the CA that signed the daemon's, and one from a stranger's CA.
        for name, ca, ca_key in (("ops", "ca.pem", "ca.key"), ("stranger", "stranger-ca.pem", "stranger-ca.key")):
            if name == "stranger":
                harness.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                             "-nodes", "-days", "2", "-subj", "/CN=stranger-ca", "-keyout", d(ca_key), "-out", d(ca)])
            harness.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-subj", f"/O=ORG1/CN={name}-laptop", "-keyout", d(name + ".key"), "-out", d(name + ".csr")])
            harness.run(["openssl", "x509", "-req", "-in", d(name + ".csr"), "-CA", d(ca), "-CAkey", d(ca_key),
                         "-CAcreateserial", "-days", "2", "-out", d(name + ".pem")])
        local, remote = cls.sims.endpoints()
        pki = cls.sims.pki
        admin = (f'tcp_listen = "127.0.0.1:0"\ntls_cert = {harness.toml_value(pki.cert)}\n'
                 f'tls_key = {harness.toml_value(pki.key)}\ntls_client_ca = {harness.toml_value(pki.ca)}\n')
        cls.daemon = cls.sims.sgsyncd("tls", [harness.link_toml("portal", local, remote, interval_seconds=3600)],
                                      admin_extra=admin)
        cls.log = d("tls.log")
        cls.daemon.start(cls.log)
        line = harness.wait_for(lambda: re.search(r"and 127\.0\.0\.1:(\d+) \(mTLS\)", harness.read(cls.log)),
                                what="the admin TCP listener")
        cls.address = f"127.0.0.1:{line.group(1)}"

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.sims.stop()
        cls.tmp.cleanup()

    def ctl(self, who, *args):
        d = lambda n: os.path.join(self.tmp.name, n)
        cmd = [SGSYNCCTL, "--socket", self.address, "--tls-ca", self.sims.pki.ca, "--tls-cert", d(who + ".pem"),
               "--tls-key", d(who + ".key"), "--json"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def test_a_call_over_tls_is_audited_with_the_client_certificate_subject(self):
        r = self.ctl("ops", "pause", "--direction", "pull")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.ctl("ops", "resume", "--direction", "pull").returncode, 0)
        db = sqlite3.connect(self.daemon.config.replace(".toml", ".db"))
        actors = [a for (a,) in db.execute("SELECT actor FROM audit WHERE action IN ('Pause', 'Resume')")]
        self.assertEqual(len(actors), 2, actors)
        for actor in actors:
            self.assertTrue(actor.startswith("certificate ") and "ops-laptop" in actor and "ORG1" in actor, actor)

    def test_a_certificate_from_another_ca_is_refused_and_changes_nothing(self):
        r = self.ctl("stranger", "pause", "--direction", "push")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        status = json.loads(self.ctl("ops", "status").stdout)["links"][0]
        self.assertNotIn("paused", [d["state"] for d in status["directions"]])


if __name__ == "__main__":
    MISP_SIM, SGSYNCD, SGSYNCCTL = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)
