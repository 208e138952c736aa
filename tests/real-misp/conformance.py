#!/usr/bin/env python3
"""The recorded conformance cases (tests/data/conformance) recreated on a real MISP pair.

Each case is rebuilt on the pair: its sharing groups (organisations, server rows with their
all_orgs, roaming) created on the origin through sharing_groups/add, its origin event added by the
origin's site admin (on behalf of the case's creator organisation), instance 1's settings and
server flags set as the case had them; then the recorded steps are replayed: each sync either by
`sgsyncd --once` in the case's direction (the link's flags as e2e_cases.py maps them) or, natively,
by MISP's own sync (push: instance 1 publishes with its server record's push on, or runs
servers/push/<server>/full; pull: servers/pull/<server>/full or /update, narrowed to the case's
event), and each edit of the origin (an attribute added, hard- or soft-deleted, a tag removed, the
info or a distribution changed, an organisation removed from the sharing group) through the same
REST call the recorder used. For edit cases the origin's first version is the final origin event
with each edit undone, guided by the destination's copy after the first sync, which is also
compared. What arrived is read back from the destination and compared with what real MISP
delivered when the case was recorded (tests/data/conformance/compare.py). Uuids are fresh for
every run (MISP blocklists a deleted event's uuid) and mapped back to the case's before comparing;
both copies are deleted afterwards, settings and the server record restored.

The harness proves itself: a case counts only where the native run reproduces the recording. The
report says, per case: passed (sgsync and native match the recording), failed (native matches,
sgsync does not, with the difference), not reproducible natively (native differs from the
recording: the rebuild, not sgsync, is in question), not run (outside what this harness rebuilds).

The sighting and proposal cases are replayed step by step (SideCase): the event made on the
instance of its creator organisation, each sighting added (`sightings/add`, its uuid mapped to the
case's) or published (`events/publishSightings`) and each proposal made (`shadow_attributes/add`,
`/edit`) by the site admin of the instance the step names (of that organisation), each sync by
`sgsyncd --once` with the sightings and proposals channels on, or natively (the server record's
push_sightings on, as recorded). Besides the event, the sightings that arrived are compared by uuid
(on the Portal read as ORG1's sync user: under policy 0 MISP's sightings/restSearch shows the
Portal's site admin none of ORG1's sightings on an ORG1 event) and the proposals by value.

usage: conformance.py PAIR.json SGSYNCD [--native-only | --sgsync-only] [CASE_ID ...]"""
import ast
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
import harness  # noqa: E402
from pair import Pair  # noqa: E402

CONF = os.path.join(ROOT, "tests", "data", "conformance")
sys.path.insert(0, CONF)
import case2link  # noqa: E402
from e2e_cases import link_settings  # noqa: E402

# The organisations and URLs the cases were recorded with (tests/data/conformance/README.md).
RECORDED_URL = {"instance1": "http://127.0.0.1:8081", "instance2": "http://127.0.0.1:8082"}
ORG3 = {"name": "ORG3", "uuid": "9f3c7e20-3b1a-4d6e-8a51-2f6c0d9e7a33"}


def steps_of(case):
    s = case.get("steps")
    return ast.literal_eval(s) if isinstance(s, str) else (s or [])


def empty_rules(rules):
    for k, v in (rules or {}).items():
        if k == "url_params":
            if v:
                return False
        elif isinstance(v, dict) and any(v.values()):
            return False
    return True


# The instance-1 settings a case may change (README: host_org_id, filtering on type, sighting policy).
SETTINGS = ("MISP.host_org_id", "MISP.enable_synchronisation_filtering_on_type", "Plugin.Sightings_policy")


# The origin's edits between two syncs that the harness replays (Edits below), by the words the
# recording's steps use.
EDIT_ACTIONS = ("attribute added", "attribute hard-deleted", "attribute soft-deleted", "object attribute soft-deleted",
                "attribute tag removed", "event tag removed", "event info edited", "event distribution",
                "attribute distribution", "removed from the event sharing group")
SYNCS = ("publish", "publish+pull_full", "pull_full", "push_full", "publish+pull_update")


