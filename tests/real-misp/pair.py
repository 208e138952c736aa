"""A pair of real MISP instances, as a `pair.json` describes them (tests/real-misp/README in
docs/testing.md): instance 1 is the member's MISP, instance 2 the Portal.

    {"instance1": {"url", "key_file", "org_uuid", "org_name"},   a site admin of the member's org
     "instance2": {"url", "key_file", "org_uuid", "org_name"},   a site admin of the Portal's org
     "sync_key_file": ...,   a sync user of instance 1's organisation on instance 2 (sgsync's Portal key)
     "server_id": N}         instance 1's server record for instance 2 (MISP's own push and pull)

Nothing here depends on how the pair was made. Every helper talks to MISP's REST API."""
import json
import os
import time
import urllib.error
import urllib.request
import uuid as uuidlib


class MispError(AssertionError):
    pass


class Instance:
    def __init__(self, desc, key):
        self.url = desc["url"].rstrip("/")
        self.key = key
        self.org_uuid = desc["org_uuid"]
        self.org_name = desc["org_name"]

    def request(self, method, path, body=None, key=None, expect=(200,)):
        data = None if body is None else json.dumps(body).encode()
        r = urllib.request.Request(self.url + path, data=data, method=method)
        r.add_header("Authorization", key or self.key)
        r.add_header("Accept", "application/json")
        r.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(r, timeout=120) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = text
        if expect is not None and status not in expect:
            raise MispError(f"{method} {self.url}{path}: {status} {str(parsed)[:400]}")
        return status, parsed

    # ---- events
    def add_event(self, event, publish=True):
        _, b = self.request("POST", "/events/add", {"Event": event})
        saved = b["Event"]
        if publish:
            self.request("POST", f"/events/publish/{saved['id']}")
        return saved

    def view(self, uuid, deleted=False):
        path = f"/events/view/{uuid}" + ("/deleted[]:0/deleted[]:1" if deleted else "")
        status, b = self.request("GET", path, expect=(200, 403, 404))
        return b["Event"] if status == 200 else None

    def edit(self, uuid, event):
        return self.request("POST", f"/events/edit/{uuid}", {"Event": event})[1]["Event"]

    def publish(self, uuid):
        self.request("POST", f"/events/publish/{self.view(uuid)['id']}")

    def delete(self, uuid):
        self.request("POST", f"/events/delete/{uuid}")

    def index_uuids(self, tag=None):
        """Every event uuid the index lists (with `tag`: only those carrying it), repeats kept."""
        body = {"minimal": 1}
        if tag:
            body["tags"] = [tag]
        _, rows = self.request("POST", "/events/index", body)
        return [r["uuid"] for r in rows]

    def server(self, server_id):
        _, rows = self.request("GET", "/servers/index")
        for row in rows:
            if str(row["Server"]["id"]) == str(server_id):
                return row["Server"]
        raise MispError(f"{self.url} has no server record {server_id}")

    def edit_server(self, server_id, fields):
        self.request("POST", f"/servers/edit/{server_id}", {"Server": fields})


class Pair:
    def __init__(self, path):
        with open(path) as f:
            d = json.load(f)
        def read(p):
            with open(p) as f:
                return f.read().strip()
        self.member = Instance(d["instance1"], read(d["instance1"]["key_file"]))
        self.portal = Instance(d["instance2"], read(d["instance2"]["key_file"]))
        self.sync_key = read(d["sync_key_file"])
        self.server_id = d["server_id"]
        self.run = uuidlib.uuid4().hex[:8]  # tells this run's events from any other's

    def version(self, inst):
        return inst.request("GET", "/servers/getVersion")[1]

    def quiet_native_sync(self):
        """Stops MISP's own push and pull on instance 1's server record (they would race sgsync);
        returns what to restore."""
        s = self.member.server(self.server_id)
        before = {k: bool(s[k]) for k in ("push", "pull", "push_sightings")}
        self.member.edit_server(self.server_id, {"push": False, "pull": False, "push_sightings": False})
        return before

    def restore_native_sync(self, before):
        self.member.edit_server(self.server_id, before)

    def event(self, n, tag, distribution="3", attributes=3, local_tags=(), **extra):
        """An unpublished-by-construction event body of this run, carrying `tag` (what scopes each
        scenario's link to its own events) and `local_tags` as local tags."""
        now = str(int(time.time()))
        e = {"uuid": str(uuidlib.uuid4()), "info": f"sgsync real-MISP suite {self.run} {tag} {n}",
             "distribution": str(distribution), "analysis": "0", "threat_level_id": "2", "published": False,
             "date": time.strftime("%Y-%m-%d"), "timestamp": now,
             "Tag": [{"name": tag, "colour": "#336699", "exportable": True}] +
                    [{"name": name, "local": 1} for name in local_tags],
             "Attribute": [{"uuid": str(uuidlib.uuid4()), "type": "domain", "category": "Network activity",
                            "value": f"{self.run}-{tag}-{n}-{i}.example.org".replace(":", "-"),
                            "distribution": "5", "to_ids": True} for i in range(attributes)]}
        e.update(extra)
        return e

    def tag(self, scenario):
        return f"sgsync-suite:{self.run}-{scenario}"
