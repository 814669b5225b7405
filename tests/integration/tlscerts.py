"""Certificates for the TLS tests, made with the openssl command line.

- self_signed(dir, cn, dns=(), ips=()): a self-signed EC P-256 certificate
  and its key, (cert path, key path).
- TestCa(dir, name): a CA of the test's own (EC P-256, valid one day) that
  issues server certificates: ca.issue(stem, dns=(), ips=()) gives
  (cert path, key path) of a leaf with those subjectAltNames, signed by
  the CA, the way a public CA would make it (CA:FALSE, serverAuth, key
  identifiers), so strict verifiers accept it.
- needs_openssl: a unittest skip decorator for machines without openssl.

Every file goes under the directory the caller owns (a temp dir removed
in its tearDown); nothing here touches the network.
"""

from __future__ import annotations

import os
import secrets
import shutil
import unittest

from harness import run_tool

needs_openssl = unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _openssl(*args: str):
    p = run_tool(["openssl", *args], timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n{p.stderr.decode(errors='replace')}")
    return p


def subject_alt_names(dns=(), ips=()) -> str:
    """`DNS:a,IP:127.0.0.1` for an extension line."""
    return ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])


def self_signed(directory: str, cn: str, dns=(), ips=(), stem: str | None = None):
    """A self-signed certificate for cn (and the SANs), valid one day."""
    stem = stem or "self-signed"
    cert, key = os.path.join(directory, f"{stem}.pem"), os.path.join(directory, f"{stem}-key.pem")
    args = ["req", "-x509", *EC_KEY, "-days", "1", "-subj", f"/CN={cn}",
            "-keyout", key, "-out", cert]
    if dns or ips:
        args += ["-addext", f"subjectAltName={subject_alt_names(dns, ips)}"]
    _openssl(*args)
    return cert, key


class TestCa:
    """A certificate authority for test servers; .cert is what a client
    (or cutoff's upstream_ca) trusts."""

    def __init__(self, directory: str, name: str = "cutoff test upstream CA"):
        self.dir = directory
        self.cert = os.path.join(directory, "upstream-ca.pem")
        self.key = os.path.join(directory, "upstream-ca-key.pem")
        _openssl("req", "-x509", *EC_KEY, "-days", "1", "-subj", f"/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", self.key, "-out", self.cert)

    def issue(self, stem: str, dns=(), ips=()):
        """A server certificate for these names, signed by this CA."""
        cert = os.path.join(self.dir, f"{stem}.pem")
        key = os.path.join(self.dir, f"{stem}-key.pem")
        csr = os.path.join(self.dir, f"{stem}.csr")
        ext = os.path.join(self.dir, f"{stem}.ext")
        cn = (list(dns) + list(ips))[0]
        _openssl("req", "-new", *EC_KEY, "-subj", f"/CN={cn}", "-keyout", key, "-out", csr)
        with open(ext, "w") as f:
            f.write("basicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid\n"
                    f"subjectAltName = {subject_alt_names(dns, ips)}\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                 "-set_serial", "0x" + secrets.token_hex(8), "-days", "1", "-extfile", ext,
                 "-out", cert)
        return cert, key