def action_kind(text):
    text = text.removeprefix("origin: ")
    for kind in sorted(EDIT_ACTIONS, key=len, reverse=True):
        if kind in text:
            return kind
    return None


def why_not_rebuilt(case):
    steps = steps_of(case)
    syncs = [s["sync"] for s in steps if "sync" in s]
    actions = [s["action"] for s in steps if "action" in s]
    if any(not a.startswith("origin: ") or action_kind(a) is None for a in actions):
        return "a sighting or proposal step"
    first_is_action = bool(steps) and "action" in steps[0]
    if actions and not first_is_action and (len(syncs) != 2 or not case.get("first_arrived_event")):
        return "an edit between syncs without the first arrival recorded"
    if first_is_action and (len(syncs) != 1 or any(action_kind(a) != "attribute soft-deleted" for a in actions)):
        return "an edit before the first sync other than a soft delete"
    if not actions and len(syncs) != 1:
        return "more than one sync"
    if any(x not in SYNCS for x in syncs):
        return f"sync by {', '.join(syncs)}"
    for key in case.get("settings") or {}:
        where, name = key.split(":", 1)
        if where != "instance1" or name not in SETTINGS:
            return f"setting {key}"
    return None


def by_uuid(event):
    """Every attribute of the event (objects' too) and the objects, by uuid."""
    out = {}
    for a in event.get("Attribute") or []:
        out[a["uuid"]] = a
    for o in event.get("Object") or []:
        out[o["uuid"]] = o
        for a in o.get("Attribute") or []:
            out[a["uuid"]] = a
    return out


def first_version(case):
    """The origin event before the recorded edits: the final origin event with each edit undone,
    guided by the destination's copy after the first sync (first_arrived_event)."""
    final, first = copy.deepcopy(case["origin_event"]), case.get("first_arrived_event")
    now = by_uuid(final)
    if first is None:  # an edit before the only sync (a soft delete): the origin held it undeleted
        first = copy.deepcopy(final)
        for a in by_uuid(first).values():
            a["deleted"] = False
    was = by_uuid(first)
    for step in steps_of(case):
        kind = action_kind(step.get("action", ""))
        if kind == "attribute added":
            final["Attribute"] = [a for a in final.get("Attribute") or [] if a["uuid"] in was]
        elif kind == "attribute hard-deleted":
            for u, a in was.items():
                if u not in now and "type" in a:
                    final.setdefault("Attribute", []).append(copy.deepcopy(a))
        elif kind in ("attribute soft-deleted", "object attribute soft-deleted"):
            for u, a in now.items():
                if a.get("deleted") and u in was and not was[u].get("deleted"):
                    a["deleted"] = False
        elif kind == "attribute tag removed":
            for u, a in now.items():
                if u in was and "type" in a:
                    names = {t["name"] for t in a.get("Tag") or []}
                    a["Tag"] = (a.get("Tag") or []) + [t for t in was[u].get("Tag") or [] if t["name"] not in names]
        elif kind == "event tag removed":
            names = {t["name"] for t in final.get("Tag") or []}
            final["Tag"] = (final.get("Tag") or []) + [t for t in first.get("Tag") or [] if t["name"] not in names]
        elif kind == "event info edited":
            final["info"] = first.get("info", final.get("info"))
        elif kind == "event distribution":
            final["distribution"] = re.search(r"distribution (\d) ->", step["action"]).group(1)
        elif kind == "attribute distribution":
            before = re.search(r"distribution (\d) ->", step["action"]).group(1)
            for u, a in now.items():
                if u in was and "type" in a and str(a.get("distribution")) != str(was[u].get("distribution")):
                    a["distribution"] = before
        elif kind == "removed from the event sharing group":
            org = re.search(r"origin: (\S+) removed", step["action"]).group(1)
            rows = final["SharingGroup"].setdefault("SharingGroupOrg", [])
            for row in (first.get("SharingGroup") or {}).get("SharingGroupOrg") or []:
                if row["Organisation"]["name"] == org:
                    rows.append(copy.deepcopy(row))
    final["published"] = True
    return final


