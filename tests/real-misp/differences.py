#!/usr/bin/env python3
"""Where real MISP answered differently from misp-sim, kept as a fixture and checked against misp-sim.

Each scenario below is a short sequence of MISP API calls on a pair (instance 1, the member's MISP;
instance 2, the Portal, where sgsync logs in as ORG1's sync user) and what MISP's answers showed,
reduced to the facts that mattered (a status, a count, whether a timestamp moved). Each was found on
the real pair, and misp-sim was changed to answer alike, with its source in MISP's code
(docs/misp-sim.md).

    differences.py record PAIR.json OUT.json       run every scenario on a real pair, write the fixture
    differences.py pair PAIR.json FIXTURE          run them on a real pair, compare with the fixture
    differences.py check MISP_SIM SGSYNCD FIXTURE  run them on two misp-sim, compare with the fixture

`check` runs in tests/run (e2e.real_misp_differences, against tests/data/real-misp/differences.json):
a scenario whose misp-sim answer differs from the recorded one fails, naming the facts that differ.
`pair` is part of tests/real-misp/run: against a newer MISP it says where MISP's answers changed
(then record the fixture again and mend misp-sim until `check` passes)."""
import json
import os
import sys
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))


class Side:
    """One instance, however it is reached: request() answers (status, parsed body)."""

    def __init__(self, call, admin_key, org_uuid):
        self.call, self.admin_key, self.org_uuid = call, admin_key, org_uuid

    def request(self, method, path, body=None, key=None):
        return self.call(method, path, body, key or self.admin_key)

    def must(self, method, path, body=None, key=None):
        status, parsed = self.request(method, path, body, key)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {str(parsed)[:300]}")
        return parsed


def new_event(side, info, key=None):
    """A published event of distribution 3 with one attribute, added by `key`'s user; (event, attribute uuid)."""
    now = int(time.time())
    attribute = str(uuidlib.uuid4())
    ev = {"uuid": str(uuidlib.uuid4()), "info": info, "distribution": "3", "analysis": "0", "threat_level_id": "2",
          "date": time.strftime("%Y-%m-%d"), "published": False, "timestamp": str(now),
          "Attribute": [{"uuid": attribute, "type": "ip-dst", "category": "Network activity",
                         "value": f"198.51.100.{now % 200 + 1}", "distribution": "5", "timestamp": str(now)}]}
    saved = side.must("POST", "/events/add", {"Event": ev}, key)["Event"]
    side.must("POST", f"/events/publish/{saved['id']}", None, key)
    return saved, attribute


def index_row(side, uuid):
    rows = side.must("POST", "/events/index", {"minimal": 1})
    return next(r for r in rows if r["uuid"] == uuid)


def sighting_timestamp(member, portal, sync_key):
    """An event's sighting_timestamp (what MISP's sightings sync selects by) does not move with
    sightings/add; events/publishSightings moves it."""
    saved, attribute = new_event(member, "differences: sighting_timestamp")
    before = int(index_row(member, saved["uuid"])["sighting_timestamp"] or 0)
    time.sleep(1.1)
    member.must("POST", f"/sightings/add/{attribute}", {"type": "0", "source": "differences"})
    after_add = int(index_row(member, saved["uuid"])["sighting_timestamp"] or 0)
    member.must("POST", f"/events/publishSightings/{saved['id']}")
    after_publish = int(index_row(member, saved["uuid"])["sighting_timestamp"] or 0)
    member.request("POST", f"/events/delete/{saved['uuid']}")
    return {"moved_by_sightings_add": after_add != before, "moved_by_publish_sightings": after_publish > after_add}


def sightings_search_acl(member, portal, sync_key):
    """Under sighting policy 0 on the Portal, ORG1's sighting on an ORG1 event there: sightings/restSearch
    shows it to ORG1's user and not to the Portal's site admin (Sighting::filterSightingsByAttributeACL
    gives no site-admin exemption), while events/view shows it to the site admin (createConditions)."""
    saved, attribute = new_event(portal, "differences: sightings ACL", key=sync_key)
    portal.must("POST", f"/sightings/add/{attribute}", {"type": "0", "source": "differences"}, sync_key)
    search = {"returnFormat": "json", "last": 0, "includeUuid": True, "uuid": [saved["uuid"]]}

    def found(key):
        return len(portal.must("POST", "/sightings/restSearch/event", search, key).get("response", []))
    view = portal.must("GET", f"/events/view/{saved['uuid']}")["Event"]
    embedded = sum(len(a.get("Sighting") or []) for a in view.get("Attribute") or [])
    out = {"restsearch_as_owner": found(sync_key), "restsearch_as_site_admin": found(None),
           "view_as_site_admin": embedded}
    portal.request("POST", f"/events/delete/{saved['uuid']}")
    return out


