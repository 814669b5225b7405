#pragma once
// `cutoff ca init DIR`: a fresh CA for TLS interception (SPEC §10), and the
// steps that make cutoff use it and clients trust it.

#include <cstdio>
#include <string>

namespace cutoff {

// Writes DIR/ca.pem (mode 0644) and DIR/ca-key.pem (mode 0600), creating DIR
// (mode 0700) if it is missing, then prints the next steps on `out`. Never
// overwrites a CA: clients may already trust it. Returns the exit status,
// 0 or 1 (with a sentence on `err`).
int run_ca_init(const std::string& dir, std::FILE* out, std::FILE* err);

}  // namespace cutoff
