#!/usr/bin/env python3
"""sgsyncd under systemd's notify protocol (Type=notify), with a real NOTIFY_SOCKET: READY=1 once the
admin socket listens and every link has started or been reported failed, STATUS= lines, WATCHDOG=1
keep-alives when WatchdogSec= asks, STOPPING=1 on SIGTERM.

usage: test_systemd.py MISP_SIM SGSYNCD [unittest arguments]"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MISP_SIM = SGSYNCD = None


class NotifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.sims = harness.TwoSims(MISP_SIM, SGSYNCD, cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.sims.stop()
        cls.tmp.cleanup()

    def test_ready_status_watchdog_and_stopping_reach_systemd(self):
        local, remote = self.sims.endpoints()
        bad = dict(remote, api_key_file=harness.write_key(self.tmp.name, "bad.key", self.sims.portal.admin_key))
        d = self.sims.sgsyncd("notify", [harness.link_toml("portal", local, remote, interval_seconds=3600),
                                         harness.link_toml("wrong-key", local, bad, interval_seconds=3600)])
        path = os.path.join(self.tmp.name, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000")
        log = open(os.path.join(self.tmp.name, "notify.log"), "w")
        proc = subprocess.Popen([SGSYNCD, "--config", d.config], stdout=log, stderr=log, env=env)
        env["WATCHDOG_PID"] = str(proc.pid)  # (sd_watchdog_enabled accepts an unset WATCHDOG_PID)
        messages = []
        try:
            def until(word, timeout=30):
                deadline = time.time() + timeout
                while time.time() < deadline:
                    msg = sock.recv(4096).decode()
                    messages.append(msg)
                    if word in msg:
                        return msg
                raise AssertionError(f"no {word} in {messages}")
            ready = until("READY=1")
            self.assertTrue(os.path.exists(d.admin_socket), "ready only once the admin socket listens")
            self.assertIn("STATUS=1 link(s) running, 1 failed to start, 0 starting", ready)
            until("WATCHDOG=1", timeout=10)
            proc.send_signal(signal.SIGTERM)
            until("STOPPING=1")
            self.assertEqual(proc.wait(timeout=30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
            sock.close()


if __name__ == "__main__":
    MISP_SIM, SGSYNCD = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
