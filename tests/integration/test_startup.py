"""Start-up and reload tell the truth (SPEC section 7): `--version`, the
first log lines (version, configuration, workers and why, every route's
deadlines), what a SIGHUP changed, a second cutoff on an address already
served, ":port" on IPv4 and IPv6, `--check` reporting every error of
the flags, the file and the access log path, and `cutoff ca init` writing a
CA that is not readable by others and never overwritten."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import (ADMIN_ON, DEFAULT_CONFIG, REPO, SCALE, Client, Cutoff, CutoffTestCase,
                     _pdeathsig_prefix, admin_addr, find_binary, merge, run_tool, shown,
                     time_limit, to_toml, wait_until)

LINE_RE = re.compile(r"^\S+ (\w+) (.*)$", re.M)
CRITICAL_RE = re.compile(r"^\S+ critical (.*)$", re.M)


def project_version() -> str:
    """The version CMakeLists.txt gives the project."""
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(cutoff VERSION (\S+)", text).group(1)


def log_lines(text: str) -> list[tuple[str, str]]:
    """(level, message) of every diagnostics line."""
    return LINE_RE.findall(text)


def bounds_of(line: str) -> dict:
    """The key=value pairs after the colon of a `deadlines ...:` line."""
    return dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split())


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class StartupTestCase(CutoffTestCase):
    NEEDS_CUTOFF = False

    def setUp(self):
        if not find_binary():
            self.skipTest("cutoff binary not found: set CUTOFF_BIN or build build/cutoff")
        super().setUp()

    def run_binary(self, *args, timeout=10.0):
        """Runs cutoff with these arguments to its exit; CompletedProcess (text)."""
        p = run_tool([find_binary(), *args], timeout=timeout * SCALE)
        return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(),
                                           p.stderr.decode())

    def refused_start(self, config, **kw):
        """A cutoff that must refuse to start: exit 1, soon, with one critical
        line (returned)."""
        c = Cutoff(config, **kw)
        t0 = time.monotonic()
        try:
            p = c.run_to_exit()
        finally:
            c.cleanup_dir()
        self.assertLess(time.monotonic() - t0, 3 * SCALE, "refusing to start took too long")
        self.assertEqual(p.returncode, 1, f"cutoff exited {p.returncode}:\n{p.stderr[-3000:]}")
        errors = CRITICAL_RE.findall(p.stderr)
        self.assertEqual(len(errors), 1, p.stderr[-3000:])
        return errors[0]

    def temp_file(self, name: str, text: str) -> str:
        """Writes `text` to `name` in this test's own temp dir; the path."""
        if not getattr(self, "_dir", None):
            self._dir = tempfile.mkdtemp(prefix="cutoff-it-")
            self.addCleanup(shutil.rmtree, self._dir, True)
        path = os.path.join(self._dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path


# ---------------------------------------------------------------------------
# The command line

class VersionTest(StartupTestCase):

    def test_version_prints_the_version_and_exits_0(self):
        p = self.run_binary("--version")
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (0, f"cutoff {project_version()}\n", ""))

    def test_version_beside_a_bad_flag_reports_the_flag(self):
        p = self.run_binary("--version", "--bogus")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("cutoff: unknown argument --bogus\n", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_help_documents_version(self):
        p = self.run_binary("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--version", p.stdout)
        self.assertIn("--config FILE", p.stdout)


class CheckTest(StartupTestCase):

    def config_file(self, over=None, extra: str = "") -> str:
        return self.temp_file("check.toml", to_toml(merge(DEFAULT_CONFIG, over or {})) + extra)

    def test_every_unreadable_flag_is_reported(self):
        p = self.run_binary("--check", "--bogus", "--listen", "--frob=1", "--check=yes")
        self.assertEqual(p.returncode, 2, p.stderr)
        for error in ("unknown argument --bogus", "--listen needs a value",
                      "unknown argument --frob=1", "--check takes no value"):
            self.assertIn(f"cutoff: {error}\n", p.stderr)
        self.assertIn("usage: cutoff", p.stderr)

    def test_bad_flag_values_are_reported_with_the_files_errors(self):
        path = self.config_file(extra="bogus_key = 1\n")
        p = self.run_binary("--check", "--config", path, "--listen", "nope", "--admin=1.2.3.4:x")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cutoff: --listen nope: ", p.stderr)
        self.assertIn("cutoff: --admin 1.2.3.4:x: ", p.stderr)
        self.assertRegex(p.stderr, re.escape(path) + r":\d+:\d+: unknown key \"bogus_key\"")

    def test_config_given_twice_is_refused(self):
        first = self.temp_file("first.toml", "workers = 1\n")
        second = self.temp_file("second.toml", "workers = 2\n")
        p = self.run_binary("--check", "--config", first, f"--config={second}")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(f"cutoff: --config is given twice ({first}, {second})\n", p.stderr)

    def test_config_flag_with_equals(self):
        path = self.config_file()
        p = self.run_binary("--check", f"--config={path}", "--listen=127.0.0.1:0")
        self.assertEqual((p.returncode, p.stdout), (0, f"{path}: configuration is valid\n"),
                         p.stderr)

    def test_access_log_in_a_missing_directory(self):
        base = os.path.dirname(self.config_file())
        log = os.path.join(base, "missing", "access.log")
        path = self.config_file({"access_log": {"path": log}})
        p = self.run_binary("--check", "--config", path)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f'{path}: access_log.path "{log}" cannot be opened for appending', p.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(log)))

    def test_access_log_that_is_a_directory(self):
        base = os.path.dirname(self.config_file())
        path = self.config_file({"access_log": {"path": base}})
        p = self.run_binary("--check", "--config", path)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f'access_log.path "{base}" cannot be opened for appending: it is a directory',
                      p.stderr)

    def test_access_log_that_is_a_socket(self):
        base = os.path.dirname(self.config_file())
        log = os.path.join(base, "access.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(log)
        path = self.config_file({"access_log": {"path": log}})
        p = self.run_binary("--check", "--config", path)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f'access_log.path "{log}" cannot be opened for appending: it is a socket',
                      p.stderr)

    def test_read_only_access_log(self):
        if os.geteuid() == 0:
            self.skipTest("root may write to a read-only file")
        base = os.path.dirname(self.config_file())
        log = os.path.join(base, "access.log")
        with open(log, "w") as f:
            f.write("kept\n")
        os.chmod(log, stat.S_IRUSR)
        path = self.config_file({"access_log": {"path": log}})
        p = self.run_binary("--check", "--config", path)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f'access_log.path "{log}" cannot be opened for appending', p.stderr)

    def test_a_usable_access_log_is_neither_created_nor_truncated(self):
        base = os.path.dirname(self.config_file())
        existing = os.path.join(base, "existing.log")
        with open(existing, "w") as f:
            f.write("kept\n")
        missing = os.path.join(base, "new.log")
        for log in (existing, missing):
            with self.subTest(log=os.path.basename(log)):
                path = self.config_file({"access_log": {"path": log}})
                p = self.run_binary("--check", "--config", path)
                self.assertEqual(p.returncode, 0, p.stderr)
        with open(existing) as f:
            self.assertEqual(f.read(), "kept\n")
        self.assertFalse(os.path.exists(missing), "--check created the access log")


