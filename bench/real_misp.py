#!/usr/bin/env python3
"""sgsync against MISP's own sync on a real MISP pair, side by side in one run (issues 18 and 19).

For each direction (push: member -> Portal; pull: Portal -> member), repeated --repeat times with
the variants' order rotated each time:
  - MISP's own sync: `servers/push/<id>/full` or `servers/pull/<id>/full` on instance 1, its
    server record's rules scoped to the round's tag;
  - sgsyncd --once at max_in_flight 4 and 8 (a fresh process, scoped by the same tag and a sync
    window): wall time, requests (its debug log), CPU (user + system) and peak RSS (GNU time);
  - the floor: the same event bodies added directly to the destination with the account sgsync
    writes with, as many in parallel as sgsync's max_in_flight (what the receiving MISP needs);
  - the no-change cycle: MISP's own sync run again with nothing new; sgsyncd as a daemon
    (interval 2 s) for --idle-seconds: runs, requests (its metrics) and CPU per run.
Each round creates --events fresh events of --attributes attributes on the source (published,
tagged `sgsync-bench:<run>-<round>`), times the variant, checks every event arrived, then deletes
both copies (MISP blocklists deleted uuids, so every round has new ones). Setup is not timed.

Both MISPs, their database and sgsync share this machine: say so next to the figures.

usage: real_misp.py PAIR.json SGSYNCD [--events N] [--attributes N] [--repeat N]
                    [--directions push,pull] [--in-flight 4,8] [--idle-seconds N]"""
import argparse
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "real-misp"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import harness  # noqa: E402
from pair import Pair  # noqa: E402


def bodies(n, attributes, tag, run):
    out = []
    for i in range(n):
        out.append({"uuid": str(uuidlib.uuid4()), "info": f"sgsync bench {run} {tag} {i}", "distribution": "3",
                    "analysis": "0", "threat_level_id": "2", "published": True, "date": time.strftime("%Y-%m-%d"),
                    "Tag": [{"name": tag, "colour": "#336699", "exportable": True}],
                    "Attribute": [{"uuid": str(uuidlib.uuid4()), "type": "domain", "category": "Network activity",
                                   "value": f"b{run}-{i}-{j}.{tag.replace(':', '-')}.example", "to_ids": True,
                                   "distribution": "5"} for j in range(attributes)]})
    return out


def parallel(fn, items, workers):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def add_all(inst, evs, workers, key=None):
    """The first event alone: MISP creates a new tag on the first add that names it, and adds
    racing to create the same tag fail with a duplicate key (seen on MISP 2.5.1: 500)."""
    inst.request("POST", "/events/add", {"Event": evs[0]}, key=key)
    parallel(lambda e: inst.request("POST", "/events/add", {"Event": e}, key=key), evs[1:], workers)


def fresh_copy(body):
    """The same event with new uuids (the floor adds bodies sgsync did not already write)."""
    b = json.loads(json.dumps(body))
    b["uuid"] = str(uuidlib.uuid4())
    for a in b["Attribute"]:
        a["uuid"] = str(uuidlib.uuid4())
    return b


