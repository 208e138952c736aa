#!/usr/bin/env python3
"""Prints what a pair is, before the suite runs on it: each instance's URL, MISP version and
organisation, and the sync account's organisation on the Portal."""
import sys

from pair import Pair

p = Pair(sys.argv[1])
for name, inst in (("instance 1 (member)", p.member), ("instance 2 (Portal)", p.portal)):
    v = p.version(inst)
    print(f"{name}: {inst.url}, MISP {v.get('version')}, {inst.org_name} ({inst.org_uuid})")
_, me = p.portal.request("GET", "/users/view/me.json", key=p.sync_key)
org = me.get("Organisation", {}).get("name", "?")
print(f"sgsync's Portal account: {me.get('User', {}).get('email', '?')} of {org}; suite run {p.run}")
