#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target from the test data the project carries
(tests/data/SOURCES.md): MISP events and API answers recorded from real MISP 2.5.1, the example
configuration, and the rules of the recorded conformance cases. Usage: seeds.py OUT_DIR"""
import glob
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "data", "fixtures", "misp")


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def small_json_files():
    for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.json"), recursive=True)):
        if os.path.getsize(path) <= 256 * 1024:
            yield path


def http_answers():
    """Raw HTTP responses rebuilt from the recorded API captures (status, headers, body)."""
    for path in sorted(glob.glob(os.path.join(FIXTURES, "real-2.5.1", "api", "*.json"))):
        with open(path) as f:
            capture = json.load(f)
        response = capture.get("response") if isinstance(capture, dict) else None
        if not isinstance(response, dict) or "status" not in response:
            continue
        body = response.get("body")
        body = b"" if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
        head = f"HTTP/1.1 {response['status']} X\r\n"
        for k, v in (response.get("headers") or {}).items():
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection"):
                head += f"{k}: {v}\r\n"
        yield os.path.basename(path), head.encode(), body


def main(out):
    for path in small_json_files():
        with open(path, "rb") as f:
            write(os.path.join(out, "fuzz_event_codec"), os.path.relpath(path, FIXTURES).replace("/", "_"), f.read())
    for name, head, body in http_answers():
        plain = head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        for call in range(6):  # the first byte chooses the client call
            write(os.path.join(out, "fuzz_http_response"), f"{call}-{name}", bytes([call]) + plain)
        write(os.path.join(out, "fuzz_http_response"), f"chunked-{name}", bytes([1]) + chunked)
    for path in [os.path.join(ROOT, "deploy", "sgsync.example.toml")] + sorted(
            glob.glob(os.path.join(ROOT, "tests", "data", "config", "*.toml"))):
        if os.path.exists(path):
            with open(path, "rb") as f:
                write(os.path.join(out, "fuzz_config"), os.path.basename(path), f.read())
    # The configuration examples of the documentation, each ```toml block a seed.
    for doc in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(doc) as f:
            blocks = f.read().split("```toml\n")[1:]
        for i, block in enumerate(blocks):
            write(os.path.join(out, "fuzz_config"), f"{os.path.basename(doc)}-{i}.toml", block.split("```")[0])
    # A minimal valid file (keys from the environment the target sets) and variants of it, so the
    # fuzzer starts past the key checks, in every table.
    minimal = ('[[link]]\nname = "portal"\n[link.local]\nurl = "https://misp.member.test"\n'
               'api_key_env = "SGSYNC_FUZZ_LOCAL_KEY"\n[link.remote]\nurl = "https://portal.test"\n'
               'api_key_env = "SGSYNC_FUZZ_PORTAL_KEY"\norg_uuid = "1315aee3-d0b4-4569-a8f2-b99ad776f149"\n')
    variants = [
        "", 'shutdown_grace_seconds = 10\n[state]\ndatabase = "/tmp/x.db"\nretention_audit_days = 30\n',
        '[admin]\nsocket = "/run/sgsync/admin.sock"\ntcp_listen = "127.0.0.1:0"\n',
        '[metrics]\nlisten = "127.0.0.1:9187"\nready_failing_seconds = 60\n[log]\nlevel = "debug"\nformat = "json"\n']
    for i, top in enumerate(variants):
        write(os.path.join(out, "fuzz_config"), f"minimal-{i}.toml", top + minimal)
    write(os.path.join(out, "fuzz_config"), "rules.toml", minimal.replace(
        '[link.local]', 'interval_seconds = 60\npush_rules = { tags = { OR = ["tlp:green"], NOT = ["1"] } }\n'
        'blocked_tags = { push = ["tlp:red"], pull = [] }\n[link.local]'))
    rules = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "data", "conformance", "**", "*.json"), recursive=True):
        try:
            with open(path) as f:
                text = f.read()
            doc = json.loads(text)
        except (OSError, ValueError):
            continue  # not a case document
        stack = [doc]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                for k, x in v.items():
                    if k in ("push_rules", "pull_rules") and x:
                        rules.add(x if isinstance(x, str) else json.dumps(x, sort_keys=True))
                    stack.append(x)
            elif isinstance(v, list):
                stack.extend(v)
    rules |= {'{"tags": {"OR": ["tlp:green"], "NOT": ["1"]}, "orgs": {"OR": [], "NOT": []}}',
              '{"type_attributes": {"NOT": ["ip-dst"]}, "url_params": "{\\"timestamp\\": \\"1d\\"}"}'}
    for i, r in enumerate(sorted(rules)):
        write(os.path.join(out, "fuzz_rules"), f"rules-{i}.json", r)
    for target in ("fuzz_event_codec", "fuzz_http_response", "fuzz_config", "fuzz_rules"):
        print(target, len(os.listdir(os.path.join(out, target))), "seeds")


if __name__ == "__main__":
    main(sys.argv[1])
