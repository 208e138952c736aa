#!/usr/bin/env python3
"""A two-MISP federation on this machine, synced by sgsyncd, as the quickstart shows it.

A member's MISP (ORG1) and the Portal (ORG2), both misp-sim over HTTPS on 127.0.0.1 with a
throw-away CA. The member holds events of every kind, real-shaped (taken from the recorded
conformance cases in tests/data/conformance): shareable ones with objects, a report and
sightings, organisation-only ones, sharing groups inside and outside the Portal's reach, a tlp:red
event, local tags. The Portal holds a few community events. sgsyncd runs as a daemon;
`sgsyncctl sync --wait` pushes and pulls with its progress bar; then the demo shows what crossed,
what was withheld and why (`sgsyncctl explain`), and `sgsyncctl status`.

usage: demo-federation.py MISP_SIM SGSYNCD SGSYNCCTL [--keep]
  --keep  leave the two MISPs and sgsyncd running and print how to reach them"""
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402

CASES = os.path.join(ROOT, "tests", "data", "conformance", "cases")

# (case, what it shows): the member's events, each the origin event of a recorded case.
MEMBER_EVENTS = [
    ("push-matrix-e3-a5", "shareable: all communities"),
    ("push-object-attribute-distributions", "shareable, with an object whose attributes differ"),
    ("push-reports-distributions", "shareable, with event reports"),
    ("push-sightings-policy-everyone", "shareable, with a sighting of the member's own"),
    ("push-matrix-e0-a5", "your organisation only"),
    ("push-matrix-e1-a5", "this community only"),
    ("push-sg-attr-remote-org-in-server-in", "an attribute in a sharing group the Portal is in"),
    ("push-sg-event-remote-org-in-server-out", "a sharing group that does not list the Portal's server"),
    ("push-local-tags", "local tags (they never leave)"),
]


class DetachedSim(harness.Sim):
    """A misp-sim whose output goes to a file, in its own session: it can outlive this script."""

    def __init__(self, binary, pki, org, base_url, work, name):
        self.admin_key = harness.random_key()
        self.org = org
        self.log_path = os.path.join(work, name + ".log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [binary, "--listen", "127.0.0.1:0", "--db", os.path.join(work, name + ".db"), "--tls-cert",
                 pki.cert, "--tls-key", pki.key, "--org", org[0], "--org-uuid", org[1], "--admin-key",
                 self.admin_key, "--base-url", base_url],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        lines = harness.wait_for(lambda: (lambda t: t if len(t) >= 3 else None)(
            [l for l in harness.read(self.log_path).splitlines() if l.strip()]), timeout=30, what=name + " to start")
        self.url = lines[0].split()[-1]
        self.token = lines[2].split()[-1]
        import ssl
        self.ctx = ssl.create_default_context(cafile=pki.ca)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Federation(harness.TwoSims):
    def __init__(self, misp_sim, sgsyncd, work):
        self.work = work
        self.pki = harness.Pki(work)
        self.member = DetachedSim(misp_sim, self.pki, harness.ORG1, harness.INSTANCE1_URL, work, "member")
        self.portal = DetachedSim(misp_sim, self.pki, harness.ORG2, harness.INSTANCE2_URL, work, "portal")
        self.member.control("POST", "setup", {
            "orgs": [{"name": harness.ORG2[0], "uuid": harness.ORG2[1]}, {"name": harness.ORG3[0], "uuid": harness.ORG3[1]}],
            "servers": [{"url": harness.INSTANCE2_URL, "name": "instance 2"}]})
        answer = self.portal.control("POST", "setup", {
            "orgs": [{"name": harness.ORG1[0], "uuid": harness.ORG1[1]}, {"name": harness.ORG3[0], "uuid": harness.ORG3[1]}],
            "users": [{"email": "sync@org1.test", "org_uuid": harness.ORG1[1], "role": "sync_user"}],
            "servers": [{"url": harness.INSTANCE1_URL, "name": "instance 1"}]})
        self.sync_key = answer["keys"]["sync@org1.test"]
        self.member_key_file = harness.write_key(work, "member.key", self.member.admin_key)
        self.portal_key_file = harness.write_key(work, "portal.key", self.sync_key)
        self.sgsyncd_bin = sgsyncd


def case_event(name):
    with open(os.path.join(CASES, name + ".json")) as f:
        return json.load(f)["origin_event"]