class Configure:
    """Instance 1's settings and server record as the case had them, restored afterwards. The
    server record's flags and rules matter to MISP's own sync only; sgsync takes the same from its
    link settings (e2e_cases.link_settings)."""

    def __init__(self, pair, case, native):
        self.pair, self.case, self.native = pair, case, native
        self.settings_before, self.server_before = {}, None

    def apply(self):
        m = self.pair.member
        for key, value in (self.case.get("settings") or {}).items():
            name = key.split(":", 1)[1]
            _, current = m.request("GET", f"/servers/getSetting/{name}")
            self.settings_before[name] = current.get("value")
            m.request("POST", f"/servers/serverSettingsEdit/{name}", {"value": value, "force": 1})
        if not self.native:
            return
        link = self.case["link"]
        s = m.server(self.pair.server_id)
        self.server_before = {k: s.get(k) for k in ("internal", "unpublish_event", "remove_missing_tags",
                                                    "push_rules", "pull_rules")}
        fields = {"internal": bool(link.get("internal")), "unpublish_event": bool(link.get("unpublish_event")),
                  "remove_missing_tags": bool(link.get("remove_missing_tags")),
                  "pull_rules": json.dumps(link.get("pull_rules") or {}),
                  "push_rules": json.dumps(self.push_rules_here(link.get("push_rules_by_name") or link.get("push_rules") or {}))}
        m.edit_server(self.pair.server_id, fields)

    def push_rules_here(self, rules):
        """MISP stores push rules with instance 1's tag and organisation ids: the case's names
        (the tags exist once the case's event is added) looked up on this instance."""
        m = self.pair.member
        out = json.loads(json.dumps(rules))
        if any((rules.get("tags") or {}).values()):
            _, tags = m.request("GET", "/tags/index")
            ids = {t["name"]: str(t["id"]) for t in (tags.get("Tag") if isinstance(tags, dict) else tags)}
            for op, names in (rules.get("tags") or {}).items():
                out["tags"][op] = [ids.get(n, n) for n in names]
        for op, orgs in (rules.get("orgs") or {}).items():
            mapped = []
            for o in orgs:
                uuid = str(o).split()[-1]
                if len(uuid) == 36:
                    _, org = m.request("GET", f"/organisations/view/{uuid}")
                    mapped.append(str(org["Organisation"]["id"]))
                else:
                    mapped.append(str(o))
            out["orgs"][op] = mapped
        return out

    def restore(self):
        m = self.pair.member
        for name, value in self.settings_before.items():
            m.request("POST", f"/servers/serverSettingsEdit/{name}", {"value": "" if value is None else value, "force": 1},
                      expect=None)
        if self.server_before is not None:
            before = dict(self.server_before)
            for k in ("internal", "unpublish_event", "remove_missing_tags"):
                before[k] = bool(before[k])
            m.edit_server(self.pair.server_id, before)


