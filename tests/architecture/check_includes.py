#!/usr/bin/env python3
"""The house's rule applied to every #include: a folder includes only its own headers and those of
lower layers (cmake/layers.cmake holds the layer of each library; CMake checks the links, this
checks the includes, which a header-only use would otherwise carry up the house unseen).

Usage: check_includes.py SOURCE_DIR. Prints every arrow that runs up and exits 1 when there is one.
       check_includes.py --self-test SOURCE_DIR: proves the check fails on a tree with one upward
       arrow (the model including the policy) and passes on the same tree without it.
"""
import pathlib
import re
import sys

# Folder -> the library (or program) its code belongs to. Tests and benchmarks sit above all.
FOLDERS = {
    "common": "sgsync_common",
    "proto": "sgsync_proto",
    "sgsync/admin/v1": "sgsync_proto",  # generated headers, included by this path
    "misp": "sgsync_misp",
    "sqlite": "sgsync_sqlite",
    "httpd": "sgsync_httpd",
    "sync/policy": "sgsync_policy",
    "state": "sgsync_state",
    "portal-connector": "sgsync_connector",
    "misp-sim": "sgsync_mispsim",
    "config": "sgsync_config",
    "sync/engine": "sgsync_engine",
    "onboarding": "sgsync_onboarding",
    "daemon": "sgsync_daemon",
    "cli": "sgsyncctl",
}
PROGRAM_LAYER = {"sgsyncctl": 7}

# Includes refused whatever the layers say: misp-sim is the other side of the tests, so it must not
# reuse sgsync's model of the receiving MISP (issue 18); its capture is its own (misp-sim/capture.cc).
FORBIDDEN = {
    ("misp-sim", "sync/policy/receiver.h"):
        "misp-sim must not reuse sgsync's receiver model; misp-sim/capture.cc is written from MISP's source",
}


def layers(source_dir):
    text = (source_dir / "cmake" / "layers.cmake").read_text()
    table = dict(re.findall(r"^\s+(sgsync_\w+)=(\d+)\s*$", text, re.M))
    result = {lib: int(n) for lib, n in table.items()}
    result.update(PROGRAM_LAYER)
    return result


def owner(path):
    """The folder of FOLDERS that holds `path` (longest match), or None."""
    best = None
    for folder in FOLDERS:
        if path == folder or path.startswith(folder + "/"):
            if best is None or len(folder) > len(best):
                best = folder
    return best


def self_test(source_dir):
    import shutil
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "cmake").mkdir()
        shutil.copy(source_dir / "cmake" / "layers.cmake", root / "cmake")
        (root / "misp").mkdir()
        (root / "sync" / "policy").mkdir(parents=True)
        (root / "sync" / "policy" / "policy.h").write_text('#include "misp/event.h"\n')
        model = root / "misp" / "event.h"
        model.write_text('#include "common/result.h"\n')
        (root / "common").mkdir()
        (root / "common" / "result.h").write_text("")
        if check(root) != 0:
            print("self-test: a clean tree was refused")
            return 1
        model.write_text('#include "sync/policy/policy.h"\n')
        if check(root) != 1:
            print("self-test: the model including the policy was not caught")
            return 1
        model.write_text('#include "common/result.h"\n')
        (root / "misp-sim").mkdir()
        (root / "sync" / "policy" / "receiver.h").write_text("")
        (root / "misp-sim" / "events.cc").write_text('#include "sync/policy/receiver.h"\n')
        if check(root) != 1:
            print("self-test: misp-sim including the receiver model was not caught")
            return 1
    print("self-test: passed")
    return 0


def main():
    if sys.argv[1] == "--self-test":
        return self_test(pathlib.Path(sys.argv[2]).resolve())
    return check(pathlib.Path(sys.argv[1]).resolve())


def check(source_dir):
    layer = layers(source_dir)
    missing = sorted({lib for lib in FOLDERS.values() if lib not in layer})
    if missing:
        print("no layer in cmake/layers.cmake for: " + ", ".join(missing))
        return 1
    problems = []
    checked = 0
    for folder in FOLDERS:
        base = source_dir / folder
        if not base.is_dir():
            continue
        for f in sorted(base.rglob("*")):
            if f.suffix not in (".h", ".cc") or not f.is_file():
                continue
            rel = f.relative_to(source_dir).as_posix()
            here = owner(rel)
            if here != folder:
                continue  # a subfolder with its own entry
            for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                checked += 1
                target = owner(m.group(1))
                if target is None:
                    problems.append(f"{rel}:{n}: includes {m.group(1)}, which no folder of the house holds")
                    continue
                if (folder, m.group(1)) in FORBIDDEN:
                    problems.append(f"{rel}:{n}: includes {m.group(1)}: {FORBIDDEN[(folder, m.group(1))]}")
                    continue
                if target == here:
                    continue
                a, b = FOLDERS[here], FOLDERS[target]
                if a == b:
                    continue
                if layer[b] >= layer[a]:
                    problems.append(
                        f"{rel}:{n}: {folder} ({a}, layer {layer[a]}) includes {m.group(1)} "
                        f"({b}, layer {layer[b]}): a folder includes only lower layers")
    for p in problems:
        print(p)
    print(f"{checked} includes checked, {len(problems)} running up the house")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
