#!/usr/bin/env python3
"""deploy/prometheus/sgsync-alerts.yml names only metrics sgsyncd exposes (common/metric_families.h),
and only labels those families carry: an alert on a metric that does not exist never fires.

Usage: check_alert_rules.py SOURCE_DIR
       check_alert_rules.py --self-test SOURCE_DIR: proves the check fails on a rule naming a metric
       that does not exist and on a label a family does not carry.
"""
import pathlib
import re
import sys


def self_test(source):
    import shutil
    import tempfile
    for bad in ("sgsync_no_such_metric > 0", 'sgsync_queue_depth{colour="red"} > 0'):
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            (root / "common").mkdir()
            shutil.copy(source / "common" / "metric_families.h", root / "common")
            (root / "deploy" / "prometheus").mkdir(parents=True)
            (root / "deploy" / "prometheus" / "sgsync-alerts.yml").write_text(f"      - alert: X\n        expr: {bad}\n")
            if check(root) != 1:
                print(f"self-test: {bad} was not caught")
                return 1
    print("self-test: passed")
    return 0


def main():
    if sys.argv[1] == "--self-test":
        return self_test(pathlib.Path(sys.argv[2]))
    return check(pathlib.Path(sys.argv[1]))


def check(root):
    table = (root / "common" / "metric_families.h").read_text()
    families = dict(re.findall(r'"(sgsync_[a-z_]+)",\s*T::k\w+,\s*(?:"(?:[^"\\]|\\.)*"\s*)+,\s*"([a-z ]+)"', table))
    rules = (root / "deploy" / "prometheus" / "sgsync-alerts.yml").read_text()
    problems = []
    exprs = re.findall(r"^\s*expr:\s*(.+)$", rules, re.M)
    if not exprs:
        problems.append("no expr in the rules file")
    for expr in exprs:
        for name, labels in re.findall(r"(sgsync_[a-z_]+)(\{[^}]*\})?", expr):
            if name not in families:
                problems.append(f"{name} is not a metric of sgsyncd ({expr})")
                continue
            for label in re.findall(r"(\w+)\s*=", labels or ""):
                if label not in families[name].split():
                    problems.append(f"{name} has no label {label} ({expr})")
    for p in problems:
        print(p)
    print(f"{len(exprs)} alert expressions checked against {len(families)} metric families, {len(problems)} problems")
    return 1 if problems or not families else 0


if __name__ == "__main__":
    sys.exit(main())