class Rebuild:
    """One case rebuilt on the pair with fresh uuids; `back` maps them to the case's."""

    def __init__(self, pair, case, run):
        self.pair, self.case, self.run = pair, case, run
        push = case["direction"] == "push"
        self.origin, self.dest = (pair.member, pair.portal) if push else (pair.portal, pair.member)
        self.fresh = {}  # case uuid -> fresh uuid
        self.urls = {RECORDED_URL["instance1"]: pair.member.url, RECORDED_URL["instance2"]: pair.portal.url}

    def new(self, old):
        if old not in self.fresh:
            self.fresh[old] = str(uuidlib.uuid4())
        return self.fresh[old]

    def back(self, doc):
        text = json.dumps(doc)
        for old, new in self.fresh.items():
            text = text.replace(new, old)
        return json.loads(text)

    def group(self, sg):
        """Creates the element's sharing group on the origin as the recorder did (site admin,
        REST, rows as recorded: all_orgs kept by putting it on the Server record too); its id."""
        key = sg["uuid"]
        if key in self.groups:
            return self.groups[key]
        rows = []
        for row in sg.get("SharingGroupServer") or []:
            server = dict(row.get("Server") or {})
            server["url"] = self.urls.get(server.get("url"), server.get("url"))
            server["all_orgs"] = bool(row.get("all_orgs"))
            rows.append({"all_orgs": bool(row.get("all_orgs")), "Server": server})
        body = {"uuid": self.new(key), "name": f"{sg['name']} {self.run}", "releasability": sg.get("releasability", ""),
                "description": sg.get("description", ""), "roaming": bool(sg.get("roaming")), "active": True,
                "Organisation": {"uuid": self.origin.org_uuid, "name": self.origin.org_name},
                "SharingGroupOrg": [{"extend": bool(o.get("extend")), "Organisation": o["Organisation"]}
                                    for o in sg.get("SharingGroupOrg") or []],
                "SharingGroupServer": rows}
        _, answer = self.origin.request("POST", "/sharing_groups/add", {"SharingGroup": body})
        sg_id = (answer.get("SharingGroup") or answer)["id"]
        self.groups[key] = sg_id
        return sg_id

    def element(self, el):
        el = {k: v for k, v in el.items() if k not in ("id", "event_id", "object_id", "timestamp", "Galaxy",
                                                         "ShadowAttribute", "Sighting", "sharing_group_id")}
        if "uuid" in el:
            el["uuid"] = self.new(el["uuid"])
        sg = el.pop("SharingGroup", None)
        if str(el.get("distribution")) == "4" and isinstance(sg, dict):
            el["sharing_group_id"] = str(self.group(sg))
        if "Tag" in el:
            el["Tag"] = [{k: v for k, v in t.items() if k in ("name", "colour", "exportable", "local")}
                         for t in el["Tag"]]
        return el

    def create(self, origin_event=None):
        self.groups = {}
        e = self.element(copy.deepcopy(origin_event or self.case["origin_event"]))
        for k in ("Org", "attribute_count", "publish_timestamp", "locked", "proposal_email_lock", "protected",
                  "CryptographicKey", "RelatedEvent", "sighting_timestamp", "org_id", "orgc_id"):
            e.pop(k, None)
        self.marker = f"sgsync-conformance-{self.run}-{uuidlib.uuid4().hex[:8]}"
        e["info"] = f"{e.get('info', '')} [{self.marker}]"
        published = bool(e.pop("published", False))
        e["published"] = False
        e["Attribute"] = [self.element(a) for a in e.get("Attribute") or []]
        e["Object"] = [dict(self.element(o), Attribute=[self.element(a) for a in o.get("Attribute") or []])
                       for o in e.get("Object") or []]
        e["EventReport"] = [self.element(r) for r in e.get("EventReport") or []]
        _, answer = self.origin.request("POST", "/events/add", {"Event": e})
        self.origin_id = answer["Event"]["id"]
        self.uuid = e["uuid"]
        return published

    def publish(self, native):
        """Publishes on the origin. Natively, instance 1's publish pushes, and its answer is the
        push's: a failed push answers an error, which counts when the recording shows the same."""
        status, answer = self.origin.request("POST", f"/events/publish/{self.origin_id}", expect=None)
        if status == 200:
            return
        recorded = None
        for step in steps_of(self.case):
            for key, result in (step.get("result") or {}).items():
                if key.endswith("_publish"):
                    recorded = result.get("http_status")
        if not (native and status == recorded):
            raise RuntimeError(f"events/publish answered {status} {str(answer)[:300]} (recorded: {recorded})")

    def edit(self, step):
        """Replays one recorded edit of the origin through MISP's REST API, as the recorder did."""
        kind, text = action_kind(step["action"]), step["action"]
        o, final = self.origin, self.case["origin_event"]
        _, view = o.request("GET", f"/events/view/{self.uuid}/deleted[]:0/deleted[]:1")
        ev = view["Event"]
        held = by_uuid(ev)
        wanted = {self.new(u): a for u, a in by_uuid(final).items()}
        if kind == "attribute added":
            for u, a in wanted.items():
                if u not in held and "type" in a:
                    body = {k: a[k] for k in ("type", "category", "value", "to_ids", "distribution", "comment") if k in a}
                    body["uuid"] = u
                    o.request("POST", f"/attributes/add/{self.origin_id}", body)
        elif kind == "attribute hard-deleted":
            for u in held:
                if u not in wanted and "type" in held[u]:
                    o.request("POST", f"/attributes/delete/{u}/1")
        elif kind in ("attribute soft-deleted", "object attribute soft-deleted"):
            for u, a in wanted.items():
                if a.get("deleted") and u in held and not held[u].get("deleted"):
                    o.request("POST", f"/attributes/delete/{u}")
        elif kind == "attribute tag removed":
            for u, a in wanted.items():
                if u in held and "type" in a:
                    keep = {t["name"] for t in a.get("Tag") or []}
                    for t in held[u].get("Tag") or []:
                        if t["name"] not in keep:
                            o.request("POST", f"/attributes/removeTag/{held[u]['id']}/{t['id']}")
        elif kind == "event tag removed":
            keep = {t["name"] for t in final.get("Tag") or []}
            for t in ev.get("Tag") or []:
                if t["name"] not in keep:
                    o.request("POST", f"/events/removeTag/{self.origin_id}/{t['id']}")
        elif kind in ("event info edited", "event distribution"):
            body = {"info": f"{final.get('info', '')} [{self.marker}]", "distribution": str(final["distribution"]),
                    "timestamp": str(int(ev["timestamp"]) + 1)}
            if body["distribution"] == "4":
                body["sharing_group_id"] = ev["sharing_group_id"]
            o.request("POST", f"/events/edit/{self.uuid}", {"Event": body})
        elif kind == "attribute distribution":
            for u, a in wanted.items():
                if u in held and "type" in a and str(a.get("distribution")) != str(held[u].get("distribution")):
                    o.request("POST", f"/attributes/edit/{u}", {"Attribute": {"distribution": str(a["distribution"])}})
        elif kind == "removed from the event sharing group":
            org = re.search(r"origin: (\S+) removed", text).group(1)
            uuid = next(r["Organisation"]["uuid"] for r in ev["SharingGroup"]["SharingGroupOrg"]
                        if r["Organisation"]["name"] == org)
            o.request("POST", f"/sharing_groups/removeOrg/{ev['SharingGroup']['id']}/{uuid}")

    def arrived(self):
        got = self.dest.view(self.uuid, deleted=True)
        return None if got is None else self.back({"Event": got})

    def clean(self):
        for inst in (self.origin, self.dest):
            inst.request("POST", f"/events/delete/{self.uuid}", expect=None)


