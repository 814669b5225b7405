"""Runs the real cutoff binary for integration tests (Python stdlib only).

- Cutoff: starts the binary with a temp TOML config (every duration scaled by
  CUTOFF_TIME_SCALE), waits for `listening on HOST:PORT`, exposes the proxy
  address, the access log (polled: it may be flushed late), the fd count and
  stop() (SIGTERM, SIGKILL after 5 s as a last resort, recorded in .killed);
  nofile=(soft, hard) starts it under that RLIMIT_NOFILE.
- Client: a raw socket that sends bytes and parses responses, recording how
  the connection ended (FIN, RST, or still open) and when.
- CutoffTestCase: unittest base with a per-class cutoff, a per-test hard time
  limit, fake servers that are stopped for you, and an automatic "nothing
  left behind" check after each passing test: every fake-server connection
  ended and cutoff's fds back to their baseline.
- time_wait_count(port): TIME_WAIT sockets on a port, from `ss -tan`;
  socket_count(state, port) for any other state.
- localhost_addresses(): the addresses /etc/hosts gives `localhost` when
  the system looks there first ([] otherwise).
- shown(value): a duration as cutoff prints it (in Proxy-Status details);
  @time_limit(seconds) gives one test its own hard limit.

Durations: tests write config values and expected times in unscaled
milliseconds; everything goes through ms()/dur() so slow (sanitizer) builds
can set CUTOFF_TIME_SCALE=2.

Sanitizer reports: a cutoff whose stderr holds one (ThreadSanitizer,
AddressSanitizer, LeakSanitizer, UBSan's "runtime error:") fails the test
that ran it, or the class whose cutoff it was, with the report, whether or
not the report also made the process exit.
"""

from __future__ import annotations

import atexit
import copy
import faulthandler
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

import fakeload
import fakenet
import fakeupstream
import tlsupstream

SCALE = float(os.environ.get("CUTOFF_TIME_SCALE", "") or 1.0)
# Workers of every cutoff whose test does not choose its own number: the
# ThreadSanitizer run sets 2 so that reload, drain and the admin endpoint
# meet more than one worker thread.
WORKERS = int(os.environ.get("CUTOFF_WORKERS", "") or 1)
# Scheduling slack on top of the spec's max(50 ms, 5 %) tolerance.
SLACK = float(os.environ.get("CUTOFF_TIME_SLACK_MS", "") or 100) / 1000.0 * SCALE
REPO = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
# The first line of a sanitizer report: TSan's "WARNING: ThreadSanitizer:
# data race", ASan's and LSan's "==PID==ERROR: AddressSanitizer: ...", UBSan's
# "file:line:col: runtime error: ...".
SANITIZER_RE = re.compile(r"^.*(?:(?:WARNING|ERROR): (?:Thread|Address|Leak)Sanitizer"
                          r"|: runtime error: ).*$", re.M)
DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def ms(value) -> float:
    """Scaled seconds from unscaled milliseconds (number) or a duration string."""
    if isinstance(value, str):
        m = DURATION_RE.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r}")
        value = int(m.group(1)) * _UNIT_MS[m.group(2)]
    return value * SCALE / 1000.0


def dur(value) -> str:
    """A config duration string, scaled: dur(300) -> "300ms" (x SCALE)."""
    return f"{round(ms(value) * 1000)}ms"


def tolerance(deadline_s: float) -> float:
    """How late a deadline may fire: SPEC's max(50 ms, 5 %) plus slack."""
    return max(0.05, 0.05 * deadline_s) + SLACK


def shown(value) -> str:
    """A config duration (unscaled ms or "250ms") as cutoff prints it once
    scaled, e.g. in Proxy-Status details: Duration::to_string, the largest
    unit that divides it exactly (shown(500) is "500ms", or "1s" at scale 2)."""
    v = round(ms(value) * 1000)
    if v == 0:
        return "0s"
    for unit, n in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if v % n == 0:
            return f"{v // n}{unit}"
    return f"{v}ms"


def time_limit(seconds: float):
    """Decorates a test method with its own hard time limit (seconds, scaled)
    instead of its class's TIME_LIMIT."""
    def mark(fn):
        fn.time_limit = seconds
        return fn
    return mark


def find_binary():
    env = os.environ.get("CUTOFF_BIN")
    if env:
        return env
    for d in ("build", "build-test"):
        p = REPO / d / "cutoff"
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


# ---------------------------------------------------------------------------
# Config

# Unscaled; durations in keys ending in _timeout/_duration are scaled on write.
DEFAULT_CONFIG = {
    # One event loop, so one upstream pool: reuse is deterministic (unless
    # CUTOFF_WORKERS says otherwise).
    "workers": WORKERS,
    "linger_timeout": "200ms",
    "drain_timeout": "1s",
    # Tests tell their exchanges apart by query string in the access log and
    # /connections; the redaction tests (test_admin.py) delete this to see
    # the default.
    "log_query": True,
    "listen": {
        "address": "127.0.0.1:0",
        "request_header_timeout": "500ms",
        "client_keepalive_timeout": "300ms",
        "connect_ports": ["*"],
    },
    "admin": {"address": "off"},
    "access_log": {"format": "text", "path": "-"},
    "defaults": {
        "connect_timeout": "300ms",
        "response_header_timeout": "400ms",
        "idle_timeout": "300ms",
        "upstream_keepalive_timeout": "300ms",
        "tunnel_idle_timeout": "300ms",
        "teardown": "reset",
    },
}

