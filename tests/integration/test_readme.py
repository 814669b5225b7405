"""README.md and the shipped configurations say what cutoff does.

A new user follows the README literally, so its examples are checked:

- Every ```toml block of README.md, every conf/*.toml and the configuration
  inside conf/kubernetes.yaml's ConfigMap must pass `cutoff --check` as
  they stand (no block is wrapped or skipped).
- Every ```json block of README.md must parse.
- Every ```sh block of README.md is run (a block through the proxy, one of
  `cutoff --check` lines, or the interception set-up around `cutoff ca
  init`), unless the line right before it is
  `<!-- readme-test: skip, REASON -->` (a container engine, a cluster, the
  whole suite). An unmarked block this module cannot run fails it, so a new
  block is either run here or consciously excused in the README; a marker
  that precedes no ```sh block fails too.

How a block runs: with bash (`set -euo pipefail`) from the repository root,
`cutoff` on PATH being the binary under test, within a time limit, in its
own process group that is killed afterwards, so nothing it started in the
background outlives it. The README's fixed ports are replaced by free ones
(3128, the proxy, by a cutoff this module starts; 8000, the example's web
server, by a free port), since other programs may hold them. After a line
that starts a server in the background (`... &`) the script waits until
that port accepts, as a reader typing the lines would. A block that goes
through the proxy must leave one access-log line per request in that
cutoff.

`./build.sh run` cannot run as written in the suite: it installs packages,
makes a Release build and then serves on 127.0.0.1:3128 until stopped. What
the suite checks instead is everything the README promises of it except the
package installation and the compiler: build.sh is copied into a temporary
directory whose `build/cutoff` is the binary under test, with stand-ins for
`dpkg-query` (every package installed) and `cmake` (records its arguments).
`./build.sh run --listen 127.0.0.1:PORT --admin off` (PORT a free one) must
then ask cmake for a Release build in build/, pass the extra arguments on to
cutoff (it logs that very port), stay in the foreground (the process started
is the proxy: build.sh ends with exec), serve a request, and exit 0 on
Ctrl-C (SIGINT).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import REPO, SCALE, Cutoff, _pdeathsig_prefix, find_binary, run_tool

README = REPO / "README.md"
SKIP_RE = re.compile(r"^<!-- readme-test: skip, (.+?) -->$")
FENCE_RE = re.compile(r"^```(\w*)\s*$")
# A block may run for this long (scaled); the slowest takes about a second.
BLOCK_LIMIT = 15.0


def blocks(path: Path):
    """(language, first line number, text, marker reason or None) of each
    fenced block, and the line numbers of markers that precede no block."""
    lines = path.read_text().splitlines()
    found, stray = [], []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        prev = lines[i - 1] if i > 0 else ""
        skip = SKIP_RE.match(prev)
        found.append((lang, start + 1, "\n".join(lines[start:end]) + "\n",
                      skip.group(1) if skip else None))
        i = end + 1
    for n, line in enumerate(lines):
        if SKIP_RE.match(line) and not (n + 1 < len(lines)
                                        and lines[n + 1].startswith("```sh")):
            stray.append(n + 1)
    return found, stray


def configmap_toml(path: Path) -> str:
    """The `cutoff.toml: |` literal of the ConfigMap in conf/kubernetes.yaml."""
    lines = path.read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "cutoff.toml: |") + 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    out = []
    for line in lines[start:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        out.append(line[indent:])
    return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_group(argv, cwd, env, timeout):
    """Runs argv in a process group of its own until it exits; whatever is
    left of the group then (a server the block started in the background) is
    killed. Output goes to files, which a leftover cannot hold open.
    CompletedProcess with text."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(_pdeathsig_prefix() + list(argv), cwd=cwd, env=env,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             start_new_session=True)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        out.seek(0)
        err.seek(0)
        text_out, text_err = out.read(), err.read()
    if p.returncode == -signal.SIGKILL:
        raise AssertionError(f"block still running after {timeout:.0f} s:\n{text_out}\n{text_err}")
    return subprocess.CompletedProcess(argv, p.returncode, text_out, text_err)


