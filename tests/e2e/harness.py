"""End-to-end test harness: real processes on 127.0.0.1 over real HTTPS.

A test PKI made with the openssl command line, misp-sim processes (a member's MISP and the
Portal), an sgsyncd configuration written as an operator would write it, and sgsyncd itself,
run once or as a daemon that tests signal and kill. Nothing here imitates sgsync: the binaries
under test are the ones the build produced."""
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import urllib.request
import time
import unittest
import urllib.error
import urllib.request

# Every sgsyncd the tests start checks each metric sample against its table (common/metrics.h): a
# sample outside it stops the daemon, and the test that reached it fails.
os.environ["SGSYNC_STRICT_METRICS"] = "1"

ORG1 = ("ORG1", "ce867008-0536-4358-9f2e-20df12768cd3")
ORG2 = ("ORG2", "1315aee3-d0b4-4569-a8f2-b99ad776f149")
ORG3 = ("ORG3", "9f3c7e20-3b1a-4d6e-8a51-2f6c0d9e7a33")
INSTANCE1_URL = "http://127.0.0.1:8081"  # the URLs the conformance instances knew each other by
INSTANCE2_URL = "http://127.0.0.1:8082"


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Pki:
    """A CA and a server certificate for 127.0.0.1 (or for `host`, a DNS name, to be the wrong one)."""

    def __init__(self, directory, host="127.0.0.1", days=2):
        self.dir = directory
        d = lambda n: os.path.join(directory, n)
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", "/CN=sgsync-e2e-ca", "-keyout", d("ca.key"), "-out", d("ca.pem")])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
             "/CN=" + host, "-keyout", d("server.key"), "-out", d("server.csr")])
        with open(d("server.ext"), "w") as f:
            f.write(f"subjectAltName={'IP' if host[0].isdigit() else 'DNS'}:{host}\n")
        run(["openssl", "x509", "-req", "-in", d("server.csr"), "-CA", d("ca.pem"), "-CAkey", d("ca.key"),
             "-CAcreateserial", "-days", str(days), "-extfile", d("server.ext"), "-out", d("server.pem")])
        self.ca = d("ca.pem")
        self.cert = d("server.pem")
        self.key = d("server.key")


def random_key():
    return os.urandom(20).hex()


class Sim:
    """One misp-sim process over HTTPS."""

    def __init__(self, binary, pki, org, base_url, db=":memory:", admin_key=None):
        self.admin_key = admin_key or random_key()
        self.org = org
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--db", db, "--tls-cert", pki.cert, "--tls-key", pki.key,
             "--org", org[0], "--org-uuid", org[1], "--admin-key", self.admin_key, "--base-url", base_url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError("misp-sim did not start: " + line + self.proc.stderr.read())
        self.url = line.split()[-1]
        self.proc.stdout.readline()  # admin key
        self.token = self.proc.stdout.readline().split()[-1]
        self.ctx = ssl.create_default_context(cafile=pki.ca)

    def request(self, method, path, body=None, key=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", key or self.admin_key)
        req.add_header("Accept", "application/json")
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
                text = r.read().decode()
                return r.status, dict(r.headers), (json.loads(text) if text.strip() else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                parsed = json.loads(text) if text.strip() else None
            except ValueError:
                parsed = text
            return e.code, dict(e.headers), parsed

    def control(self, method, what, body=None):
        status, _, answer = self.request(method, "/_sim/" + what, body, headers={"X-Sim-Token": self.token})
        if status != 200:
            raise RuntimeError(f"/_sim/{what}: {status} {answer}")
        return answer

    def view(self, uuid):
        """The event as the site admin reads it with deleted elements (the conformance form)."""
        status, _, body = self.request("GET", f"/events/view/{uuid}/deleted[]:0/deleted[]:1")
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"events/view {uuid}: {status} {body}")
        return body

    def requests(self):
        return self.control("GET", "requests")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_key(directory, name, key):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return path


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)  # a JSON string is a valid TOML basic string


