#!/usr/bin/env python3
"""The Debian package: deploy/build-deb makes it; its contents, paths, permissions, Depends and
maintainer scripts are what an operator expects; the systemd unit verifies and its exposure score
is at most 2.0; and, as root in CI (or with SGSYNC_TEST_INSTALL=1), it installs with dpkg -i,
runs, checks the installed example configuration, and removes leaving the state.

usage: test_deb.py SOURCE_DIR [--from-build BUILD_DIR] [unittest arguments]

With --from-build (as CTest runs it) the package is made from the build under test
(deploy/build-deb --from-build): what is packaged is tested, not the optimiser, and the suite does
not pay for a release build of its own."""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

SOURCE = None
FROM_BUILD = None
DEB = None


def read(path):
    with open(path) as f:
        return f.read()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def setUpModule():
    global DEB
    cmd = [os.path.join(SOURCE, "deploy", "build-deb"), "--no-install"]
    if FROM_BUILD:
        cmd += ["--from-build", FROM_BUILD]
    r = run(cmd, timeout=1500)
    if r.returncode != 0:
        raise RuntimeError("deploy/build-deb failed:\n" + r.stderr[-4000:])
    DEB = r.stdout.strip().splitlines()[-1]


class PackageContentsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = os.path.join(cls.tmp.name, "root")
        cls.control = os.path.join(cls.tmp.name, "control")
        subprocess.run(["dpkg-deb", "-x", DEB, cls.root], check=True)
        subprocess.run(["dpkg-deb", "-e", DEB, cls.control], check=True)
        cls.fields = run(["dpkg-deb", "-f", DEB]).stdout

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def mode(self, path):
        return stat.S_IMODE(os.stat(os.path.join(self.root, path.lstrip("/"))).st_mode)

    def test_its_name_is_sgsync_version_arch_and_depends_are_computed(self):
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        self.assertRegex(os.path.basename(DEB), rf"^sgsync_\d+\.\d+\.\d+_{arch}\.deb$")
        depends = re.search(r"^Depends: (.*)$", self.fields, re.M).group(1)
        for lib in ("libgrpc++1.51", "libsqlite3-0", "libssl3", "libsystemd0", "libstdc++6", "adduser"):
            self.assertIn(lib, depends)

    def test_binaries_unit_configuration_and_docs_sit_where_the_unit_and_docs_say(self):
        for path, mode in (("/usr/bin/sgsyncd", 0o755), ("/usr/bin/sgsyncctl", 0o755),
                           ("/usr/lib/systemd/system/sgsyncd.service", 0o644),
                           ("/etc/sgsync/sgsync.toml", 0o640),
                           ("/usr/share/doc/sgsync/install.md", 0o644),
                           ("/usr/share/doc/sgsync/install.ja.md", 0o644),
                           ("/usr/share/doc/sgsync/operations.md", 0o644),
                           ("/usr/share/doc/sgsync/sgsyncd.help.txt", 0o644),
                           ("/usr/share/doc/sgsync/examples/sgsync.example.toml", 0o644)):
            self.assertTrue(os.path.exists(os.path.join(self.root, path.lstrip("/"))), path)
            self.assertEqual(self.mode(path), mode, path)
        unit = read(os.path.join(self.root, "usr/lib/systemd/system/sgsyncd.service"))
        for path in re.findall(r"(?:Exec\w+)=(\S+)", unit) + re.findall(r"file://(\S+)", unit):
            if path.startswith("/usr/"):
                self.assertTrue(os.path.exists(os.path.join(self.root, path.lstrip("/"))), path)
        self.assertIn("--config /etc/sgsync/sgsync.toml", unit)
        self.assertIn("--config", read(os.path.join(self.root, "usr/share/doc/sgsync/sgsyncd.help.txt")))

    def test_the_configuration_is_a_conffile_and_the_maintainer_scripts_do_their_jobs(self):
        self.assertEqual(read(os.path.join(self.control, "conffiles")).split(), ["/etc/sgsync/sgsync.toml"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(self.control, script)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o755, script)
            self.assertEqual(run(["sh", "-n", path]).returncode, 0, script + " is valid sh")
        postinst = read(os.path.join(self.control, "postinst"))
        self.assertIn("adduser --system", postinst)
        self.assertIn("/var/lib/sgsync", postinst)
        self.assertIn("systemctl stop sgsyncd.service", read(os.path.join(self.control, "prerm")))
        self.assertNotIn("rm -rf /var/lib/sgsync", read(os.path.join(self.control, "postrm")))

    def test_the_unit_verifies_and_its_exposure_is_at_most_2(self):
        unit = read(os.path.join(self.root, "usr/lib/systemd/system/sgsyncd.service"))
        unit = unit.replace("/usr/bin/sgsyncd", os.path.join(self.root, "usr/bin/sgsyncd"))
        path = os.path.join(self.tmp.name, "sgsyncd.service")
        with open(path, "w") as f:
            f.write(unit)
        r = run(["systemd-analyze", "verify", path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(["systemd-analyze", "security", "--offline=yes", path])
        score = float(re.search(r"Overall exposure level for sgsyncd.service: ([0-9.]+)", r.stdout).group(1))
        print(f"\nsystemd-analyze security: exposure {score} (at most 2.0)", file=sys.stderr)
        self.assertLessEqual(score, 2.0)
        for setting in ("Type=notify", "WatchdogSec=", "ProtectSystem=strict", "ReadWritePaths=/var/lib/sgsync",
                        "NoNewPrivileges=yes", "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=\n",
                        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
                        "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "RestrictNamespaces=yes",
                        "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes"):
            self.assertIn(setting, unit)


@unittest.skipUnless(os.geteuid() == 0 and (os.environ.get("CI") == "true" or os.environ.get("SGSYNC_TEST_INSTALL") == "1"),
                     "installs into this machine: only as root in CI or with SGSYNC_TEST_INSTALL=1")
class PackageInstallTest(unittest.TestCase):
    def test_it_installs_runs_checks_its_example_and_removes_leaving_the_state(self):
        r = run(["dpkg", "-i", DEB])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        try:
            self.assertEqual(run(["getent", "passwd", "sgsync"]).returncode, 0, "the service user exists")
            st = os.stat("/var/lib/sgsync")
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o750)
            self.assertIn("sgsyncd", run(["/usr/bin/sgsyncd", "--version"]).stdout)
            # docs/install.md, step 3: the two key files, then --check on the installed configuration.
            for name in ("local.key", "portal.key"):
                path = os.path.join("/etc/sgsync", name)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.write(fd, (os.urandom(20).hex() + "\n").encode())
                os.close(fd)
            r = run(["/usr/bin/sgsyncd", "--config", "/etc/sgsync/sgsync.toml", "--check"])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("configuration OK", r.stdout)
            with open("/var/lib/sgsync/state.db", "w") as f:
                f.write("stands for the state")
        finally:
            for name in ("local.key", "portal.key"):
                if os.path.exists(os.path.join("/etc/sgsync", name)):
                    os.remove(os.path.join("/etc/sgsync", name))
            r = run(["dpkg", "-r", "sgsync"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists("/usr/bin/sgsyncd"))
        self.assertTrue(os.path.exists("/var/lib/sgsync/state.db"), "the state is kept on remove")
        self.assertTrue(os.path.exists("/etc/sgsync/sgsync.toml"), "a conffile stays until purge")
        r = run(["dpkg", "--purge", "sgsync"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists("/etc/sgsync/sgsync.toml"))
        self.assertTrue(os.path.exists("/var/lib/sgsync/state.db"), "the state is kept on purge too")
        shutil.rmtree("/var/lib/sgsync")


if __name__ == "__main__":
    SOURCE = sys.argv[1]
    rest = sys.argv[2:]
    if rest[:1] == ["--from-build"]:
        FROM_BUILD, rest = rest[1], rest[2:]
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