# ---------------------------------------------------------------------------
# Start-up lines

ROUTES = [
    {"name": "api", "match": {"host": "api.example.com", "port": [443, 8443]},
     "response_header_timeout": "2s", "request_timeout": "5s"},
    {"name": "static", "match": {"path_prefix": "/static/"}, "idle_timeout": "1s"},
]


class StartupLinesTest(StartupTestCase):

    def test_first_lines_name_version_config_workers_and_every_deadline(self):
        c = self.dedicated_cutoff({"workers": 2}, ROUTES)
        lines = [message for _, message in log_lines(c.stderr_text())]
        self.assertEqual(lines[0], f"cutoff {project_version()} starting (pid {c.pid})")
        config = os.path.join(c.dir, "cutoff.toml")
        self.assertEqual(lines[1], f"configuration: {config}, overridden by --listen 127.0.0.1:0")
        self.assertEqual(lines[2], "workers: 2 (configured: workers = 2)")
        deadlines = [line for line in lines if line.startswith("deadlines ")]
        self.assertEqual([line.split(":", 1)[0] for line in deadlines],
                         ["deadlines [defaults]", 'deadlines route "api"',
                          'deadlines route "static"', "deadlines [listen]", "deadlines global"])
        defaults, api, static, listen, overall = map(bounds_of, deadlines)
        d = DEFAULT_CONFIG["defaults"]
        for route in (defaults, api, static):
            self.assertEqual(route["connect_timeout"], shown(d["connect_timeout"]))
            self.assertEqual(route["dns_timeout"], "5s")  # the built-in default, not scaled
            self.assertEqual(route["action"], "forward")
        self.assertEqual(defaults["response_header_timeout"], shown(d["response_header_timeout"]))
        self.assertEqual(defaults["request_timeout"], "off")
        self.assertEqual(defaults["min_rate"], "1KiB/30s")
        self.assertEqual(api["match"], "{host=api.example.com,port=[443,8443]}")
        self.assertEqual(api["response_header_timeout"], shown("2s"))
        self.assertEqual(api["request_timeout"], shown("5s"))
        self.assertEqual(api["idle_timeout"], shown(d["idle_timeout"]))
        self.assertEqual(static["match"], "{path_prefix=/static/}")
        self.assertEqual(static["idle_timeout"], shown("1s"))
        self.assertEqual(static["request_timeout"], "off")
        listen = DEFAULT_CONFIG["listen"]
        self.assertEqual(bounds_of(deadlines[3]),
                         {"request_header_timeout": shown(listen["request_header_timeout"]),
                          "client_keepalive_timeout": shown(listen["client_keepalive_timeout"])})
        self.assertEqual(overall, {"drain_timeout": shown(DEFAULT_CONFIG["drain_timeout"]),
                                   "linger_timeout": shown(DEFAULT_CONFIG["linger_timeout"])})

    @time_limit(20)
    def test_built_in_defaults_and_one_worker_per_cpu(self):
        argv = [find_binary(), "--listen", "127.0.0.1:0", "--admin", "off"]
        proc = subprocess.Popen(_pdeathsig_prefix() + argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            seen = []
            deadline = time.monotonic() + 5 * SCALE
            while not any("listening on" in line for line in seen):
                self.assertLess(time.monotonic(), deadline, "no `listening on`:\n" + "".join(seen))
                line = proc.stderr.readline()
                self.assertTrue(line, "cutoff exited before listening:\n" + "".join(seen))
                seen.append(line)
        finally:
            # Right after `listening on`: the signal is caught from then on
            # (it drains and exits 0, never dies of the default action).
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=5 * SCALE)
        self.assertEqual(proc.returncode, 0, "a SIGTERM right after start-up must drain")
        messages = [message for _, message in log_lines("".join(seen))]
        self.assertEqual(messages[1],
                         "configuration: built-in defaults, overridden by --listen 127.0.0.1:0 "
                         "--admin off")
        # One per CPU of the affinity mask, unless a cgroup CPU quota (a
        # container's limit) allows fewer; the line says which.
        cpus = len(os.sched_getaffinity(0))
        in_affinity = f"{cpus} CPU{'s' if cpus > 1 else ''} in its CPU affinity"
        if "CPU quota" in messages[2]:
            m = re.fullmatch(r"workers: (\d+) \(one per CPU it may use: a CPU quota of \1 CPUs? "
                             r"\(cgroup v[12] .*, rounded up\), (.*)\)", messages[2])
            self.assertTrue(m, messages[2])
            self.assertLess(int(m.group(1)), cpus, messages[2])
            self.assertEqual(m.group(2), in_affinity, messages[2])
        else:
            self.assertEqual(messages[2], f"workers: {cpus} (one per CPU, {in_affinity})")
        self.assertTrue(messages[3].startswith(
            "deadlines [defaults]: action=forward dns_timeout=5s connect_timeout=5s "
            "response_header_timeout=30s idle_timeout=1m request_timeout=off "), messages[3])


