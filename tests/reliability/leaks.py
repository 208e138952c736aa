"""What must never reach the Portal, planted at the member and looked for at the Portal (issue #22,
"leaks end to end"): an attribute at distribution 0, a local tag (its attribute may go, without
it), an attribute with a blocked tag (tlp:red, the default push block list), an attribute of a
sharing group the Portal's organisation is not in."""
import copy
import hashlib

import harness

BLOCKED = "tlp:red"
SECRET_SG = "7a1e9c3b-5d2f-4e8a-9b6c-0f1e2d3c4b5a"


def _uuid(seed, n):
    return harness.uuid_from(seed, n)


def plant(member, template_uuid, count, seed):
    """Loads `count` events into the member's MISP, each shareable (distribution 3) with one of
    every kind of element that must stay home; returns their uuids."""
    base = member.view(template_uuid)["Event"]
    uuids = []
    for n in range(count):
        ev = copy.deepcopy(base)
        ev["uuid"] = _uuid(f"leak-{seed}", n)
        ev["id"] = str(900000 + seed * 1000 + n)
        ev["info"] = f"leak bait {n}"
        for i, a in enumerate(ev.get("Attribute", [])):
            a["uuid"] = _uuid(f"leak-{seed}-{n}-a", i)
            a["id"] = str(9000000 + seed * 100000 + n * 100 + i)
        kept = ev.get("Attribute", [])[0]
        bait = []
        for i, kind in enumerate(("dist0", "local_tag", "blocked_tag", "sharing_group")):
            a = copy.deepcopy(kept)
            a["uuid"] = _uuid(f"leak-{seed}-{n}-bait", i)
            a["id"] = str(9500000 + seed * 100000 + n * 100 + i)
            a["value"] = f"198.51.100.{n % 200}"
            a["comment"] = "bait " + kind
            if kind == "dist0":
                a["distribution"] = "0"
            elif kind == "local_tag":
                a["Tag"] = [{"id": "90", "name": "internal:only-here", "colour": "#000000", "exportable": True,
                             "local": True, "hide_tag": False}]
            elif kind == "blocked_tag":
                a["Tag"] = [{"id": "91", "name": BLOCKED, "colour": "#CC0033", "exportable": True, "local": False,
                             "hide_tag": False}]
            else:
                a["distribution"] = "4"
                a["sharing_group_id"] = "9"
                a["SharingGroup"] = {"id": "9", "uuid": SECRET_SG, "name": "ORG1 and ORG3 only", "roaming": False,
                                     "SharingGroupOrg": [{"org_id": "1", "extend": False, "Organisation": {"uuid": harness.ORG1[1], "name": "ORG1"}},
                                                         {"org_id": "3", "extend": False, "Organisation": {"uuid": harness.ORG3[1], "name": "ORG3"}}],
                                     "SharingGroupServer": [{"server_id": "0", "all_orgs": False,
                                                             "Server": {"id": "0", "url": harness.INSTANCE1_URL, "name": "self"}}]}
            bait.append(a)
        ev["Attribute"] = ev.get("Attribute", []) + bait
        ev["timestamp"] = str(int(ev["timestamp"]) + 1)
        member.control("POST", "load", {"Event": ev})
        uuids.append(ev["uuid"])
    return uuids


def scan(portal, uuids):
    """Everything of the planted kinds found at the Portal, as text; [] when nothing leaked."""
    found = []
    for uuid in uuids:
        view = portal.view(uuid)
        if view is None:
            continue
        ev = view["Event"]
        elements = list(ev.get("Attribute", []))
        for o in ev.get("Object", []):
            elements += [o] + list(o.get("Attribute", []))
        for el in [ev] + elements:
            where = f"{uuid} {el.get('uuid', '')}"
            if str(el.get("distribution")) == "0":
                found.append(f"{where}: distribution 0")
            if (el.get("SharingGroup") or {}).get("uuid") == SECRET_SG:
                found.append(f"{where}: sharing group the Portal is outside of")
            for t in el.get("Tag", []) + [at.get("Tag", {}) for at in el.get("AttributeTag", []) or []]:
                if t.get("local") in (True, 1, "1") or t.get("name") == "internal:only-here":
                    found.append(f"{where}: local tag {t.get('name')}")
                if t.get("name") == BLOCKED:
                    found.append(f"{where}: blocked tag {BLOCKED}")
            # The element with a local tag may go, without its tag; the other baits may not go at all.
            if str(el.get("comment", "")) in ("bait dist0", "bait blocked_tag", "bait sharing_group"):
                found.append(f"{where}: a bait element ({el.get('comment')})")
    return found