class SideCase:
    """A sighting or proposal case replayed on the pair, step by step (module docstring)."""

    def __init__(self, pair, case, rb):
        self.pair, self.case, self.rb = pair, case, rb
        orgc = (case["origin_event"].get("Orgc") or {}).get("uuid")
        # The event is made where its creator organisation is at home: ORG1 on instance 1.
        self.home = pair.portal if orgc == pair.portal.org_uuid else pair.member
        # Pull cases read what arrived on instance 1, push cases on instance 2.
        rb.origin = self.home
        rb.dest = pair.member if case["direction"] == "pull" else pair.portal
        self.sightings_left = list(case.get("origin_sightings") or [])
        proposals = case["arrived_event"] or case["origin_event"]
        self.event_proposals = list(proposals.get("ShadowAttribute") or [])
        self.attribute_proposals = [(a["uuid"], p) for a in proposals.get("Attribute") or []
                                    for p in a.get("ShadowAttribute") or []]

    def instance(self, text):
        return self.pair.member if text.startswith("instance 1") else self.pair.portal

    def event_id(self, inst):
        return inst.view(self.rb.uuid)["id"]

    def act(self, step):
        text = step["action"]
        inst = self.instance(text)
        if "publishSightings" in text:
            inst.request("POST", f"/events/publishSightings/{self.event_id(inst)}")
        elif "sighting" in text:
            want_type = "1" if "false positive" in text else "0"
            s = next((x for x in self.sightings_left if str(x["type"]) == want_type), None)
            if s is None:
                raise RuntimeError(f"no recorded sighting of type {want_type} left for: {text}")
            self.sightings_left.remove(s)
            _, made = inst.request("POST", f"/sightings/add/{self.rb.new(s['attribute_uuid'])}",
                                   {"type": s["type"], "source": s.get("source", ""), "timestamp": s["date_sighting"]})
            self.rb.fresh[s["uuid"]] = made["Sighting"]["uuid"]
        elif "shadow_attributes/add" in text:
            for prop in self.event_proposals:
                body = {k: prop[k] for k in ("type", "category", "value", "to_ids", "comment") if k in prop}
                _, made = inst.request("POST", f"/shadow_attributes/add/{self.event_id(inst)}", body)
                self.rb.fresh[prop["uuid"]] = (made.get("ShadowAttribute") or made)["uuid"]
        elif "shadow_attributes/edit" in text:
            for attribute_uuid, prop in self.attribute_proposals:
                held = {a["uuid"]: a for a in inst.view(self.rb.uuid)["Attribute"]}[self.rb.new(attribute_uuid)]
                body = {k: prop[k] for k in ("type", "category", "value", "to_ids", "comment") if k in prop}
                _, made = inst.request("POST", f"/shadow_attributes/edit/{held['id']}", body)
                self.rb.fresh[prop["uuid"]] = (made.get("ShadowAttribute") or made)["uuid"]
        else:
            raise RuntimeError(f"a step this harness does not replay: {text}")

    def sightings_arrived(self):
        key = self.pair.sync_key if self.rb.dest is self.pair.portal else None
        _, body = self.rb.dest.request("POST", "/sightings/restSearch/event",
                                       {"returnFormat": "json", "last": 0, "includeUuid": True, "uuid": [self.rb.uuid]},
                                       key=key)
        fresh_back = {v: k for k, v in self.rb.fresh.items()}
        return sorted(fresh_back.get(r["Sighting"]["uuid"], r["Sighting"]["uuid"]) for r in body.get("response", []))

    def proposals_arrived(self):
        _, rows = self.rb.dest.request("GET", "/shadow_attributes/index/all:1/timestamp:0/deleted[]:0/deleted[]:1.json")
        fresh_back = {v: k for k, v in self.rb.fresh.items()}
        return sorted((fresh_back.get(r["ShadowAttribute"]["uuid"], r["ShadowAttribute"]["uuid"]),
                       r["ShadowAttribute"]["value"]) for r in rows or []
                      if r["ShadowAttribute"].get("event_uuid") == self.rb.uuid)

    def differences(self):
        """What differs from the recording besides the event: sightings by uuid, proposals by value."""
        out = []
        if "arrived_sightings" in self.case:
            want = sorted(s["uuid"] for s in self.case["arrived_sightings"] or [])
            have = self.sightings_arrived()
            if want != have:
                out.append(f"sightings: real MISP delivered {want}, this run {have}")
        if self.event_proposals or self.attribute_proposals:
            want = sorted((p["uuid"], p["value"]) for p in self.event_proposals + [p for _, p in self.attribute_proposals])
            have = self.proposals_arrived()
            if want != have:
                out.append(f"proposals: real MISP delivered {want}, this run {have}")
        return out