# ---------------------------------------------------------------------------
# Reload

class ReloadLinesTest(StartupTestCase):

    def reload(self, c) -> str:
        """Sends SIGHUP for c's config as it is now; what cutoff logged for it."""
        mark = len(c.stderr_text())
        c.reload()
        return c.stderr_text()[mark:]

    def reloaded_line(self, text: str) -> str:
        m = re.search(r"configuration reloaded from (.*)$", text, re.M)
        self.assertTrue(m, text)
        return m.group(1)

    @time_limit(20)
    def test_reload_names_each_changed_key_or_no_change(self):
        c = self.dedicated_cutoff(routes=ROUTES[:1])
        path = os.path.join(c.dir, "cutoff.toml")
        self.assertEqual(self.reloaded_line(self.reload(c)), f"{path}: no change")
        c.config["defaults"]["idle_timeout"] = "1s"
        c.routes = ROUTES[:1] + [{"name": "new", "match": {"port": 8080}, "action": "deny"}]
        self.assertEqual(self.reloaded_line(self.reload(c)),
                         f"{path}: defaults.idle_timeout {shown(DEFAULT_CONFIG['defaults']['idle_timeout'])}"
                         f' -> {shown("1s")}, route "new" added')
        c.routes = ROUTES[:1]
        self.assertEqual(self.reloaded_line(self.reload(c)), f'{path}: route "new" removed')

    @time_limit(20)
    def test_keys_that_need_a_restart_are_named(self):
        c = self.dedicated_cutoff()
        path = os.path.join(c.dir, "cutoff.toml")
        c.config["workers"] = c.config["workers"] + 1
        c.config["admin"] = {"address": "127.0.0.1:0"}
        text = self.reload(c)
        warnings = [m for level, m in log_lines(text) if level == "warning"]
        n = c.config["workers"]
        self.assertEqual(warnings, [
            f"reload {path}: workers {n - 1} -> {n} takes effect at the next start",
            f"reload {path}: admin.address off -> 127.0.0.1:0 takes effect at the next start"])
        self.assertEqual(self.reloaded_line(text), f"{path}: no change")

    @time_limit(20)
    def test_refused_reload_logs_the_errors_and_keeps_the_old_config(self):
        c = self.dedicated_cutoff()
        path = os.path.join(c.dir, "cutoff.toml")
        with open(path) as f:
            good = f.read()
        with open(path, "w") as f:
            f.write(good.replace("[defaults]", "[defaults]\nconect_timeout = \"1s\""))
        mark = len(c.stderr_text())
        c.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in c.stderr_text()[mark:], "reload refused")
        text = c.stderr_text()[mark:]
        self.assertRegex(text, re.escape(path) + r":\d+:\d+: unknown key \"conect_timeout\"")
        self.assertIn(f"reload refused ({path} has errors); the running configuration stays", text)
        self.assertNotIn("configuration reloaded", text)
        # The running config is the good one: reloading it changes nothing.
        self.assertEqual(self.reloaded_line(self.reload(c)), f"{path}: no change")