DELETE = object()  # an override value that removes the key


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is DELETE:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _scale_value(key: str, v):
    if isinstance(v, str) and (key.endswith("_timeout") or key.endswith("_duration")) \
            and DURATION_RE.match(v):
        return dur(v)
    return v


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(_scale_value(k, x))}"
                                for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def to_toml(config: dict, routes=()) -> str:
    """Top-level scalars, then [tables], then [[route]]s; durations scaled."""
    lines = []
    for k, v in config.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {_toml_value(_scale_value(k, v))}")
    for k, v in config.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            for kk, vv in v.items():
                lines.append(f"{kk} = {_toml_value(_scale_value(kk, vv))}")
    for r in routes:
        lines.append("\n[[route]]")
        for k, v in r.items():
            lines.append(f"{k} = {_toml_value(_scale_value(k, v))}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# The access log

ACCESS_RE = re.compile(r'(\S+):(\d+) "(\S*) (\S*) (HTTP/\d\.\d|-)"((?: \S+=\S*)*)')


def parse_access_line(line: str):
    m = ACCESS_RE.search(line)
    if not m:
        return None
    e = {"client": f"{m.group(1)}:{m.group(2)}", "client_port": int(m.group(2)),
         "method": m.group(3), "target": m.group(4), "version": m.group(5), "line": line}
    for kv in m.group(6).split():
        k, _, v = kv.partition("=")
        e[k] = v
    return e


# ---------------------------------------------------------------------------
# Name resolution

def localhost_addresses():
    """The addresses `localhost` has in /etc/hosts when the system looks
    there first (so resolving it sends no packet); [] otherwise."""
    try:
        with open("/etc/nsswitch.conf") as f:
            nss = f.read()
    except OSError:
        nss = "hosts: files dns"  # glibc's default
    m = re.search(r"^hosts:\s*(\S+)", nss, re.M)
    if not m or m.group(1) != "files":
        return []
    out = []
    try:
        with open("/etc/hosts") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and "localhost" in (x.lower() for x in fields[1:]):
                    out.append(fields[0])
    except OSError:
        return []
    return out



# ---------------------------------------------------------------------------
# Processes

def _pdeathsig_prefix():
    # If the test runner dies (ctest timeout kills it with SIGKILL), the kernel
    # kills our children too: nothing is left running.
    p = shutil.which("setpriv")
    if p:
        return [p, "--pdeathsig", "KILL", "--"]
    return []


def nofile_setter(nofile):
    """A preexec_fn that gives the child RLIMIT_NOFILE (soft, hard), or None."""
    if nofile is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)


def run_tool(argv, timeout, env=None, input=None):
    """Runs a client tool (curl, wget...) with a hard timeout; CompletedProcess."""
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(_pdeathsig_prefix() + list(argv), capture_output=True,
                          timeout=timeout, env=env, input=input, stdin=stdin)