class Bench:
    def __init__(self, args):
        self.args = args
        self.pair = Pair(args.pair)
        self.work = tempfile.mkdtemp(prefix="sgsync-bench-")
        self.rows = []  # (direction, variant, figures)

    def endpoints(self):
        p = self.pair
        local = {"url": p.member.url, "api_key_file": harness.write_key(self.work, "member.key", p.member.key),
                 "org_uuid": p.member.org_uuid, "org_name": p.member.org_name}
        remote = {"url": p.portal.url, "api_key_file": harness.write_key(self.work, "portal.key", p.sync_key),
                  "org_uuid": p.portal.org_uuid, "org_name": p.portal.org_name}
        for e in (local, remote):
            if e["url"].startswith("http://"):
                e["insecure_http"] = True
        return local, remote

    def config(self, name, direction, tag, since, in_flight, interval=300, metrics=""):
        local, remote = self.endpoints()
        local["max_in_flight"] = remote["max_in_flight"] = in_flight
        link = harness.link_toml("portal", local, remote, directions=[direction],
                                 initial_sync_since=since, overlap_seconds=0, interval_seconds=interval,
                                 push_rules={"tags": {"OR": [tag]}}, pull_rules={"tags": {"OR": [tag]}},
                                 sightings=False, proposals=False, galaxy_clusters=False, analyst_data=False)
        db = os.path.join(self.work, name + ".db")
        text = harness.daemon_toml(db, [link], metrics_listen=metrics).replace('level = "info"', 'level = "debug"')
        path = os.path.join(self.work, name + ".toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    # ---- one round: fresh events, one variant timed, checked, cleaned
    def round(self, direction, variant, n_round):
        a, p = self.args, self.pair
        source, dest = (p.member, p.portal) if direction == "push" else (p.portal, p.member)
        tag = f"sgsync-bench:{p.run}-{n_round}"
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
        evs = bodies(a.events, a.attributes, tag, p.run)
        if variant.startswith("floor"):
            figures = self.floor(direction, evs, int(variant.split("-")[1]))
            return figures
        add_all(source, evs, 4)
        uuids = [e["uuid"] for e in evs]
        try:
            if variant == "misp":
                figures = self.native(direction, tag)
            else:
                figures = self.sgsync(direction, tag, since, int(variant.split("-")[1]), n_round)
            arrived = set(dest.index_uuids(tag=tag))
            missing = len(set(uuids) - arrived)
            if missing:
                figures["missing"] = missing
            return figures
        finally:
            parallel(lambda u: [inst.request("POST", f"/events/delete/{u}", expect=None) for inst in (source, dest)],
                     uuids, 4)

    def native(self, direction, tag):
        p = self.pair
        _, tags = p.member.request("GET", "/tags/index")
        rows = tags.get("Tag") if isinstance(tags, dict) else tags
        tag_id = next((str(t["id"]) for t in rows if t["name"] == tag), tag)
        rules = {"tags": {"OR": [tag_id], "NOT": []}, "orgs": {"OR": [], "NOT": []}}
        pull_rules = {"tags": {"OR": [tag], "NOT": []}, "orgs": {"OR": [], "NOT": []}, "type_attributes": {"NOT": []},
                      "type_objects": {"NOT": []}, "url_params": ""}
        p.member.edit_server(p.server_id, {"push": direction == "push", "pull": direction == "pull",
                                           "push_rules": json.dumps(rules), "pull_rules": json.dumps(pull_rules)})
        what = "push" if direction == "push" else "pull"
        start = time.monotonic()
        p.member.request("POST", f"/servers/{what}/{p.server_id}/full")
        wall = time.monotonic() - start
        start = time.monotonic()
        p.member.request("POST", f"/servers/{what}/{p.server_id}/full")
        idle = time.monotonic() - start
        p.member.edit_server(p.server_id, {"push": False, "pull": False})
        return {"wall": wall, "idle_wall": idle}

    def sgsync(self, direction, tag, since, in_flight, n_round):
        path = self.config(f"r{n_round}", direction, tag, since, in_flight)
        cmd = ["/usr/bin/time", "-f", "TIME %e %U %S %M", self.args.sgsyncd, "--config", path, "--once",
               "--direction", direction]
        start = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - start
        with open(os.path.join(self.work, f"once{n_round}.log"), "w") as f:
            f.write(r.stderr)  # kept for a look at what was asked (the requests are its debug lines)
        if r.returncode != 0:
            raise RuntimeError(f"sgsyncd --once exited {r.returncode}: {r.stderr[-2000:]}")
        t = re.search(r"TIME ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9]+)", r.stderr)
        requests = len(re.findall(r" debug (GET|POST|HEAD) \S+ -> ", r.stderr))
        figures = {"wall": wall, "cpu": float(t.group(2)) + float(t.group(3)), "rss_mib": int(t.group(4)) / 1024,
                   "requests": requests}
        figures.update(self.idle(direction, tag, since, in_flight, n_round))
        return figures

    def idle(self, direction, tag, since, in_flight, n_round):
        """sgsyncd as a daemon on the same state: runs, requests and CPU of its no-change cycles."""
        port = harness.free_port()
        path = self.config(f"r{n_round}", direction, tag, since, in_flight, interval=2, metrics=f"127.0.0.1:{port}")
        d = harness.Sgsyncd(self.args.sgsyncd, path)
        d.start(os.path.join(self.work, f"idle{n_round}.log"))
        try:
            harness.wait_for(lambda: self.metrics(port) is not None, what="the metrics endpoint")
            time.sleep(5)  # the first cycles learn the ETags
            before, cpu_before = self.metrics(port), self.cpu(d.proc.pid)
            time.sleep(self.args.idle_seconds)
            after, cpu_after = self.metrics(port), self.cpu(d.proc.pid)
        finally:
            d.stop()
        runs = after["runs"] - before["runs"]
        return {"idle_runs": runs, "idle_requests": after["requests"] - before["requests"],
                "idle_cpu_ms_per_run": 1000 * (cpu_after - cpu_before) / runs if runs else None}

    @staticmethod
    def metrics(port):
        text = harness.scrape_metrics(port)
        if text is None:
            return None
        total = {"runs": 0.0, "requests": 0.0}
        for line in text.splitlines():
            m = re.match(r"^(sgsync_runs_total|sgsync_requests_total)\{.*\} ([0-9.e+]+)$", line)
            if m:
                total["runs" if m.group(1) == "sgsync_runs_total" else "requests"] += float(m.group(2))
        return total

    @staticmethod
    def cpu(pid):
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def floor(self, direction, evs, workers):
        p = self.pair
        dest, key = (p.portal, p.sync_key) if direction == "push" else (p.member, p.member.key)
        copies = [fresh_copy(e) for e in evs]
        dest.request("POST", "/events/add", {"Event": bodies(1, 1, evs[0]["Tag"][0]["name"], p.run)[0]}, key=key)
        start = time.monotonic()  # the tag exists now, as it does when sgsync's writes arrive
        parallel(lambda e: dest.request("POST", "/events/add", {"Event": e}, key=key), copies, workers)
        wall = time.monotonic() - start
        parallel(lambda e: dest.request("POST", f"/events/delete/{e['uuid']}", expect=None), copies, 4)
        return {"wall": wall}

    def run(self):
        a = self.args
        before = self.pair.quiet_native_sync()
        server = self.pair.member.server(self.pair.server_id)
        rules_before = {k: server.get(k) for k in ("push_rules", "pull_rules")}
        variants = ["misp"] + [f"sgsync-{k}" for k in a.in_flight] + [f"floor-{k}" for k in a.in_flight]
        n_round = 0
        try:
            for rep in range(a.repeat):
                for direction in a.directions:
                    order = variants[rep % len(variants):] + variants[:rep % len(variants)]
                    for v in order:
                        n_round += 1
                        figures = self.round(direction, v, n_round)
                        self.rows.append((direction, v, figures))
                        print(f"  {direction} {v}: " + ", ".join(f"{k} {x:.2f}" if isinstance(x, float) else f"{k} {x}"
                                                               for k, x in figures.items()), flush=True)
        finally:
            self.pair.member.edit_server(self.pair.server_id, rules_before)
            self.pair.restore_native_sync(before)
        self.report()

    def report(self):
        a = self.args
        print(f"\n{a.events} events x {a.attributes} attributes, {a.repeat} rounds each, MISP "
              f"{self.pair.version(self.pair.member).get('version')}; both MISPs, MariaDB and sgsync on this machine "
              f"({os.cpu_count()} cores)")
        print("| direction | variant | wall s (median, min-max) | ratio to MISP | ratio to floor | requests | "
              "CPU s | peak RSS MiB | no-change cycle |")
        print("|---|---|---|---|---|---|---|---|---|")
        for direction in a.directions:
            def walls(v):
                return [f["wall"] for d, vv, f in self.rows if d == direction and vv == v]
            misp = statistics.median(walls("misp")) if walls("misp") else None
            for v in ["misp"] + [f"sgsync-{k}" for k in a.in_flight] + [f"floor-{k}" for k in a.in_flight]:
                rows = [f for d, vv, f in self.rows if d == direction and vv == v]
                if not rows:
                    continue
                w = [f["wall"] for f in rows]
                med = statistics.median(w)
                floor = None
                if v.startswith("sgsync"):
                    fw = walls("floor-" + v.split("-")[1])
                    floor = statistics.median(fw) if fw else None
                def med_of(k):
                    xs = [f[k] for f in rows if f.get(k) is not None]
                    return statistics.median(xs) if xs else None
                idle = ""
                if v == "misp":
                    idle = f"{med_of('idle_wall'):.2f} s wall"
                elif v.startswith("sgsync") and med_of("idle_runs"):
                    idle = (f"{med_of('idle_requests') / med_of('idle_runs'):.1f} requests, "
                            f"{med_of('idle_cpu_ms_per_run'):.1f} ms CPU per run")
                missing = sum(f.get("missing", 0) for f in rows)
                cells = [direction, v, f"{med:.2f} ({min(w):.2f}-{max(w):.2f})",
                         fmt(None if misp is None or v == "misp" else med / misp, ".2f"),
                         fmt(None if floor is None else med / floor, ".2f"),
                         fmt(med_of("requests"), ".0f"), fmt(med_of("cpu"), ".2f"), fmt(med_of("rss_mib"), ".0f"),
                         idle + (f" ({missing} events missing!)" if missing else "")]
                print("| " + " | ".join(cells) + " |")


def fmt(x, spec):
    return "" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pair")
    ap.add_argument("sgsyncd")
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--attributes", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--directions", default="push,pull")
    ap.add_argument("--in-flight", default="4,8")
    ap.add_argument("--idle-seconds", type=int, default=10)
    args = ap.parse_args()
    args.directions = args.directions.split(",")
    args.in_flight = [int(x) for x in args.in_flight.split(",")]
    Bench(args).run()


if __name__ == "__main__":
    main()