def replay_side_case(pair, case, rb, mode, sgsyncd, work, n, since):
    """One sighting or proposal case in `mode`; (ok, differences)."""
    side = SideCase(pair, case, rb)
    rb.create()
    steps = steps_of(case)
    for i, step in enumerate(steps):
        if "action" in step:
            time.sleep(1.1)  # MISP's timestamps are whole seconds, as the recorder's steps were apart
            side.act(step)
            last = i == len(steps) - 1
            if last and mode == "sgsync" and "publishSightings" in step["action"]:
                # Natively, publishing sightings pushes them at once (push_sightings on, no background
                # jobs); sgsync's sightings channel takes them on its next run.
                run_sgsync(pair, case, rb, sgsyncd, work, n, since, side_channels=True, check=True)
            continue
        sync = step["sync"]
        if sync.startswith("publish"):
            rb.origin = side.home
            rb.publish(native=mode == "native")
        if mode == "sgsync":
            run_sgsync(pair, case, rb, sgsyncd, work, n, since, side_channels=True, check=True)
        else:
            run_native(pair, case, rb, sync)
    diffs = []
    ok, diff = compare(case["arrived_event"], rb.arrived(), work)
    if not ok:
        diffs.append(diff)
    diffs += side.differences()
    return not diffs, "\n".join(diffs)


