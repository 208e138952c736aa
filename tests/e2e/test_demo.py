#!/usr/bin/env python3
"""The quickstart's demo federation runs from a fresh clone and says what crossed, what was
withheld and why, and leaves nothing running.

usage: test_demo.py DEMO_FEDERATION MISP_SIM SGSYNCD SGSYNCCTL"""
import subprocess
import sys
import unittest

DEMO = MISP_SIM = SGSYNCD = SGSYNCCTL = None


def running():
    """The processes of any demo federation: every one names the demo's work folder (sgsync-demo-...)
    on its command line, so the tests that run beside this one are not counted."""
    out = subprocess.run(["pgrep", "-f", "/sgsync-demo-"], capture_output=True, text=True).stdout.split()
    return set(out)


class DemoTest(unittest.TestCase):
    def test_the_demo_shows_what_crossed_and_why_the_rest_stayed_home_and_stops_everything(self):
        before = running()
        r = subprocess.run([sys.executable, DEMO, MISP_SIM, SGSYNCD, SGSYNCCTL], capture_output=True, text=True,
                           timeout=240)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("portal push: listed 10, sent 6, skipped 4, failed 0", out)
        self.assertIn("portal pull: listed 9, sent 3", out)
        for line in ("sent     shareable: all communities", "withheld your organisation only",
                     "withheld a sharing group that does not list the Portal's server",
                     "withheld tlp:red: sgsync's TLP policy keeps it home", "sent     local tags"):
            self.assertIn(line, out)
        self.assertIn("push.event.distribution", out)
        self.assertIn("push.event.sharing_group", out)
        self.assertIn("sgsync.blocked_tag", out)
        self.assertIn("DIRECTION  STATE", out)
        self.assertEqual(running() - before, set(), "nothing left running")


if __name__ == "__main__":
    DEMO, MISP_SIM, SGSYNCD, SGSYNCCTL = sys.argv[1:5]
    unittest.main(argv=[sys.argv[0]], verbosity=2)
