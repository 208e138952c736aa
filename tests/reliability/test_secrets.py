#!/usr/bin/env python3
"""The secrets campaign (issue #22): a full sync both ways at trace level, with failures provoked
(a Portal answering 503, a member MISP answering 500 for one event, a rotated key the Portal
refuses), every admin call an operator makes, the metrics and health endpoints; then every output
is searched for both API keys: the daemon's log (text and JSON), the --once output, every
sgsyncctl answer (tables and JSON), /metrics, /healthz, /readyz, the state database and its WAL.
None may hold either key, whole or as its first half.

Usage: test_secrets.py MISP_SIM SGSYNCD SGSYNCCTL
"""
import glob
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402

MISP_SIM = SGSYNCD = SGSYNCCTL = None


class SecretsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.sims = harness.TwoSims(MISP_SIM, SGSYNCD, self.tmp.name)
        self.outputs = {}  # what -> text

    def tearDown(self):
        self.sims.stop()
        self.tmp.cleanup()

    def keys(self):
        return {"the member's key": self.sims.member.admin_key, "the Portal key": self.sims.sync_key}

    def record(self, what, text):
        self.outputs[what] = self.outputs.get(what, "") + text

    def ctl(self, socket, *args, json_out=False):
        cmd = [SGSYNCCTL, "--socket", socket] + (["--json"] if json_out else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.record("sgsyncctl " + " ".join(args) + (" --json" if json_out else ""), r.stdout + r.stderr)
        return r

    def fetch(self, port, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as e:
            text = e.read().decode()
        self.record("GET " + path, text)
        return text

    def test_no_output_of_a_full_sync_with_failures_holds_either_key(self):
        member, portal = self.sims.member, self.sims.portal
        pushed = member.control("POST", "seed", {"events": 6, "attributes": 3, "distribution": 3, "attribute_distribution": 5, "seed": 301})["uuids"]
        member.control("POST", "seed", {"events": 2, "attributes": 2, "distribution": 0, "attribute_distribution": 5, "seed": 302})
        portal.control("POST", "seed", {"events": 3, "attributes": 2, "distribution": 3, "attribute_distribution": 5, "seed": 303})
        local, remote = self.sims.endpoints()
        port = harness.free_port()
        for log_format in ("text", "json"):
            d = self.sims.sgsyncd(f"secrets-{log_format}", [harness.link_toml("portal", local, remote, interval_seconds=1,
                                                                              blocked_tags_push=[], overlap_seconds=0)],
                                  metrics_listen=f"127.0.0.1:{port}", max_attempts=1)
            with open(d.config) as f:
                text = f.read()
            with open(d.config, "w") as f:
                f.write(text.replace('[log]\nlevel = "info"', f'[log]\nformat = "{log_format}"\nlevel = "trace"'))
            # --once with the Portal down, then one event the member's MISP cannot serve.
            portal.control("POST", "faults", {"error_rate": 1.0, "error_status": 503})
            rc, stats, err = d.once(check=False)
            self.record(f"--once ({log_format}, Portal down)", json.dumps(stats) + err)
            portal.control("DELETE", "faults")
            member.control("POST", "faults", {"route": f"/events/view/{pushed[0]}", "error_rate": 1.0, "error_status": 500})
            member.control("POST", "faults", {"route": "/events/restSearch", "error_rate": 1.0, "error_status": 500})
            rc, stats, err = d.once(full=True, check=False)
            self.record(f"--once ({log_format}, one event failing)", json.dumps(stats) + err)
            member.control("DELETE", "faults")
            # The daemon, its admin API, its metrics and health.
            log = os.path.join(self.tmp.name, f"daemon-{log_format}.log")
            d.start(log)
            harness.wait_for(lambda: os.path.exists(d.admin_socket), what="the admin socket")
            harness.wait_for(lambda: "ready" in self.fetch(port, "/readyz"), what="ready", timeout=60)
            for args in (("status",), ("events",), ("failures",), ("conflicts",), ("config",), ("audit",),
                         ("audit", "--format", "jsonl"), ("preview", "--direction", "push"),
                         ("explain", pushed[1]), ("resend", pushed[1]), ("sync", "--direction", "pull", "--wait")):
                self.ctl(d.admin_socket, *args)
                self.ctl(d.admin_socket, *args, json_out=True)
            # A rotated key the Portal refuses: the answer and the log name fingerprints only.
            with open(self.sims.portal_key_file) as f:
                original = f.read().strip()
            harness.write_key(os.path.dirname(self.sims.portal_key_file), os.path.basename(self.sims.portal_key_file), "Q" * 40)
            self.ctl(d.admin_socket, "reload")
            harness.write_key(os.path.dirname(self.sims.portal_key_file), os.path.basename(self.sims.portal_key_file), original)
            self.ctl(d.admin_socket, "reload")
            for path in ("/metrics", "/healthz", "/readyz", "/nope"):
                self.fetch(port, path)
            d.stop()
            self.record(f"daemon log ({log_format})", harness.read(log))
            db = d.config.replace(".toml", ".db")
            for f in glob.glob(db + "*"):
                with open(f, "rb") as fh:
                    self.record("state database " + os.path.basename(f), fh.read().decode("latin-1"))
        self.assertTrue(any(" written" in t for t in self.outputs.values()), "the campaign did sync")
        self.assertTrue(any('"level":"debug"' in t or " debug " in t for t in self.outputs.values()),
                        "the logs were at trace level (debug lines written)")
        self.assertTrue(any("503" in t for t in self.outputs.values()), "the failures were provoked")
        self.assert_no_key_in_outputs()
        print(f"secrets campaign: {len(self.outputs)} outputs, {sum(len(t) for t in self.outputs.values())} bytes "
              f"searched for 2 keys: none found")

    def assert_no_key_in_outputs(self):
        found = []
        for what, text in self.outputs.items():
            for name, key in self.keys().items():
                if key in text or key[:20] in text:
                    found.append(f"{name} in {what}")
        self.assertEqual(found, [], "a key reached an output")

    def crash(self, name, env):
        """sgsyncd as a daemon in its own working directory, allowed unlimited core files, killed
        with SIGSEGV once running; its output and the files it left behind."""
        local, remote = self.sims.endpoints()
        d = self.sims.sgsyncd(name, [harness.link_toml("portal", local, remote, interval_seconds=3600)])
        cwd = os.path.join(self.tmp.name, name + "-cwd")
        os.makedirs(cwd)
        log = os.path.join(self.tmp.name, name + ".log")
        with open(log, "w") as out:
            proc = subprocess.Popen([os.path.abspath(SGSYNCD), "--config", d.config], cwd=cwd, stdout=out, stderr=out,
                                    env=dict(os.environ, **env),
                                    preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (-1, -1)))
            harness.wait_for(lambda: "running 1 link" in harness.read(log), what="sgsyncd running")
            time.sleep(0.5)  # the first runs hold both keys in use
            proc.send_signal(signal.SIGSEGV)
            proc.wait(timeout=30)
        # Under AddressSanitizer its SEGV handler reports the crash and aborts (abort_on_error).
        self.assertIn(proc.returncode, (-signal.SIGSEGV, -signal.SIGABRT))
        return harness.read(log), [os.path.join(cwd, f) for f in os.listdir(cwd)]

    def test_a_crash_leaves_no_core_file_and_its_message_holds_no_key(self):
        text, left = self.crash("crash", {})
        self.assertEqual(left, [], "sgsyncd is not dumpable: no core file")
        self.record("the crash's output", text)
        self.assert_no_key_in_outputs()
        # The same crash where core files are allowed: the core is written and holds the Portal key,
        # which is what forbidding them prevents. The kernel must write cores to the working
        # directory for this half (core_pattern), and AddressSanitizer writes none.
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
        if pattern.startswith("|") or "/" in pattern or "ASAN_OPTIONS" in os.environ:
            return
        text, left = self.crash("crash-allowed", {"SGSYNC_ALLOW_CORE_DUMPS": "1"})
        self.assertEqual(len(left), 1, left)
        with open(left[0], "rb") as f:
            self.assertIn(self.sims.sync_key.encode(), f.read())


if __name__ == "__main__":
    MISP_SIM, SGSYNCD, SGSYNCCTL = sys.argv[1], sys.argv[2], sys.argv[3]
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)