def compare(expected, got, work):
    a, b = os.path.join(work, "expected.json"), os.path.join(work, "got.json")
    with open(a, "w") as f:
        json.dump({"Event": expected} if expected is not None else None, f)
    with open(b, "w") as f:
        json.dump(got, f)
    r = subprocess.run([sys.executable, os.path.join(CONF, "compare.py"), a, b], capture_output=True, text=True)
    return r.returncode == 0, r.stdout.strip()


def run_sgsync(pair, case, rb, sgsyncd, work, n, since, side_channels=False, check=False):
    p = pair
    local = {"url": p.member.url, "api_key_file": harness.write_key(work, "member.key", p.member.key),
             "org_uuid": p.member.org_uuid, "org_name": p.member.org_name}
    remote = {"url": p.portal.url, "api_key_file": harness.write_key(work, "portal.key", p.sync_key),
              "org_uuid": p.portal.org_uuid, "org_name": p.portal.org_name}
    for e in (local, remote):
        if e["url"].startswith("http://"):
            e["insecure_http"] = True
    settings = link_settings(case, case2link)
    settings.update(initial_sync_since=since, sightings=side_channels, proposals=side_channels,
                    galaxy_clusters=False, analyst_data=False)
    if side_channels:
        # The event crosses one way and its sightings or proposals may come back the other.
        settings["directions"] = ["push", "pull"]
    db = os.path.join(work, f"case{n}.db")
    path = os.path.join(work, f"case{n}.toml")
    with open(path, "w") as f:
        f.write(harness.daemon_toml(db, [harness.link_toml("conformance", local, remote, **settings)]))
    d = harness.Sgsyncd(sgsyncd, path, harness.admin_socket_for(db))
    # A side-channel case syncs in whichever direction its step names: both run, as sgsyncd would.
    rc, stats, err = d.once(None if side_channels else case["direction"])
    if check and rc != 0:
        raise RuntimeError(f"sgsyncd --once exited {rc}: {err[-1500:]}")
    return rc, err


def run_native(pair, case, rb, sync):
    if sync == "publish":
        return  # the publish itself pushed (server record push on, no background jobs)
    if sync == "push_full":
        pair.member.request("POST", f"/servers/push/{pair.server_id}/full")
        return
    # A pull as recorded (full, or update), narrowed to the case's event: the server record's pull
    # rules get url_params {"eventinfo": marker} beside the case's own rules, so the pair's other
    # events are neither listed nor pulled (MISP merges url_params into the index filter, spec 6.2).
    rules = dict(case["link"].get("pull_rules") or {})
    rules["url_params"] = json.dumps({"eventinfo": rb.marker})
    pair.member.edit_server(pair.server_id, {"pull_rules": json.dumps(rules)})
    technique = "update" if sync.endswith("pull_update") else "full"
    pair.member.request("POST", f"/servers/pull/{pair.server_id}/{technique}")


