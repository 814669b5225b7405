#pragma once
// A CA in a temporary directory, written by `cutoff ca init`'s own code, for
// the tests of the CA and of the leaf cache.

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cutoff/ca_init.hpp"
#include "cutoff/certificate_authority.hpp"
#include "temp_dir.hpp"

namespace cutoff::testing {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// Runs `cutoff ca init` into `dir`; its exit status, with what it printed.
inline int ca_init(const std::string& dir, std::string* out = nullptr, std::string* err = nullptr) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> o(std::tmpfile(), &std::fclose);
  std::unique_ptr<std::FILE, decltype(&std::fclose)> e(std::tmpfile(), &std::fclose);
  int status = run_ca_init(dir, o.get(), e.get());
  for (auto [file, text] : {std::pair{o.get(), out}, std::pair{e.get(), err}}) {
    if (!text) continue;
    text->clear();
    std::rewind(file);
    for (int c; (c = std::fgetc(file)) != EOF;) text->push_back(static_cast<char>(c));
  }
  return status;
}

// A CA written into a fresh temp dir and loaded.
struct TempCa {
  TempDir dir;
  std::shared_ptr<const CertificateAuthority> ca;
  std::string error;

  TempCa() {
    if (ca_init(dir.path()) == 0) {
      ca = CertificateAuthority::load(dir.file("ca.pem"), dir.file("ca-key.pem"), &error);
    }
  }
};

}  // namespace cutoff::testing