class Cutoff:
    """One cutoff process with its own temp config, stdout and stderr files."""

    def __init__(self, config: dict | None = None, routes=(), binary: str | None = None,
                 extra_args=(), nofile: tuple[int, int] | None = None):
        self.access_floor = 0  # wait_access() ignores the entries before it
        self.config = merge(DEFAULT_CONFIG, config or {})
        self.routes = [dict(r) for r in routes]
        self.binary = binary or find_binary()
        self.extra_args = list(extra_args)
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE to start with, or inherited
        self.proc = None
        self.addr = None
        self.killed = False
        self.returncode = None
        self.baseline_fds = None
        self.dir = None
        self.final_report = None  # the sanitizer report, read when the process ended
        self.report_blamed = False  # a test already failed with its sanitizer report

    # -- lifecycle -------------------------------------------------------

    def write_config(self) -> str:
        self.dir = self.dir or tempfile.mkdtemp(prefix="cutoff-it-")
        path = os.path.join(self.dir, "cutoff.toml")
        with open(path, "w") as f:
            f.write(to_toml(self.config, self.routes))
        return path

    def start(self, timeout: float | None = None):
        if not self.binary or not os.path.exists(self.binary):
            raise FileNotFoundError(f"cutoff binary not found ({self.binary!r}); set CUTOFF_BIN")
        cfg = self.write_config()
        out, err = self.open_outputs()
        # An ephemeral port on loopback, unless the test listens elsewhere
        # (cutoff refuses a flag given twice).
        listen = [] if any(a.startswith("--listen") for a in self.extra_args) else [
            "--listen", "127.0.0.1:0"]
        argv = [self.binary, "--config", cfg] + listen + self.extra_args
        self.proc = subprocess.Popen(_pdeathsig_prefix() + argv, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, preexec_fn=nofile_setter(self.nofile))
        out.close()
        err.close()
        _ALL.add(self)
        deadline = time.monotonic() + (timeout or 5.0 * SCALE)
        while True:
            m = LISTEN_RE.search(self.stderr_text())
            if m:
                self.addr = (m.group(1), int(m.group(2)))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"cutoff exited with {self.proc.returncode} before listening:\n"
                                   + self.stderr_text()[-3000:])
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("cutoff did not log `listening on` in time:\n"
                                   + self.stderr_text()[-3000:])
            time.sleep(0.01)
        self.baseline_fds = self.settled_fd_count()
        return self

    def open_outputs(self):
        """The files that become cutoff's stdout and stderr (closed here once
        cutoff has them)."""
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        return open(self.stdout_path, "wb"), open(self.stderr_path, "wb")

    def run_to_exit(self, timeout: float = 10.0) -> subprocess.CompletedProcess:
        """Runs cutoff with this config when it must refuse to start: waits
        for it to exit (killed after `timeout` s, scaled, raising
        TimeoutExpired); stdout and stderr as text."""
        if not self.binary or not os.path.exists(self.binary):
            raise FileNotFoundError(f"cutoff binary not found ({self.binary!r}); set CUTOFF_BIN")
        cfg = self.write_config()
        # An ephemeral port on loopback, unless the test listens elsewhere
        # (cutoff refuses a flag given twice).
        listen = [] if any(a.startswith("--listen") for a in self.extra_args) else [
            "--listen", "127.0.0.1:0"]
        argv = [self.binary, "--config", cfg] + listen + self.extra_args
        return subprocess.run(_pdeathsig_prefix() + argv, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout * SCALE,
                              preexec_fn=nofile_setter(self.nofile))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` s (recorded in .killed)."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace * SCALE)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        self.proc = None
        _ALL.discard(self)
        self.final_report = self.sanitizer_report()
        _STOPPED.append(self)
        return self.returncode

    def cleanup_dir(self):
        if self.dir and os.environ.get("CUTOFF_KEEP_LOGS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.cleanup_dir()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def port(self):
        return self.addr[1]

    @property
    def url(self):
        return f"http://{self.addr[0]}:{self.addr[1]}"

    # -- output ----------------------------------------------------------

    def stderr_text(self) -> str:
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def sanitizer_report(self) -> str | None:
        """The first sanitizer report on stderr, up to its SUMMARY line
        (at most 80 lines), or None. Kept once the process has ended, so
        that it outlives cleanup_dir()."""
        if self.final_report is not None:
            return self.final_report
        try:
            text = self.stderr_text()
        except (AttributeError, FileNotFoundError):  # never started, or cleaned up
            return None
        m = SANITIZER_RE.search(text)
        if not m:
            return None
        lines = text[m.start():].splitlines()[:80]
        for i, line in enumerate(lines):
            if line.startswith("SUMMARY:"):
                lines = lines[:i + 1]
                break
        return "\n".join(lines)

    def blame_report(self) -> str | None:
        """The sanitizer report, once: None if there is none or a test has
        already failed with it."""
        if self.report_blamed:
            return None
        report = self.sanitizer_report()
        if report:
            self.report_blamed = True
        return report

    def stdout_text(self) -> str:
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_entries(self) -> list[dict]:
        return [e for e in map(parse_access_line, self.stdout_text().splitlines()) if e]

    def reload(self, timeout: float = 3.0):
        """Writes the config (self.config, self.routes) and sends SIGHUP;
        returns once `configuration reloaded` is on stderr (timeout scaled)."""
        self.write_config()
        mark = len(self.stderr_text())
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout * SCALE
        while "configuration reloaded" not in self.stderr_text()[mark:]:
            if time.monotonic() > deadline:
                raise AssertionError("no `configuration reloaded` on stderr after SIGHUP")
            time.sleep(0.01)

    def wait_access(self, pred=None, timeout: float = 1.5, target: str | None = None,
                    count: int = 1, since: int = 0):
        """Polls the access log until `count` entries match; returns the last
        (count=1) or the list. `target` matches a substring of the target.
        `since`: only entries after the first `since` (a len(access_entries())
        taken earlier), so that a reused port cannot match an older line;
        never before `access_floor`, where the current test began."""
        deadline = time.monotonic() + timeout * SCALE
        since = max(since, self.access_floor)
        while True:
            found = [e for e in self.access_entries()[since:]
                     if (target is None or target in e["target"]) and (pred is None or pred(e))]
            if len(found) >= count:
                return found[-1] if count == 1 else found
            if time.monotonic() > deadline:
                tail = "\n".join(self.stdout_text().splitlines()[-10:])
                raise AssertionError(f"access log: wanted {count} entries for {target!r}, "
                                     f"got {len(found)}; last lines:\n{tail}")
            time.sleep(0.02)

    # -- descriptors -----------------------------------------------------

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def fds(self) -> list[str]:
        d = f"/proc/{self.proc.pid}/fd"
        out = []
        for n in os.listdir(d):
            try:
                out.append(f"{n} -> {os.readlink(os.path.join(d, n))}")
            except OSError:
                pass
        return out

    def settled_fd_count(self, samples: int = 3, interval: float = 0.05) -> int:
        """The fd count once it is the same for `samples` readings in a row."""
        last, same = None, 0
        deadline = time.monotonic() + 2.0 * SCALE
        while time.monotonic() < deadline:
            n = self.fd_count()
            same = same + 1 if n == last else 1
            last = n
            if same >= samples:
                break
            time.sleep(interval)
        return last

    def wait_fds_back_to(self, baseline: int, timeout: float) -> tuple[bool, int]:
        deadline = time.monotonic() + timeout
        while True:
            n = self.fd_count()
            if n <= baseline:
                return True, n
            if time.monotonic() > deadline:
                return False, n
            time.sleep(0.02)

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def check_config(self, text: str):
        """Runs `cutoff --check --config` on text; CompletedProcess."""
        self.dir = self.dir or tempfile.mkdtemp(prefix="cutoff-it-")
        path = os.path.join(self.dir, "check.toml")
        with open(path, "w") as f:
            f.write(text)
        return run_tool([self.binary, "--check", "--config", path], timeout=10 * SCALE)


_ALL: set[Cutoff] = set()
# Every cutoff stopped so far, for the sanitizer report check after each test.
_STOPPED: list[Cutoff] = []


def _kill_all():
    for c in list(_ALL):
        try:
            c.stop(grace=1.0)
        except Exception:
            pass


atexit.register(_kill_all)


# ---------------------------------------------------------------------------
# The raw client

class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.trailers: list[tuple[str, str]] = []
        self.interim: list["Response"] = []  # 1xx answers before this one
        self.complete = False  # the body's framing said it was whole
        self.framing = None    # "length", "chunked", "close", "none"
        self.raw_head = b""
        self.t_head = None
        self.t_done = None

    def header(self, name: str, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def has_token(self, name: str, token: str) -> bool:
        return any(token.lower() == t.strip().lower()
                   for v in self.headers_named(name) for t in v.split(","))

    @property
    def proxy_status(self) -> dict:
        return parse_proxy_status(self.header("Proxy-Status") or "")

    @property
    def echo(self) -> dict:
        """The request head the fake upstream saw (from /echo's X-Echo-Head)."""
        return json.loads(self.header("X-Echo-Head"))

    def __repr__(self):
        return (f"<Response {self.status} {self.reason!r} framing={self.framing} "
                f"complete={self.complete} body={len(self.body)}B headers={self.headers}>")


def parse_proxy_status(value: str) -> dict:
    """`cutoff; error=x; details="..."` -> {"name": "cutoff", "error": "x", ...}."""
    out = {}
    if not value:
        return out
    parts = re.findall(r'(?:[^;"]|"(?:[^"\\]|\\.)*")+', value)
    out["name"] = parts[0].strip()
    for p in parts[1:]:
        k, _, v = p.strip().partition("=")
        v = v.strip()
        if v.startswith('"') and v.endswith('"'):
            v = v[1:-1]
        out[k.strip()] = v
    return out


class ConnectionEnded(Exception):
    def __init__(self, how, partial=None):
        super().__init__(f"connection ended ({how}) mid-response")
        self.how = how
        self.partial = partial


def build_request(method: str, target: str, headers=(), body: bytes | None = None,
                  version: str = "HTTP/1.1", host: str | bool = True) -> bytes:
    """A request head (+ body). host=True derives Host from an absolute target;
    a string sets it; False leaves it out. A Content-Length is added for a body
    unless the headers already frame it."""
    hs = list(headers)
    names = {k.lower() for k, _ in hs}
    if host is True and "host" not in names and "://" in target:
        hs.insert(0, ("Host", target.split("://", 1)[1].split("/", 1)[0]))
    elif isinstance(host, str):
        hs.insert(0, ("Host", host))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hs.append(("Content-Length", str(len(body))))
    out = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
    return out.encode("latin-1") + (body or b"")


class Client:
    """A raw TCP client: send bytes, parse responses, see how the connection ends.

    `end` is None while open, else "fin" (recv returned b"") or "rst"
    (ECONNRESET); `end_time` is when it was seen."""

    def __init__(self, addr, timeout: float = 5.0, connect: bool = True):
        self.addr = addr
        self.timeout = timeout * SCALE
        self.buf = bytearray()
        self.end = None
        self.end_time = None
        self.sock = None
        if connect:
            self.connect()

    def connect(self):
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.t_connect = time.monotonic()
        return self

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data: bytes):
        self.t_sent = time.monotonic()
        self.sock.sendall(data)
        return self

    def request(self, method, target, headers=(), body=None, version="HTTP/1.1", **kw):
        return self.send(build_request(method, target, headers, body, version, **kw))

    def _recv(self, deadline) -> bool:
        """Reads once into buf; False when the connection ended (recorded)."""
        if self.end:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("client read timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError):
            self.end, self.end_time = "rst", time.monotonic()
            return False
        except socket.timeout:
            raise TimeoutError("client read timed out")
        if not data:
            self.end, self.end_time = "fin", time.monotonic()
            return False
        self.buf += data
        return True

    def _line(self, deadline, resp) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            if not self._recv(deadline):
                raise ConnectionEnded(self.end, resp)

    def _exact(self, n, deadline, resp) -> bytes:
        while len(self.buf) < n:
            if not self._recv(deadline):
                resp.body += bytes(self.buf)
                self.buf.clear()
                raise ConnectionEnded(self.end, resp)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _deadline(self, timeout):
        return time.monotonic() + (timeout * SCALE if timeout else self.timeout)

    def read_head(self, timeout: float | None = None) -> Response:
        """Reads one response head (1xx answers are returned as they come)."""
        return self._read_head(self._deadline(timeout))

    def _read_head(self, deadline) -> Response:
        resp = Response()
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if not self._recv(deadline):
                raise ConnectionEnded(self.end, None)
        raw = bytes(self.buf[:i + 4])
        del self.buf[:i + 4]
        resp.raw_head = raw
        resp.t_head = time.monotonic()
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        resp.version, resp.status = parts[0], int(parts[1])
        resp.reason = parts[2] if len(parts) > 2 else ""
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                resp.headers.append((k, v.strip()))
        return resp

    def read_response(self, method: str = "GET", timeout: float | None = None,
                      allow_partial: bool = True) -> Response:
        """Reads one whole response; 1xx heads go to .interim. A connection
        that ends mid-body returns the partial response (complete=False) when
        allow_partial, else raises ConnectionEnded."""
        deadline = self._deadline(timeout)
        interim = []
        while True:
            resp = self._read_head(deadline)
            if 100 <= resp.status < 200 and resp.status != 101:
                interim.append(resp)
                continue
            break
        resp.interim = interim
        try:
            self._read_body(resp, method, deadline)
        except ConnectionEnded:
            if not allow_partial:
                raise
        resp.t_done = time.monotonic()
        return resp

    def _read_body(self, resp, method, deadline):
        te = (resp.header("Transfer-Encoding") or "").lower()
        if (method == "HEAD" or resp.status in (101, 204, 304) or 100 <= resp.status < 200
                or (method == "CONNECT" and 200 <= resp.status < 300)):
            resp.framing, resp.complete = "none", True
        elif "chunked" in te:
            resp.framing = "chunked"
            body = bytearray()
            while True:
                line = self._line(deadline, resp)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                body += self._exact(size, deadline, resp)
                resp.body = bytes(body)
                self._exact(2, deadline, resp)
            resp.body = bytes(body)
            while True:
                line = self._line(deadline, resp)
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                resp.trailers.append((k, v.strip()))
            resp.complete = True
        elif resp.header("Content-Length") is not None:
            resp.framing = "length"
            resp.body = self._exact(int(resp.header("Content-Length")), deadline, resp)
            resp.complete = True
        else:
            resp.framing = "close"
            while self._recv(deadline):
                pass
            resp.body, self.buf = bytes(self.buf), bytearray()
            resp.complete = self.end == "fin"

    def wait_end(self, timeout: float = 2.0):
        """Reads (keeping the bytes in .buf) until FIN or RST; returns the
        kind, or "open" if nothing ended within timeout (scaled)."""
        deadline = time.monotonic() + timeout * SCALE
        try:
            while self._recv(deadline):
                pass
        except TimeoutError:
            return "open"
        return self.end

    def read_exactly(self, n: int, timeout: float | None = None) -> bytes:
        """n raw bytes (for tunnels); raises ConnectionEnded if it ends first."""
        deadline = self._deadline(timeout)
        while len(self.buf) < n:
            if not self._recv(deadline):
                raise ConnectionEnded(self.end)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def abort(self):
        """Closes with RST."""
        if self.sock:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.sock = None


def socket_count(state: str, port: int) -> int:
    """Sockets in `state` (an ss state filter: syn-sent, established, ...)
    whose local or remote port is `port` (from ss -tan)."""
    if not shutil.which("ss"):
        raise unittest.SkipTest("ss (iproute2) not installed")
    out = subprocess.run(["ss", "-tanH", "state", state], capture_output=True, text=True,
                         timeout=10).stdout
    n = 0
    for line in out.splitlines():
        addrs = [c for c in line.split() if ":" in c]
        if any(a.rsplit(":", 1)[1] == str(port) for a in addrs[-2:]):
            n += 1
    return n


def time_wait_count(port: int) -> int:
    """TIME_WAIT sockets whose local or remote port is `port` (from ss -tan)."""
    if not shutil.which("ss"):
        raise unittest.SkipTest("ss (iproute2) not installed")
    out = subprocess.run(["ss", "-tanH", "state", "time-wait"], capture_output=True,
                         text=True, timeout=10).stdout
    n = 0
    for line in out.splitlines():
        cols = line.split()
        # Recv-Q Send-Q Local:Port Peer:Port (the State column is left out
        # when a state filter is given).
        addrs = [c for c in cols if ":" in c]
        if any(a.rsplit(":", 1)[1] == str(port) for a in addrs[-2:]):
            n += 1
    return n


# ---------------------------------------------------------------------------
# The admin listener

ADMIN_ON = {"admin": {"address": "127.0.0.1:0"}}
ADMIN_RE = re.compile(r"admin listening on (\S+):(\d+)")


def admin_addr(c):
    """The admin listener's (host, port), from cutoff's stderr."""
    if getattr(c, "_admin_addr", None) and c._admin_pid == c.pid:
        return c._admin_addr
    deadline = time.monotonic() + 2.0 * SCALE
    while True:
        m = ADMIN_RE.search(c.stderr_text())
        if m:
            c._admin_addr, c._admin_pid = (m.group(1), int(m.group(2))), c.pid
            return c._admin_addr
        if time.monotonic() > deadline:
            raise AssertionError("no `admin listening on` line on stderr:\n"
                                 + c.stderr_text()[-2000:])
        time.sleep(0.01)


def admin_get(c, path, timeout=2.0):
    """One GET on the admin listener; the whole Response."""
    host, port = admin_addr(c)
    cl = Client((host, port), timeout)
    try:
        cl.request("GET", path, host=f"{host}:{port}")
        return cl.read_response(timeout=timeout)
    finally:
        cl.close()


# ---------------------------------------------------------------------------
# unittest glue

class TestTimeLimit(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeLimit("the test exceeded its hard time limit")


class BackgroundUpload:
    """Sends `total` bytes of request body on a client's socket from a thread,
    as fast as the peer takes them, until stopped: a client uploading to an
    upstream that never reads. Use as a context manager around the wait."""

    def __init__(self, client, total: int):
        self._stop = threading.Event()
        self._sock = client.sock.dup()
        self._sock.settimeout(0.05)
        self._total = total
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        chunk = b"x" * 65536
        sent = 0
        while sent < self._total and not self._stop.is_set():
            try:
                sent += self._sock.send(chunk)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2 * SCALE)
        self._sock.close()


class Dribble:
    """Sends `data` on a client's socket `piece` bytes (default one) per
    `interval` seconds from a thread, until done or stopped: a slowloris
    client. Use as a context manager around the wait; leaving it stops the
    sending. A send that waits `give_up` seconds (scaled) ends the sending:
    the peer has stopped reading. Give up well before the peer may reset the
    connection when the test asserts that reset: a send that is waiting then
    is the call that takes the error, and the reader sees only the end."""

    def __init__(self, client, data: bytes, interval: float, piece: int = 1,
                 give_up: float = 1.0):
        self._stop = threading.Event()
        self._sock = client.sock.dup()
        self._sock.settimeout(give_up * SCALE)
        self._data = data
        self._interval = interval
        self._piece = piece
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for i in range(0, len(self._data), self._piece):
            if self._stop.wait(self._interval):
                return
            try:
                self._sock.sendall(self._data[i:i + self._piece])
            except OSError:
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()  # a client stops sending once it has its answer
        self._thread.join(2 * SCALE)
        self._sock.close()


def wait_until(fn, what, timeout=2.0, interval=0.01):
    """Polls fn() until it is true (timeout in seconds, scaled)."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class CutoffTestCase(unittest.TestCase):
    """Base class: one cutoff per class (CONFIG / ROUTES merged over the
    defaults), per-test hard time limit (TIME_LIMIT seconds, scaled), and the
    after-test check that nothing was left behind."""

    CONFIG: dict = {}
    ROUTES: list = []
    TIME_LIMIT = 10.0
    SETTLE = 2.0  # seconds (scaled) allowed for connections/fds to wind down
    NEEDS_CUTOFF = True
    cutoff: Cutoff | None = None

    @classmethod
    def setUpClass(cls):
        if not cls.NEEDS_CUTOFF:
            return
        if not find_binary():
            raise unittest.SkipTest("cutoff binary not found: set CUTOFF_BIN or build build/cutoff")
        cls.cutoff = Cutoff(cls.CONFIG, cls.ROUTES).start()

    @classmethod
    def tearDownClass(cls):
        c = cls.cutoff
        if c is not None:
            rc = c.stop()
            cls.cutoff = None
            report = c.blame_report()
            if report:
                raise AssertionError(f"cutoff (class {cls.__name__}) made a sanitizer report:\n"
                                     + report)
            if c.killed:
                raise AssertionError(f"cutoff (class {cls.__name__}) ignored SIGTERM for "
                                     f"{5 * SCALE:.0f} s and was killed with SIGKILL:\n"
                                     + c.stderr_text()[-2000:])
            if rc != 0:
                raise AssertionError(f"cutoff (class {cls.__name__}) exited {rc} on SIGTERM:\n"
                                     + c.stderr_text()[-2000:])
            c.cleanup_dir()

    def setUp(self):
        method = getattr(self, self._testMethodName, None)
        limit = getattr(method, "time_limit", self.TIME_LIMIT) * SCALE
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        faulthandler.dump_traceback_later(limit + 20, exit=True)

        def disarm():
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            faulthandler.cancel_dump_traceback_later()
        self.addCleanup(disarm)  # registered first: runs last
        # Next to last: after the cleanups that stop this test's own cutoffs.
        self.addCleanup(self._check_sanitizer_reports, len(_STOPPED))
        self._servers = []
        self._clients = []
        self._t0 = time.monotonic()
        c = type(self).cutoff
        if c is not None:
            if not c.alive():
                # A previous test killed it; that test reported it. Start anew.
                c.stop()
                c.cleanup_dir()
                type(self).cutoff = c = Cutoff(self.CONFIG, self.ROUTES).start()
            # A test that leaked fds failed already; measure from where we are.
            ok, n = c.wait_fds_back_to(c.baseline_fds, 0.5 * SCALE)
            self.fd_baseline = c.baseline_fds if ok else n
            # Upstream ports come back in later tests: a line an earlier
            # test left must not answer this test's wait_access().
            c.access_floor = len(c.access_entries())

    def tearDown(self):
        for cl in self._clients:
            cl.close()
        c = type(self).cutoff
        failed = self._failed_so_far()
        if c is not None and c.alive() and failed:
            try:  # a crash shows as FIN/RST at the client a moment before exit
                c.proc.wait(0.3)
            except subprocess.TimeoutExpired:
                pass
        if c is not None and not c.alive():
            report = c.blame_report()
            self.fail(f"cutoff died during this test (exit {c.proc.returncode}); "
                      + (f"sanitizer report:\n{report}" if report
                         else "stderr tail:\n" + c.stderr_text()[-2000:]))
        if failed:
            return  # the failure is already reported; skip the cleanliness check
        self.assert_nothing_left()

    def _check_sanitizer_reports(self, stopped_before: int):
        """Fails the test if a cutoff it stopped, or the class's cutoff, made
        a sanitizer report that no test has failed with yet."""
        cutoffs = _STOPPED[stopped_before:]
        c = type(self).cutoff
        if c is not None:
            cutoffs.append(c)
        reports = [r for r in (x.blame_report() for x in cutoffs) if r]
        if reports:
            self.fail("cutoff made a sanitizer report:\n" + "\n\n".join(reports))

    def wait_for(self, fn, what, timeout=2.0, interval=0.01):
        """Polls fn() until it is true, or fails the test (timeout scaled)."""
        return wait_until(fn, what, timeout, interval)

    def _failed_so_far(self) -> bool:
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in list(result.failures) + list(result.errors))

    def assert_nothing_left(self):
        problems = []
        c = type(self).cutoff
        for srv in self._servers:
            if hasattr(srv, "wait_all_closed") and not srv.wait_all_closed(self.SETTLE * SCALE):
                problems.append(f"{srv.name}:{srv.port} connections still open: "
                                f"{srv.open_connections()}")
        for extra in getattr(self, "_extra_cutoffs", []):
            if extra.alive():
                ok, n = extra.wait_fds_back_to(extra.baseline_fds, self.SETTLE * SCALE)
                if not ok:
                    problems.append(f"dedicated cutoff fds {n} != baseline {extra.baseline_fds}")
        if c is not None and c.alive():
            ok, n = c.wait_fds_back_to(self.fd_baseline, self.SETTLE * SCALE)
            if not ok:
                problems.append(f"cutoff fds {n} != baseline {self.fd_baseline}:\n  "
                                + "\n  ".join(sorted(c.fds())))
        if problems:
            self.fail("left behind:\n" + "\n".join(problems))

    # -- fixtures ----------------------------------------------------------

    def _own(self, srv):
        self._servers.append(srv)
        self.addCleanup(srv.stop)
        return srv

    def upstream(self, host: str = fakenet.LOOPBACK, port: int = 0) -> fakeupstream.FakeUpstream:
        return self._own(fakeupstream.FakeUpstream(host, port).start())

    def tls_upstream(self, cert=None, key=None, handshake="ok",
                     **kw) -> tlsupstream.TlsUpstream:
        """A FakeUpstream behind TLS (tlsupstream): handshake "ok" with
        cert/key, "silent" or "alert"."""
        return self._own(tlsupstream.TlsUpstream(cert, key, handshake, **kw).start())

    def echo_server(self) -> fakenet.RawEchoServer:
        return self._own(fakenet.RawEchoServer().start())

    def blackhole(self, on_fin="close") -> fakenet.Blackhole:
        return self._own(fakenet.Blackhole(on_fin=on_fin).start())

    def loop_server(self, mode: str) -> fakeload.LoopServer:
        """A one-thread "ok" or "blackhole" server for load tests (fakeload)."""
        return self._own(fakeload.LoopServer(mode).start())

    def full_backlog(self, host: str = fakenet.LOOPBACK, port: int = 0) -> fakenet.FullBacklog:
        try:
            srv = fakenet.FullBacklog(host=host, port=port).start()
        except RuntimeError as e:
            self.skipTest(f"cannot make a full-backlog listener here: {e}")
        self.addCleanup(srv.stop)
        return srv

    def closed_port(self, host: str = fakenet.LOOPBACK, port: int = 0) -> fakenet.ClosedPort:
        srv = fakenet.ClosedPort(host, port).start()
        self.addCleanup(srv.stop)
        return srv

    def dedicated_cutoff(self, config=None, routes=(), **kw) -> Cutoff:
        """A cutoff just for this test (config merged over the defaults);
        keyword arguments go to Cutoff (extra_args, nofile)."""
        c = Cutoff(config, routes, **kw).start()
        if not hasattr(self, "_extra_cutoffs"):
            self._extra_cutoffs = []
        self._extra_cutoffs.append(c)

        def stop():
            c.stop()
            if c.killed:
                self.fail("dedicated cutoff ignored SIGTERM for 5 s and was SIGKILLed")
            c.cleanup_dir()
        self.addCleanup(stop)
        return c

    def client(self, cutoff: Cutoff | None = None, timeout: float = 5.0) -> Client:
        cl = Client((cutoff or self.cutoff).addr, timeout)
        self._clients.append(cl)
        return cl

    @staticmethod
    def url(srv, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{srv.port}{path}"

    @staticmethod
    def hostport(srv) -> str:
        """The target as cutoff names it in Proxy-Status details."""
        return f"127.0.0.1:{srv.port}"

    def connect_tunnel(self, port: int, cutoff=None, host: str = "127.0.0.1"):
        """Sends CONNECT host:port; returns (response, client, time sent)."""
        cl = self.client(cutoff)
        t0 = time.monotonic()
        cl.send(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        return cl.read_response("CONNECT"), cl, t0

    def round_trip(self, cl: Client, data: bytes, timeout: float = 10.0) -> bytes:
        """Sends data through a tunnel and reads as much back, writing from a
        thread so that a big payload cannot deadlock."""
        errors = []

        def writer():
            try:
                for i in range(0, len(data), 65536):
                    cl.sock.sendall(data[i:i + 65536])
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            got = cl.read_exactly(len(data), timeout=timeout)
        finally:
            t.join(5 * SCALE)
        self.assertFalse(errors, errors)
        return got

    def exchange(self, method, target, headers=(), body=None, version="HTTP/1.1",
                 cutoff=None, timeout=5.0, **kw):
        """Opens a client, sends one request, reads one response.
        Returns (response, client, elapsed seconds)."""
        cl = self.client(cutoff, timeout)
        t0 = time.monotonic()
        cl.request(method, target, headers, body, version, **kw)
        resp = cl.read_response(method, timeout)
        return resp, cl, time.monotonic() - t0

    # -- assertions --------------------------------------------------------

    def assertElapsed(self, elapsed: float, deadline_s: float, what: str = "", early: float = 0.0):
        """Not before the deadline (minus `early`, for a start we measured a
        little late), not later than max(50 ms, 5 %) + slack after it."""
        lo = deadline_s - 0.005 - early
        hi = deadline_s + tolerance(deadline_s)
        self.assertTrue(lo <= elapsed <= hi,
                        f"{what or 'elapsed'} {elapsed * 1000:.0f} ms outside "
                        f"[{lo * 1000:.0f}, {hi * 1000:.0f}] ms (deadline {deadline_s * 1000:.0f} ms)")

    def assertGenerated(self, resp: Response, status: int, error: str | None = None,
                        close: bool = True, head: bool = False):
        """A response cutoff made itself: status, Proxy-Status error token,
        text/plain one-sentence body (for `head`, a request for HEAD: the
        body's length but no body), Connection: close."""
        self.assertEqual(resp.status, status, f"{resp!r} body={resp.body[:300]!r}")
        if error is not None:
            ps = resp.proxy_status
            self.assertEqual(ps.get("name"), "cutoff", f"Proxy-Status: {resp.header('Proxy-Status')}")
            self.assertEqual(ps.get("error"), error, f"Proxy-Status: {resp.header('Proxy-Status')}")
        ct = resp.header("Content-Type") or ""
        self.assertTrue(ct.startswith("text/plain"), f"Content-Type {ct!r}")
        if head:
            self.assertEqual(resp.body, b"", "a response to HEAD has no body")
            self.assertGreater(int(resp.header("Content-Length") or 0), 0, resp)
        else:
            self.assertTrue(resp.body.strip(), "generated response has an empty body")
        if close:
            self.assertTrue(resp.has_token("Connection", "close"),
                            f"no Connection: close in {resp.headers}")

    def assertDetails(self, resp: Response, target: str | None = None, value: str | None = None,
                      route: str | None = None, also=()):
        """The Proxy-Status details, and the text/plain body (which must say
        the same), name the target host:port, a timeout's value as cutoff
        prints it (see shown()), the route ("route NAME"), and each string
        in `also`. Whole tokens only: "50ms" is not found in "350ms"."""
        details = resp.proxy_status.get("details")
        self.assertTrue(details, f"no details in Proxy-Status: {resp.header('Proxy-Status')!r}")
        body = resp.body.decode("utf-8", "replace")
        # A response to HEAD has its body's length but no body.
        answers_head = not body and int(resp.header("Content-Length") or 0) > 0
        wanted = []
        if target is not None:
            wanted.append((target, rf"(?<![\w.]){re.escape(target)}(?!\d)"))
        if value is not None:
            wanted.append((value, rf"(?<![\w.]){re.escape(value)}(?!\w)"))
        if route is not None:
            wanted.append((f"route {route}", rf"\broute {re.escape(route)}(?![\w-])"))
        for text in also:
            wanted.append((text, re.escape(text)))
        for what, rx in wanted:
            self.assertRegex(details, rx, f"Proxy-Status details do not name {what!r}")
            if not answers_head:
                self.assertRegex(body, rx, f"the text/plain body does not name {what!r}")

    def assertWholeThenFin(self, resp: Response, cl: Client, what: str = "error response",
                           timeout: float = 2.0):
        """The client read the whole response, then the connection ended with
        FIN, not RST, and nothing followed the response."""
        self.assertTrue(resp.complete, f"{what} cut short: {resp!r}")
        end = cl.wait_end(timeout)
        self.assertEqual(end, "fin", f"after the {what} the client saw {end!r}, not a FIN")
        self.assertEqual(bytes(cl.buf), b"", f"bytes after the {what}")

    def assertOutcome(self, target: str, status, outcome: str, route: str, cutoff=None, pred=None):
        """The access log entry whose target contains `target` (and that
        satisfies pred) has this status, outcome and route; returns it."""
        e = (cutoff or self.cutoff).wait_access(pred=pred, target=target)
        self.assertEqual((e.get("status"), e.get("outcome"), e.get("route")),
                         (str(status), outcome, route), e["line"])
        return e

    def assertUpstreamEnd(self, srv, expected, i: int = -1, timeout: float = 2.0):
        """The upstream's view: connection i ended with `expected` (str or set)."""
        rec = srv.wait_end(i, timeout * SCALE)
        want = {expected} if isinstance(expected, str) else set(expected)
        self.assertIn(rec.state, want, f"upstream saw {rec!r}")
        return rec

    def raw_upstream(self, script=("park",), per_conn=()) -> fakenet.RawScriptServer:
        """A RawScriptServer (fakenet): records every byte, answers from a script."""
        return self._own(fakenet.RawScriptServer(script, per_conn).start())