def link_toml(name, local, remote, **settings):
    """A [[link]] table. `local` / `remote`: dicts of endpoint keys; `settings`: link keys."""
    lines = ["[[link]]", f"name = {toml_value(name)}"]
    for k, v in settings.items():
        if k in ("push_rules", "pull_rules") and not isinstance(v, str):
            v = json.dumps(v)
        lines.append(f"{k} = {toml_value(v)}")
    for table, keys in (("local", local), ("remote", remote)):
        lines.append(f"[link.{table}]")
        for k, v in keys.items():
            lines.append(f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


def admin_socket_for(state_db):
    """The admin socket daemon_toml gives a daemon by default: a Unix socket path holds at most 107
    bytes, so a short name beside the database."""
    return os.path.join(os.path.dirname(state_db), "a" + hashlib.sha1(state_db.encode()).hexdigest()[:8] + ".sock")


def daemon_toml(state_db, links, metrics_listen="", extra="", max_attempts=8, admin_socket=None, admin_extra=""):
    admin_socket = admin_socket or admin_socket_for(state_db)
    return (f"shutdown_grace_seconds = 10\n{extra}\n[state]\ndatabase = {toml_value(state_db)}\n"
            f"max_attempts = {max_attempts}\n[admin]\nsocket = {toml_value(admin_socket)}\n{admin_extra}"
            f"[log]\nlevel = \"info\"\n[metrics]\nlisten = {toml_value(metrics_listen)}\n\n" + "".join(links))


class Sgsyncd:
    def __init__(self, binary, config_path, admin_socket=None):
        self.binary = binary
        self.config = config_path
        self.admin_socket = admin_socket
        self.proc = None
        self.log = None

    def once(self, direction=None, full=False, check=True):
        cmd = [self.binary, "--config", self.config, "--once"]
        if direction:
            cmd += ["--direction", direction]
        if full:
            cmd.append("--full")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            # A hung run says where it hangs: every thread's stack (gdb, when installed), then its output.
            stacks = hung_stacks(p.pid)
            p.kill()
            out, err = p.communicate()
            raise RuntimeError(f"sgsyncd --once did not end within 600 s: {' '.join(cmd)}\n{stacks}\n"
                               f"its stderr:\n{err[-4000:]}")
        r = subprocess.CompletedProcess(cmd, p.returncode, out, err)
        if check and r.returncode not in (0, 1):
            raise RuntimeError(f"sgsyncd --once exited {r.returncode}: {r.stderr}")
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        # Event runs are returned; sightings runs (printed after them) are kept aside.
        self.sightings = [s for s in lines if s["run"].endswith(" sightings")]
        stats = [s for s in lines if not s["run"].endswith(" sightings")]
        return r.returncode, stats, r.stderr

    def start(self, log_path):
        if self.log:
            self.log.close()
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([self.binary, "--config", self.config], stdout=self.log, stderr=self.log)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()


def hung_stacks(pid):
    """Every thread's stack of process `pid`, for a test that found it hung; what it can say when gdb
    is missing."""
    if shutil.which("gdb") is None:
        return "(no gdb to show the threads' stacks)"
    r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 30"],
                       capture_output=True, text=True, timeout=120)
    return r.stdout[-20000:]


