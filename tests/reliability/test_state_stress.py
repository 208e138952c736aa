#!/usr/bin/env python3
"""State under stress (issue #22): the state database on a filesystem of its own (a tmpfs this
test mounts, as root) that fills up under the running daemon, is read-only when it starts, or holds
a corrupted file. Each time: a clear error naming the database (and, on a full disk, the daemon
keeps answering `status`), and once the cause is fixed it resumes with nothing lost and nothing
twice at the Portal.

Usage: test_state_stress.py MISP_SIM SGSYNCD SGSYNCCTL
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import uuid as uuidlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402

MISP_SIM = SGSYNCD = SGSYNCCTL = None


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                          capture_output=True, text=True)


def remount(path, options):
    subprocess.run(["mount", "-o", f"remount,{options}", path], check=True, capture_output=True)


class StateStressTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.fs = os.path.join(self.tmp.name, "statefs")
        mounted = mount_tmpfs(self.fs, "6m")
        if mounted.returncode != 0:
            self.tmp.cleanup()
            self.skipTest(f"cannot mount a tmpfs for the state database (needs root): {mounted.stderr.strip()}")
        self.sims = harness.TwoSims(MISP_SIM, SGSYNCD, self.tmp.name)
        self.db = os.path.join(self.fs, "state.db")
        self.socket = os.path.join(self.tmp.name, "admin.sock")
        self.config = os.path.join(self.tmp.name, "stress.toml")
        local, remote = self.sims.endpoints()
        with open(self.config, "w") as f:
            f.write(harness.daemon_toml(self.db, [harness.link_toml(
                "portal", local, remote, interval_seconds=1, blocked_tags_push=[], overlap_seconds=0,
                sightings=False, proposals=False, galaxy_clusters=False, analyst_data=False)],
                max_attempts=1000, admin_socket=self.socket))
        self.daemon = harness.Sgsyncd(SGSYNCD, self.config, self.socket)
        self.log = os.path.join(self.tmp.name, "stress.log")
        self.seeds = 0

    def tearDown(self):
        if hasattr(self, "daemon"):
            self.daemon.stop()
            self.sims.stop()
            subprocess.run(["umount", "-l", self.fs], capture_output=True)
            self.tmp.cleanup()

    def seed(self, n):
        """n published, shareable events added to the member's MISP now (ahead of the cursor)."""
        uuids = []
        for i in range(n):
            u = str(uuidlib.uuid4())
            now = str(int(time.time()))
            event = {"Event": {
                "uuid": u, "info": f"state stress {i}", "distribution": "3", "threat_level_id": "2", "analysis": "1",
                "date": "2026-12-02", "published": True, "timestamp": now, "publish_timestamp": now,
                "Attribute": [{"uuid": str(uuidlib.uuid4()), "type": "ip-dst", "category": "Network activity",
                               "value": f"198.51.100.{j + 1}", "to_ids": True, "distribution": "5",
                               "timestamp": now} for j in range(4)]}}
            status, _, body = self.sims.member.request("POST", "/events/add", event)
            self.assertEqual(status, 200, body)
            uuids.append(u)
        return uuids

    def ctl(self, *args, expect=(0,)):
        r = subprocess.run([SGSYNCCTL, "--socket", self.socket, "--json"] + list(args),
                           capture_output=True, text=True, timeout=60)
        self.assertIn(r.returncode, expect, f"sgsyncctl {' '.join(args)}: {r.stdout}{r.stderr}")
        return json.loads(r.stdout)

    def failing_status(self, cause):
        """`status` answers (exit 1: something is failing) and names the database and the cause."""
        status = self.ctl("status", expect=(1,))
        outcomes = [d["last_run_outcome"] for d in status["links"][0]["directions"]]
        self.assertTrue(any(self.db in o and cause in o for o in outcomes), outcomes)
        self.assertGreater(int(status["state_db_bytes"]), 0)
        return status

    def all_at_portal_once(self, expected, what):
        def arrived():
            listed = harness.uuid_list(self.sims.portal)
            return set(expected) <= set(listed) and listed
        try:
            listed = harness.wait_for(arrived, timeout=60, what=what)
        except AssertionError as e:
            missing = set(expected) - set(harness.uuid_list(self.sims.portal))
            raise AssertionError(f"{e}: {len(missing)} missing; the daemon's log ends:\n"
                                 f"{harness.read(self.log)[-4000:]}") from None
        twice = {u for u in listed if listed.count(u) > 1}
        self.assertEqual(twice, set(), "events twice at the Portal")

    def ledger_rows(self):
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return {u for (u,) in db.execute("SELECT uuid FROM ledger")}
        finally:
            db.close()

    def start_and_sync(self):
        first = self.seed(10)
        self.daemon.start(self.log)
        harness.wait_for(lambda: os.path.exists(self.socket), what="the admin socket")
        self.all_at_portal_once(first, "the first events")
        return first

    def test_a_full_disk_is_reported_status_still_answers_and_it_resumes_when_space_returns(self):
        first = self.start_and_sync()
        filler = os.path.join(self.fs, "filler")
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        during = self.seed(10)
        harness.wait_for(lambda: "database or disk is full" in harness.read(self.log), what="a disk-full error in the log")
        time.sleep(3)  # several cycles against the full disk
        self.failing_status("database or disk is full")
        os.remove(filler)
        self.all_at_portal_once(first + during, "the events seeded while the disk was full")
        harness.wait_for(lambda: set(first + during) <= self.ledger_rows(), what="the ledger to hold every event")

    def test_a_read_only_filesystem_is_refused_at_start_and_it_resumes_once_writable(self):
        # Linux refuses to remount a filesystem read-only while a file on it is open for writing
        # (EBUSY), so the daemon meets the read-only database when it starts; a write refused while
        # running takes the path of the full disk above (the run fails, is retried, loses nothing).
        first = self.start_and_sync()
        self.daemon.stop()
        remount(self.fs, "ro")
        r = subprocess.run([SGSYNCD, "--config", self.config], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(self.db, r.stderr)
        self.assertRegex(r.stderr, r"(?i)read-only|readonly")
        while_down = self.seed(10)
        remount(self.fs, "rw")
        self.daemon.start(self.log + ".2")
        self.log = self.log + ".2"
        self.all_at_portal_once(first + while_down, "the events seeded while the database was read-only")
        harness.wait_for(lambda: set(first + while_down) <= self.ledger_rows(), what="the ledger to hold every event")

    def test_a_corrupt_database_is_refused_at_start_and_a_restored_backup_resumes_with_nothing_twice(self):
        first = self.start_and_sync()
        backup = os.path.join(self.tmp.name, "backup.db")
        self.ctl("backup", backup)
        after_backup = self.seed(5)
        self.all_at_portal_once(first + after_backup, "the events synced after the backup")
        self.daemon.stop()
        # Garbage over every page but the first: the header still says SQLite, the tables are gone.
        size = os.path.getsize(self.db)
        with open(self.db, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(max(0, size - 4096)))
        for leftover in (self.db + "-wal", self.db + "-shm"):
            if os.path.exists(leftover):
                os.remove(leftover)
        r = subprocess.run([SGSYNCD, "--config", self.config], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(self.db, r.stderr)
        self.assertRegex(r.stderr, r"corrupt|malformed|not a database")
        self.assertIn("backup", r.stderr)  # the way out is named
        # The operator restores the backup; what crossed after it is found again, not sent twice.
        shutil.copyfile(backup, self.db)
        while_down = self.seed(5)
        self.daemon.start(self.log + ".2")
        self.log = self.log + ".2"
        self.all_at_portal_once(first + after_backup + while_down, "every event after the restore")
        harness.wait_for(lambda: set(first + after_backup + while_down) <= self.ledger_rows(),
                         what="the ledger to hold every event")


if __name__ == "__main__":
    MISP_SIM, SGSYNCD, SGSYNCCTL = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)