# ---------------------------------------------------------------------------
# An address already served

class SecondInstanceTest(StartupTestCase):

    @time_limit(60)
    def test_second_cutoff_on_a_served_address_exits_naming_it(self):
        first = self.dedicated_cutoff(merge(ADMIN_ON, {"workers": 2}))
        port, admin_port = first.port, admin_addr(first)[1]
        for workers in (1, 2, 4):
            with self.subTest(listener="proxy", workers=workers):
                error = self.refused_start({"workers": workers},
                                           extra_args=["--listen", f"127.0.0.1:{port}"])
                self.assertEqual(error, f"cannot listen on 127.0.0.1:{port}: address already in use")
            with self.subTest(listener="proxy, every address", workers=workers):
                error = self.refused_start({"workers": workers}, extra_args=["--listen", f":{port}"])
                self.assertEqual(error, f"cannot listen on :{port}: address already in use")
            with self.subTest(listener="admin", workers=workers):
                error = self.refused_start(merge(ADMIN_ON, {"workers": workers}),
                                           extra_args=["--admin", f"127.0.0.1:{admin_port}"])
                self.assertEqual(error, f"cannot listen on 127.0.0.1:{admin_port} (admin): "
                                        "address already in use")
        self.assertTrue(first.alive())

    @time_limit(30)
    def test_a_dual_stack_listener_keeps_its_port_from_ipv4_cutoffs(self):
        first = self.dedicated_cutoff({"workers": 2}, extra_args=["--listen", ":0"])
        for workers in (1, 2):
            with self.subTest(workers=workers):
                error = self.refused_start({"workers": workers},
                                           extra_args=["--listen", f"127.0.0.1:{first.port}"])
                self.assertEqual(error,
                                 f"cannot listen on 127.0.0.1:{first.port}: address already in use")