def main():
    args = sys.argv[1:]
    pair_path, sgsyncd = args[0], args[1]
    modes = ["sgsync", "native"]
    if "--native-only" in args:
        modes = ["native"]
    if "--sgsync-only" in args:
        modes = ["sgsync"]
    only = {a for a in args[2:] if not a.startswith("--")}
    pair = Pair(pair_path)
    names = sorted(n for n in os.listdir(os.path.join(CONF, "cases")) if n.endswith(".json"))
    cases = [json.load(open(os.path.join(CONF, "cases", n))) for n in names]
    if only:
        cases = [c for c in cases if c["id"] in only]
    results = {}  # id -> {mode: (ok, diff)} or "not run: why"
    native_before = pair.quiet_native_sync()
    started = time.time()
    try:
        with tempfile.TemporaryDirectory() as work:
            for mode in modes:
                if mode == "native":
                    pair.member.edit_server(pair.server_id, {"push": True, "pull": True, "push_sightings": False})
                else:
                    pair.member.edit_server(pair.server_id, {"push": False, "pull": False, "push_sightings": False})
                for n, case in enumerate(cases):
                    why = why_not_rebuilt(case)
                    if why == "a sighting or proposal step":
                        rb = Rebuild(pair, case, pair.run)
                        conf = Configure(pair, case, mode == "native")
                        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
                        try:
                            conf.apply()
                            if mode == "native":  # as recorded: the server record pushes sightings
                                pair.member.edit_server(pair.server_id, {"push_sightings": True})
                            results.setdefault(case["id"], {})[mode] = replay_side_case(
                                pair, case, rb, mode, sgsyncd, work, n, since)
                        except Exception as e:  # noqa: BLE001 - reported with the case, not hidden
                            where = traceback.extract_tb(e.__traceback__)[-1]
                            results.setdefault(case["id"], {})[mode] = (
                                False, f"rebuild failed ({mode}, line {where.lineno}: {where.line}): {e!r}")
                        finally:
                            if mode == "native":
                                pair.member.edit_server(pair.server_id, {"push_sightings": False})
                            if hasattr(rb, "uuid"):  # the event and its copy, wherever they are
                                for inst in (pair.member, pair.portal):
                                    inst.request("POST", f"/events/delete/{rb.uuid}", expect=None)
                            conf.restore()
                        continue
                    if why:
                        results[case["id"]] = f"not run: {why}"
                        continue
                    rb = Rebuild(pair, case, pair.run)
                    conf = Configure(pair, case, mode == "native")
                    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
                    try:
                        edits = any("action" in st for st in steps_of(case))
                        rb.create(first_version(case) if edits else None)
                        conf.apply()
                        syncs_done = 0
                        for step in steps_of(case):
                            if "action" in step:
                                # A second apart, as the recorder's steps were: MISP compares
                                # timestamps in whole seconds, and an edit in the second of the
                                # first sync would not be newer than the copy it made.
                                time.sleep(1.1)
                                rb.edit(step)
                                continue
                            sync = step["sync"]
                            if sync.startswith("publish"):
                                rb.publish(native=mode == "native")
                            if mode == "sgsync":
                                rc, err = run_sgsync(pair, case, rb, sgsyncd, work, n, since)
                                if rc != 0:
                                    raise RuntimeError(f"sgsyncd --once exited {rc}: {err[-1500:]}")
                            else:
                                run_native(pair, case, rb, sync)
                            syncs_done += 1
                            if case.get("first_arrived_event") and syncs_done == 1:
                                ok, diff = compare(case["first_arrived_event"], rb.arrived(), work)
                                if not ok:
                                    raise RuntimeError("after the first sync: " + diff)
                        ok, diff = compare(case["arrived_event"], rb.arrived(), work)
                        results.setdefault(case["id"], {})[mode] = (ok, diff)
                    except Exception as e:  # noqa: BLE001 - a case that cannot be rebuilt is reported, not hidden
                        results.setdefault(case["id"], {})[mode] = (False, f"rebuild failed: {e}")
                    finally:
                        rb.clean()
                        conf.restore()
    finally:
        pair.restore_native_sync(native_before)
    tally = {"passed": [], "failed": [], "not reproducible natively": [], "not run": []}
    for case in cases:
        r = results.get(case["id"])
        if isinstance(r, str):
            tally["not run"].append((case["id"], r[len("not run: "):]))
            continue
        native = r.get("native", (True, "")) if "native" in modes else (True, "")
        mine = r.get("sgsync", (True, "")) if "sgsync" in modes else (True, "")
        if not native[0]:
            tally["not reproducible natively"].append((case["id"], native[1]))
        elif mine[0]:
            tally["passed"].append((case["id"], ""))
        else:
            tally["failed"].append((case["id"], mine[1]))
    for what in ("failed", "not reproducible natively"):
        for case_id, diff in tally[what]:
            print(f"{what.upper()} {case_id}:\n  " + diff.replace("\n", "\n  "))
    reasons = {}
    for _, why in tally["not run"]:
        reasons[why] = reasons.get(why, 0) + 1
    print("not run: " + (", ".join(f"{n} ({why})" for why, n in sorted(reasons.items())) or "none"))
    v = pair.version(pair.member)
    print(f"real-MISP conformance on MISP {v.get('version')} ({', '.join(modes)}): "
          f"{len(tally['passed'])} passed, {len(tally['failed'])} failed, "
          f"{len(tally['not reproducible natively'])} not reproducible natively, {len(tally['not run'])} not run; "
          f"{time.time() - started:.0f} s")
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