class ReadmeTest(unittest.TestCase):
    """One test per kind of block; each with a hard limit per subprocess."""

    @classmethod
    def setUpClass(cls):
        cls.binary = find_binary()
        if not cls.binary:
            raise unittest.SkipTest("cutoff binary not found: set CUTOFF_BIN or build build/cutoff")
        cls.binary = os.path.abspath(cls.binary)
        cls.tmp = tempfile.mkdtemp(prefix="cutoff-readme-")
        # `cutoff` on PATH is the binary under test.
        cls.bindir = os.path.join(cls.tmp, "bin")
        os.mkdir(cls.bindir)
        os.symlink(cls.binary, os.path.join(cls.bindir, "cutoff"))
        cls.found, cls.stray = blocks(README)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check(self, text: str, what: str):
        path = os.path.join(self.tmp, "check.toml")
        with open(path, "w") as f:
            f.write(text)
        r = run_tool([self.binary, "--check", "--config", path], timeout=10 * SCALE)
        self.assertEqual(r.returncode, 0, f"{what} fails cutoff --check:\n{text}\n"
                         + r.stdout.decode() + r.stderr.decode())

    def env(self) -> dict:
        return {"PATH": self.bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": self.tmp, "TMPDIR": self.tmp, "LANG": "C.UTF-8"}

    def test_toml_blocks_pass_check(self):
        tomls = [(n, t) for lang, n, t, _ in self.found if lang == "toml"]
        self.assertGreaterEqual(len(tomls), 4, "the README's TOML examples went missing")
        for n, text in tomls:
            with self.subTest(line=n):
                self.check(text, f"README.md line {n}")

    def test_shipped_configs_pass_check(self):
        confs = sorted((REPO / "conf").glob("*.toml"))
        self.assertIn(REPO / "conf" / "ci.toml", confs)
        for path in confs:
            with self.subTest(file=path.name):
                self.check(path.read_text(), f"conf/{path.name}")
        self.check(configmap_toml(REPO / "conf" / "kubernetes.yaml"),
                   "the ConfigMap in conf/kubernetes.yaml")

    def test_json_blocks_parse(self):
        for lang, n, text, _ in self.found:
            if lang == "json":
                with self.subTest(line=n):
                    try:
                        json.loads(text)
                    except ValueError as e:
                        self.fail(f"README.md line {n}: not JSON: {e}")

    def test_skip_markers_precede_sh_blocks(self):
        self.assertEqual(self.stray, [], "readme-test markers not right before a ```sh block "
                         "(README.md line numbers)")

    def test_sh_blocks_run_or_are_excused(self):
        sh = [(n, t) for lang, n, t, skip in self.found if lang == "sh" and skip is None]
        self.assertGreaterEqual(len(sh), 3, "the README's runnable examples went missing")
        for n, text in sh:
            with self.subTest(line=n):
                commands = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
                if len(commands) == 1 and commands[0].split()[:2] == ["./build.sh", "run"]:
                    self.run_build_sh_run(commands[0].split()[2:])
                elif "http_proxy" in text or "-x http://127.0.0.1:3128" in text:
                    self.run_through_proxy(n, text)
                elif all(c.split()[:2] == ["cutoff", "--check"] for c in commands):
                    self.run_block(n, text)
                elif "cutoff ca init" in text:
                    # Sets up interception: makes a CA and checks the
                    # config it wrote; nothing goes through a proxy.
                    self.run_block(n, text)
                else:
                    self.fail(f"README.md line {n}: this ```sh block is neither run by "
                              f"{Path(__file__).name} nor preceded by "
                              "`<!-- readme-test: skip, REASON -->`:\n" + text)

    # -- runners ------------------------------------------------------------

    def script(self, text: str, ports: dict[int, int]) -> str:
        """The block as a bash script: ports replaced, and a wait for each
        server the block starts in the background."""
        out = ["set -euo pipefail"]
        for line in text.splitlines():
            for old, new in ports.items():
                line = re.sub(rf"\b{old}\b", str(new), line)
            out.append(line)
            if line.split("#")[0].rstrip().endswith("&"):
                port = max(int(p) for p in re.findall(r"\b(\d{4,5})\b", line))
                out.append(f"for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{port}) "
                           f"2>/dev/null && break; sleep 0.05; done")
        return "\n".join(out) + "\n"

    def run_block(self, n: int, text: str, ports=None):
        r = run_group(["bash", "-c", self.script(text, ports or {})], cwd=REPO, env=self.env(),
                      timeout=BLOCK_LIMIT * SCALE)
        self.assertEqual(r.returncode, 0, f"README.md line {n} exited {r.returncode}:\n"
                         f"{text}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def run_through_proxy(self, n: int, text: str):
        if not shutil.which("curl"):
            self.skipTest("curl is not installed: the README's examples use it")
        with Cutoff() as c:
            web = free_port()
            r = self.run_block(n, text, {3128: c.port, 8000: web})
            requests = len(re.findall(r"^curl ", text, re.M))
            self.assertEqual(r.stdout.count("<h1>Directory listing for /</h1>"), requests, r.stdout)
            entries = c.wait_access(target=f"127.0.0.1:{web}/", count=requests)
            self.assertEqual([e["status"] for e in entries], ["200"] * requests, entries)

    def run_build_sh_run(self, readme_args):
        root = os.path.join(self.tmp, "repo")
        shims = os.path.join(self.tmp, "shims")
        os.makedirs(os.path.join(root, "build"))
        os.makedirs(shims)
        shutil.copy(REPO / "build.sh", root)
        os.symlink(self.binary, os.path.join(root, "build", "cutoff"))
        calls = os.path.join(self.tmp, "cmake.calls")
        with open(os.path.join(shims, "cmake"), "w") as f:
            f.write(f'#!/bin/sh\necho "$*" >> {calls}\n')
        with open(os.path.join(shims, "dpkg-query"), "w") as f:
            f.write("#!/bin/sh\nprintf installed\n")
        for name in ("cmake", "dpkg-query"):
            os.chmod(os.path.join(shims, name), 0o755)
        env = self.env()
        env["PATH"] = shims + os.pathsep + env["PATH"]
        err_path = os.path.join(self.tmp, "run.err")
        port = free_port()
        argv = ["./build.sh", "run", *readme_args, "--listen", f"127.0.0.1:{port}", "--admin", "off"]
        with open(err_path, "w") as err:
            p = subprocess.Popen(_pdeathsig_prefix() + argv, cwd=root, env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + 5 * SCALE
            m = None
            while m is None and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.02)
                m = re.search(rf"listening on 127\.0\.0\.1:{port}\b", Path(err_path).read_text())
            self.assertIsNotNone(m, "./build.sh run did not start the proxy with the "
                                 "arguments passed on:\n" + Path(err_path).read_text())
            with open(calls) as f:
                self.assertIn("-B build -DCMAKE_BUILD_TYPE=Release", f.read())
            # Foreground: the process started is the proxy itself (exec).
            self.assertEqual(os.path.realpath(f"/proc/{p.pid}/exe"),
                             os.path.realpath(self.binary))
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400 "))
            p.send_signal(signal.SIGINT)  # Ctrl-C
            self.assertEqual(p.wait(timeout=5 * SCALE), 0)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


if __name__ == "__main__":
    unittest.main()