def scrape_metrics(port, timeout=5):
    """sgsyncd's /metrics text on 127.0.0.1:`port`, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


def wait_for(predicate, timeout=60, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class TwoSims:
    """The conformance set-up (tests/data/conformance/README.md): instance 1 is the member's MISP
    (ORG1), instance 2 the Portal (ORG2), ORG3 known to both, sgsync logging in to the Portal as
    sync@org1.test, a sync user of ORG1; sgsync writes into the member's MISP as its site admin."""

    def __init__(self, misp_sim_bin, sgsyncd_bin, work):
        self.work = work
        self.pki = Pki(work)
        self.member = Sim(misp_sim_bin, self.pki, ORG1, INSTANCE1_URL)
        self.portal = Sim(misp_sim_bin, self.pki, ORG2, INSTANCE2_URL)
        self.member.control("POST", "setup", {
            "orgs": [{"name": ORG2[0], "uuid": ORG2[1]}, {"name": ORG3[0], "uuid": ORG3[1]}],
            "servers": [{"url": INSTANCE2_URL, "name": "instance 2"}]})
        answer = self.portal.control("POST", "setup", {
            "orgs": [{"name": ORG1[0], "uuid": ORG1[1]}, {"name": ORG3[0], "uuid": ORG3[1]}],
            "users": [{"email": "sync@org1.test", "org_uuid": ORG1[1], "role": "sync_user"}],
            "servers": [{"url": INSTANCE1_URL, "name": "instance 1"}]})
        self.sync_key = answer["keys"]["sync@org1.test"]
        self.member_key_file = write_key(work, "member.key", self.member.admin_key)
        self.portal_key_file = write_key(work, "portal.key", self.sync_key)
        self.sgsyncd_bin = sgsyncd_bin

    def endpoints(self, member_max_in_flight=4, portal_max_in_flight=4):
        local = {"url": self.member.url, "baseurl": INSTANCE1_URL, "api_key_file": self.member_key_file,
                 "ca_file": self.pki.ca, "max_in_flight": member_max_in_flight, "timeout_seconds": 60}
        remote = {"url": self.portal.url, "baseurl": INSTANCE2_URL, "api_key_file": self.portal_key_file,
                  "ca_file": self.pki.ca, "org_uuid": ORG2[1], "org_name": ORG2[0],
                  "max_in_flight": portal_max_in_flight, "timeout_seconds": 60}
        return local, remote

    def sgsyncd(self, name, links, metrics_listen="", extra="", max_attempts=8, admin_extra=""):
        path = os.path.join(self.work, name + ".toml")
        db = os.path.join(self.work, name + ".db")
        with open(path, "w") as f:
            f.write(daemon_toml(db, links, metrics_listen, extra, max_attempts, admin_extra=admin_extra))
        return Sgsyncd(self.sgsyncd_bin, path, admin_socket_for(db))

    def reset(self):
        self.member.control("POST", "reset")
        self.portal.control("POST", "reset")
        self.member.control("DELETE", "requests")
        self.portal.control("DELETE", "requests")
        self.member.control("DELETE", "faults")
        self.portal.control("DELETE", "faults")

    def stop(self):
        self.member.stop()
        self.portal.stop()


@contextlib.contextmanager
def two_sims_in_temp_dir(misp_sim_bin, sgsyncd_bin):
    """TwoSims in a temporary directory of their own, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        sims = TwoSims(misp_sim_bin, sgsyncd_bin, tmp)
        try:
            yield sims, tmp
        finally:
            sims.stop()


def read(path):
    with open(path) as f:
        return f.read()


def uuid_list(sim, key=None):
    """The uuids of the events `sim` lists to `key` (its admin by default), in index order."""
    status, _, rows = sim.request("POST", "/events/index", {"minimal": 1}, key=key)
    assert status == 200, (status, rows)
    return [r["uuid"] for r in rows]


def uuids_on(sim, key=None):
    return set(uuid_list(sim, key))


def uuid_from(seed, n):
    """A stable version-4 uuid made from a seed string and a counter."""
    h = hashlib.sha256(f"{seed}/{n}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


class SimsTestCase(unittest.TestCase):
    """Two misp-sim (TwoSims) for the whole class, reset before each test; every sgsyncd a test
    made (self.daemons) is stopped after it, its log printed with SGSYNC_E2E_VERBOSE set. A test
    module sets MISP_SIM and SGSYNCD on the class before running."""

    MISP_SIM = SGSYNCD = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.sims = TwoSims(cls.MISP_SIM, cls.SGSYNCD, cls.tmp.name)
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.sims.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.sims.reset()
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()
            if d.log is not None and os.environ.get("SGSYNC_E2E_VERBOSE"):
                print(read(d.log.name)[-6000:])

    def edit_info(self, sim, uuid, info, bump):
        """Edits an event's info with its timestamp moved by `bump`, and publishes it."""
        ev = sim.view(uuid)["Event"]
        ev["info"] = info
        ev["timestamp"] = str(int(ev["timestamp"]) + bump)
        status, _, body = sim.request("POST", f"/events/edit/{uuid}", {"Event": ev})
        self.assertEqual(status, 200, body)
        status, _, body = sim.request("POST", f"/events/publish/{ev['id']}")
        self.assertEqual(status, 200, body)
