#!/usr/bin/env python3
"""Runs every single-sync conformance case through `sgsyncctl evaluate` the way
tests/data/conformance/README.md says: case2link.py -> sgsyncctl evaluate -> compare.py against the
case's arrived_event. Prints each failing case with its differences; exits 1 when any fails.

usage: evaluate_cases.py SGSYNCCTL DATA_DIR (tests/data)"""
import json
import os
import subprocess
import sys
import tempfile


def single_sync(case):
    syncs = [s for s in case["steps"] if "sync" in s]
    return len(syncs) == 1 and case.get("first_arrived_event") is None


def main():
    sgsyncctl, data = sys.argv[1], sys.argv[2]
    conf = os.path.join(data, "conformance")
    cases_dir = os.path.join(conf, "cases")
    names = sorted(n for n in os.listdir(cases_dir) if n.endswith(".json"))
    if not names:
        print(f"no conformance cases under {cases_dir}")
        return 1
    passed, failed, multi = 0, [], 0
    for name in names:
        path = os.path.join(cases_dir, name)
        case = json.load(open(path))
        if not single_sync(case):
            multi += 1  # edits and two-step cases need a merging receiver: run end to end (sgsyncd)
            continue
        with tempfile.TemporaryDirectory() as d:
            direction = subprocess.run([sys.executable, os.path.join(conf, "case2link.py"), path, d],
                                       check=True, capture_output=True, text=True).stdout.strip()
            run = subprocess.run([sgsyncctl, "evaluate", "--direction", direction, "--link",
                                  os.path.join(d, "link.json"), "--event", os.path.join(d, "event.json")],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                failed.append((case["id"], f"evaluate exited {run.returncode}: {run.stderr.strip()}"))
                continue
            arrival = json.loads(run.stdout)["arrival"]
            expected = {"Event": case["arrived_event"]} if case["arrived_event"] is not None else None
            json.dump(arrival, open(os.path.join(d, "got.json"), "w"))
            json.dump(expected, open(os.path.join(d, "expected.json"), "w"))
            cmp = subprocess.run([sys.executable, os.path.join(conf, "compare.py"), os.path.join(d, "expected.json"),
                                  os.path.join(d, "got.json")], capture_output=True, text=True)
            if cmp.returncode != 0:
                failed.append((case["id"], cmp.stdout.strip()))
            else:
                passed += 1
    for case_id, why in failed:
        print(f"FAIL {case_id}:\n  " + why.replace("\n", "\n  "))
    print(f"conformance: {passed} single-sync cases match real MISP 2.5.1, {len(failed)} differ; "
          f"{multi} multi-step cases are left to the end-to-end runs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