def tlp_red_event():
    ev = copy.deepcopy(case_event("push-matrix-e3-a5"))
    ev["uuid"] = harness.uuid_from("demo-tlp-red", 0)
    ev["info"] = "demo: marked tlp:red by its owner"
    ev["Tag"] = [{"name": "tlp:red", "colour": "#CC0033", "exportable": True}]
    for i, a in enumerate(ev.get("Attribute", [])):
        a["uuid"] = harness.uuid_from("demo-tlp-red", 1 + i)
    return ev


def main():
    misp_sim, sgsyncd, sgsyncctl = sys.argv[1:4]
    keep = "--keep" in sys.argv[4:]
    work = tempfile.mkdtemp(prefix="sgsync-demo-")
    fed = Federation(misp_sim, sgsyncd, work)
    daemon = None
    try:
        print(f"member's MISP (ORG1): {fed.member.url}    Portal (ORG2): {fed.portal.url}")
        local, remote = fed.endpoints()
        daemon = fed.sgsyncd("demo", [harness.link_toml("portal", local, remote, interval_seconds=3600)])
        print(f"configuration: {daemon.config}")
        daemon.proc = subprocess.Popen([sgsyncd, "--config", daemon.config], stdout=open(os.path.join(work, "sgsyncd.log"), "w"),
                                       stderr=subprocess.STDOUT, start_new_session=True)
        harness.wait_for(lambda: os.path.exists(daemon.admin_socket), timeout=30, what="sgsyncd's admin socket")
        ctl = [sgsyncctl, "--socket", daemon.admin_socket]
        # sgsyncd's first scheduled runs find two empty MISPs; the events arrive after them, so the
        # runs below are the ones that move them.
        log = os.path.join(work, "sgsyncd.log")
        harness.wait_for(lambda: "portal push (full): listed" in harness.read(log) and
                         "portal pull (full): listed" in harness.read(log), timeout=60, what="sgsyncd's first runs")
        shown = {}
        for name, what in MEMBER_EVENTS:
            ev = case_event(name)
            fed.member.control("POST", "load", {"Event": ev})
            shown[ev["uuid"]] = (ev["info"], what)
        red = tlp_red_event()
        fed.member.control("POST", "load", {"Event": red})
        shown[red["uuid"]] = (red["info"], "tlp:red: sgsync's TLP policy keeps it home")
        portal_events = fed.portal.control("POST", "seed", {"events": 3, "attributes": 10, "distribution": 3,
                                                            "attribute_distribution": 5, "seed": 7})["uuids"]
        print(f"the member holds {len(shown)} events of every kind; the Portal holds {len(portal_events)} community events")
        for direction in ("push", "pull"):
            print(f"== sgsyncctl sync --direction {direction} --wait")
            subprocess.run(ctl + ["sync", "--direction", direction, "--wait"], check=False)
        on_portal = {r["uuid"] for r in fed.portal.request("POST", "/events/index", {"minimal": 1})[2]}
        on_member = {r["uuid"] for r in fed.member.request("POST", "/events/index", {"minimal": 1})[2]}
        print("== what crossed to the Portal, and what stayed home")
        for uuid, (info, what) in shown.items():
            mark = "sent    " if uuid in on_portal else "withheld"
            print(f"  {mark} {what:<58} {uuid}")
        pulled = [u for u in portal_events if u in on_member]
        print(f"== pulled from the Portal: {len(pulled)} of {len(portal_events)} events (stored locked, downgraded as MISP's pull does)")
        for uuid, (info, what) in shown.items():
            if uuid in on_portal or not what.startswith(("your organisation", "a sharing group", "tlp:red")):
                continue
            print(f"== sgsyncctl explain {uuid}   ({what})")
            subprocess.run(ctl + ["explain", uuid], check=False)
        print("== sgsyncctl status")
        subprocess.run(ctl + ["status"], check=False)
        if keep:
            print("\nThe demo federation keeps running (--keep). Try:")
            print(f"  {sgsyncctl} --socket {daemon.admin_socket} status")
            print(f"  {sgsyncctl} --socket {daemon.admin_socket} events")
            print(f"  {sgsyncctl} --socket {daemon.admin_socket} explain {red['uuid']}")
            print(f"  configuration {daemon.config}; logs in {work}")
            print(f"Stop it with: kill {daemon.proc.pid} {fed.member.proc.pid} {fed.portal.proc.pid}; rm -rf {work}")
            return 0
    finally:
        if not keep:
            if daemon is not None and daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.send_signal(signal.SIGTERM)
                try:
                    daemon.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.proc.kill()
            fed.member.stop()
            fed.portal.stop()
            subprocess.run(["rm", "-rf", work], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