# ---------------------------------------------------------------------------
# `cutoff ca init DIR` (SPEC section 10)

class CaInitTest(StartupTestCase):

    def ca_init(self, directory: str, cwd: str | None = None, umask: int | None = None):
        """Runs `cutoff ca init DIRECTORY`; CompletedProcess (text)."""
        preexec = (lambda: os.umask(umask)) if umask is not None else None
        return subprocess.run(_pdeathsig_prefix() + [find_binary(), "ca", "init", directory],
                              capture_output=True, text=True, timeout=10 * SCALE, cwd=cwd,
                              stdin=subprocess.DEVNULL, preexec_fn=preexec)

    def new_dir(self) -> str:
        base = tempfile.mkdtemp(prefix="cutoff-it-")
        self.addCleanup(shutil.rmtree, base, True)
        return base

    def mode(self, path: str) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    def test_writes_a_ca_with_a_private_key_and_says_how_to_use_it(self):
        ca = os.path.join(self.new_dir(), "ca")
        p = self.ca_init(ca)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        cert, key = os.path.join(ca, "ca.pem"), os.path.join(ca, "ca-key.pem")
        self.assertEqual(self.mode(ca), 0o700)
        self.assertEqual(self.mode(key), 0o600)
        self.assertEqual(self.mode(cert), 0o644)
        for step in (f'ca_cert = "{cert}"', f'ca_key = "{key}"', 'tls = "intercept"',
                     f"--cacert {cert}", "CURL_CA_BUNDLE=", f"NODE_EXTRA_CA_CERTS={cert}",
                     "SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE=", "update-ca-certificates",
                     "/usr/local/share/ca-certificates/cutoff.crt"):
            self.assertIn(step, p.stdout)

        text = run_tool(["openssl", "x509", "-in", cert, "-noout", "-text"], timeout=5 * SCALE)
        self.assertEqual(text.returncode, 0, text.stderr)
        out = text.stdout.decode()
        self.assertRegex(out, r"Basic Constraints: critical\s+CA:TRUE, pathlen:0")
        self.assertRegex(out, r"Key Usage: critical\s+Certificate Sign, CRL Sign")
        self.assertRegex(out, r"Subject: CN ?= ?cutoff interception CA [0-9a-f]{6}\n")
        self.assertIn("NIST CURVE: P-256", out)
        self.assertIn("Subject Key Identifier", out)
        match = run_tool(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], timeout=5 * SCALE)
        derived = run_tool(["openssl", "pkey", "-in", key, "-pubout"], timeout=5 * SCALE)
        self.assertEqual(match.stdout, derived.stdout, "the key is not the certificate's")

    def test_a_second_run_refuses_and_changes_nothing(self):
        ca = self.new_dir()
        self.assertEqual(self.ca_init(ca).returncode, 0)
        names = ("ca.pem", "ca-key.pem")
        before = {n: Path(ca, n).read_bytes() for n in names}
        p = self.ca_init(ca)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertIn(os.path.join(ca, "ca-key.pem") + " already exists", p.stderr)
        self.assertEqual({n: Path(ca, n).read_bytes() for n in names}, before)
        self.assertEqual(sorted(os.listdir(ca)), sorted(names))
        # A certificate alone is not overwritten either, nor left with a new key.
        os.remove(os.path.join(ca, "ca-key.pem"))
        p = self.ca_init(ca)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(os.path.join(ca, "ca.pem") + " already exists", p.stderr)
        self.assertEqual(os.listdir(ca), ["ca.pem"])
        self.assertEqual(Path(ca, "ca.pem").read_bytes(), before["ca.pem"])

    def test_two_cas_have_different_names(self):
        base = self.new_dir()
        subjects = set()
        for name in ("one", "two"):
            self.assertEqual(self.ca_init(os.path.join(base, name)).returncode, 0)
            p = run_tool(["openssl", "x509", "-in", os.path.join(base, name, "ca.pem"), "-noout",
                          "-subject"], timeout=5 * SCALE)
            subjects.add(p.stdout)
        self.assertEqual(len(subjects), 2, subjects)

    def test_a_relative_dir_is_printed_absolute_and_a_umask_keeps_the_modes(self):
        base = os.path.realpath(self.new_dir())
        p = self.ca_init("ca", cwd=base, umask=0o077)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f'ca_cert = "{base}/ca/ca.pem"', p.stdout)
        self.assertEqual(self.mode(os.path.join(base, "ca", "ca.pem")), 0o644)
        self.assertEqual(self.mode(os.path.join(base, "ca", "ca-key.pem")), 0o600)

    def test_a_missing_dir_or_command_is_a_usage_error(self):
        for args, error in ((["ca"], "ca needs a command"),
                            (["ca", "init"], "ca init needs a directory"),
                            (["ca", "frob", "x"], "unknown command ca frob")):
            with self.subTest(args=args):
                p = self.run_binary(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(f"cutoff: {error}", p.stderr)
                self.assertIn("cutoff ca init DIR", p.stderr)

    def test_a_dir_that_cannot_be_made_is_an_error(self):
        blocker = self.temp_file("plain-file", "")
        p = self.ca_init(os.path.join(blocker, "ca"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"cutoff: cannot create the directory {blocker}/ca: ", p.stderr)
        p = self.ca_init(blocker)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"cutoff: {blocker} exists and is not a directory", p.stderr)


# ---------------------------------------------------------------------------
# ":port"

class EveryAddressTest(StartupTestCase):

    def test_port_alone_listens_on_ipv4_and_ipv6(self):
        c = self.dedicated_cutoff(extra_args=["--listen", ":0"])
        self.assertEqual(c.addr[0], "[::]", "\":0\" is not one dual-stack socket on [::]")
        up = self.upstream()
        hosts = ["127.0.0.1"] + (["::1"] if has_ipv6_loopback() else [])
        for host in hosts:
            with self.subTest(client=host):
                cl = Client((host, c.port))
                self._clients.append(cl)
                cl.request("GET", self.url(up, "/ok"))
                self.assertEqual(cl.read_response().status, 200)
        if len(hosts) == 1:
            self.skipTest("no ::1 here: IPv6 half not tested")


if __name__ == "__main__":
    unittest.main()