def push_proposals_required_columns(member, portal, sync_key):
    """events/pushProposals saves each row as sent (EventsController::pushProposals): a row without one
    of the columns MISP's schema makes NOT NULL without a default (org_id, event_org_id, comment, ...)
    fails its INSERT and MISP answers 500; a complete row, 200."""
    saved, attribute = new_event(portal, "differences: pushProposals", key=sync_key)
    now = int(time.time())

    def push(leave_out):
        # Bare rows, as MISP's own push and sgsync send them; ids are the receiver's (the sync
        # user's organisation owns the event here).
        r = {"uuid": str(uuidlib.uuid4()), "event_uuid": saved["uuid"], "type": "domain",
             "category": "Network activity", "value": f"proposal-{uuidlib.uuid4().hex[:8]}.example", "to_ids": True,
             "comment": "differences", "timestamp": str(now), "deleted": False, "proposal_to_delete": False,
             "old_id": "0", "org_id": saved["orgc_id"], "event_org_id": saved["orgc_id"],
             "email": "sync@org1.test", "first_seen": None, "last_seen": None}
        r.pop(leave_out, None)
        status, _ = portal.request("POST", f"/events/pushProposals/{saved['uuid']}", [r], sync_key)
        return status
    out = {"complete_row": push(None), "without_event_org_id": push("event_org_id"), "without_org_id": push("org_id")}
    portal.request("POST", f"/events/delete/{saved['uuid']}")
    return out


def restsearch_local_tags(member, portal, sync_key):
    """events/restSearch leaves local tags out for a sync user unless excludeLocalTags says otherwise,
    and keeps them for a site admin unless it says 1 (Event::fetchEvent); sgsync's bulk fetch says it.
    Counted: the local tags of the event and its attribute in each answer (two are there)."""
    now = int(time.time())
    ev = {"uuid": str(uuidlib.uuid4()), "info": "differences: restSearch local tags", "distribution": "3",
          "analysis": "0", "threat_level_id": "2", "date": time.strftime("%Y-%m-%d"), "published": False,
          "timestamp": str(now),
          "Tag": [{"name": "differences:global"}, {"name": "differences:local", "local": 1}],
          "Attribute": [{"uuid": str(uuidlib.uuid4()), "type": "ip-dst", "category": "Network activity",
                         "value": f"198.51.100.{now % 200 + 1}", "distribution": "5", "timestamp": str(now),
                         "Tag": [{"name": "differences:attribute-local", "local": 1}]}]}
    saved = portal.must("POST", "/events/add", {"Event": ev})["Event"]

    def local_tags(key, extra):
        body = dict({"returnFormat": "json", "uuid": saved["uuid"], "deleted": [0, 1]}, **extra)
        found = portal.must("POST", "/events/restSearch", body, key)["response"][0]["Event"]
        tags = list(found.get("Tag") or []) + [t for a in found.get("Attribute") or [] for t in a.get("Tag") or []]
        return sum(1 for t in tags if t.get("local") in (True, 1, "1"))
    out = {"sync_user": local_tags(sync_key, {}),
           "sync_user_exclude_0": local_tags(sync_key, {"excludeLocalTags": 0}),
           "sync_user_exclude_false": local_tags(sync_key, {"excludeLocalTags": False}),
           "sync_user_exclude_1": local_tags(sync_key, {"excludeLocalTags": 1}),
           "site_admin": local_tags(None, {}),
           "site_admin_exclude_1": local_tags(None, {"excludeLocalTags": 1})}
    portal.request("POST", f"/events/delete/{saved['uuid']}")
    return out


SCENARIOS = [sighting_timestamp, sightings_search_acl, push_proposals_required_columns, restsearch_local_tags]


def run_all(member, portal, sync_key):
    return {s.__name__: s(member, portal, sync_key) for s in SCENARIOS}


def pair_sides(pair_path):
    from pair import Pair  # noqa: E402 (tests/real-misp/pair.py)
    pair = Pair(pair_path)

    def side(inst):
        def call(method, path, body, key):
            return inst.request(method, path, body, key=key, expect=None)
        return Side(call, inst.key, inst.org_uuid)
    return pair, side(pair.member), side(pair.portal)


def record(pair_path, out):
    pair, member, portal = pair_sides(pair_path)
    version = pair.version(pair.member).get("version")
    observed = run_all(member, portal, pair.sync_key)
    doc = {"what": "real MISP's answers where misp-sim once differed (tests/real-misp/differences.py)",
           "misp_version": version, "recorded": time.strftime("%Y-%m-%d"),
           "scenarios": {s.__name__: {"doc": " ".join(s.__doc__.split()), "real": observed[s.__name__]}
                         for s in SCENARIOS}}
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(json.dumps(observed, indent=2))


def compare(observed, fixture, who):
    with open(fixture) as f:
        recorded = json.load(f)["scenarios"]
    failures = [f"{name}: recorded from real MISP {want['real']}, {who} {observed.get(name)}"
                for name, want in recorded.items() if observed.get(name) != want["real"]]
    for f in failures:
        print("DIFFERS " + f)
    print(f"{len(recorded) - len(failures)} of {len(recorded)} recorded answers given alike by {who}")
    return 1 if failures else 0


def check_pair(pair_path, fixture):
    pair, member, portal = pair_sides(pair_path)
    return compare(run_all(member, portal, pair.sync_key), fixture,
                   f"this MISP {pair.version(pair.member).get('version')}")


def check(misp_sim, sgsyncd, fixture):
    import harness  # noqa: E402
    with harness.two_sims_in_temp_dir(misp_sim, sgsyncd) as (sims, _):
        def side(sim):
            def call(method, path, body, key):
                status, _, parsed = sim.request(method, path, body, key=key)
                return status, parsed
            return Side(call, sim.admin_key, sim.org[1])
        observed = run_all(side(sims.member), side(sims.portal), sims.sync_key)
    return compare(observed, fixture, "misp-sim")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "pair":
        sys.exit(check_pair(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "check":
        sys.exit(check(*sys.argv[2:]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
