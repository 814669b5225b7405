#include "cutoff/ca_init.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "cutoff/certificate_fields.hpp"
#include "cutoff/openssl_handles.hpp"

namespace cutoff {
namespace {

// Long enough that nobody has to hand clients a new CA soon; a leaked key is
// guarded against by its file mode, not by a short life.
constexpr int64_t kCaLifetimeS = 3653LL * 86400;
constexpr const char* kCertFile = "ca.pem";
constexpr const char* kKeyFile = "ca-key.pem";

// Six hex digits in the CN tell two cutoff CAs apart in a trust store.
std::string random_suffix() {
  unsigned char bytes[3];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "";
  char text[8];
  std::snprintf(text, sizeof text, "%02x%02x%02x", bytes[0], bytes[1], bytes[2]);
  return text;
}

bool set_ca_name(X509* cert) {
  const std::string cn = "cutoff interception CA " + random_suffix();
  X509_NAME* name = X509_get_subject_name(cert);
  return X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                    reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                    0) == 1 &&
         X509_set_issuer_name(cert, name) == 1;
}

// A CA that signs leaves and nothing else: pathlen:0 forbids intermediates,
// so a leaf that was stolen cannot sign in turn.
X509Ptr make_ca_certificate(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (!cert || !start_certificate(cert.get(), kCaLifetimeS) || !set_ca_name(cert.get()) ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return nullptr;
  }
  X509ExtensionPtr extensions[] = {
      make_extension(NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
      make_extension(NID_key_usage, "critical,keyCertSign,cRLSign"),
      subject_key_identifier(key),
  };
  for (const X509ExtensionPtr& e : extensions) {
    if (!e || X509_add_ext(cert.get(), e.get(), -1) != 1) return nullptr;
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) return nullptr;
  return cert;
}

bool fail(std::string* why, std::string sentence) {
  *why = std::move(sentence);
  return false;
}

// DIR itself is private (0700); missing parents are made as `mkdir -p`
// makes them, since they hold nothing secret.
bool make_directory(const std::string& dir, std::string* why) {
  for (size_t slash = dir.find('/', 1); slash != std::string::npos;
       slash = dir.find('/', slash + 1)) {
    mkdir(dir.substr(0, slash).c_str(), 0755);  // an error shows in DIR's own mkdir
  }
  if (mkdir(dir.c_str(), 0700) == 0) return true;
  int code = errno;
  struct stat st;
  if (code == EEXIST && stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return true;
  if (code == EEXIST) return fail(why, dir + " exists and is not a directory");
  return fail(why, "cannot create the directory " + dir + ": " + std::strerror(code));
}

std::string absolute_path(const std::string& dir) {
  std::unique_ptr<char, decltype(&std::free)> resolved(realpath(dir.c_str(), nullptr), &std::free);
  return resolved ? std::string(resolved.get()) : dir;
}

// O_EXCL: an existing CA is never replaced, not even by a race between two
// runs. The mode is set explicitly because a umask would narrow it, and
// clients running as other users must read the certificate.
bool write_new_file(const std::string& path, const std::string& text, mode_t mode,
                    std::string* why) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0 && errno == EEXIST) {
    return fail(why, path +
                         " already exists, and cutoff ca init never overwrites a CA that clients "
                         "may trust: choose another directory, or remove the old CA's files");
  }
  if (fd < 0) return fail(why, "cannot create " + path + ": " + std::strerror(errno));
  bool ok = fchmod(fd, mode) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  int code = errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    code = errno;
  }
  if (!ok) {
    unlink(path.c_str());
    return fail(why, "cannot write " + path + ": " + std::strerror(code));
  }
  return true;
}

// A TOML basic string.
std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A word the shell reads back as `text`, quoted only when it must be.
std::string shell_word(std::string_view text) {
  bool plain = !text.empty();
  for (char c : text) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view("/._-+:@%,=").find(c) != std::string_view::npos);
  }
  if (plain) return std::string(text);
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void print_next_steps(std::FILE* out, const std::string& cert, const std::string& key) {
  const std::string c = shell_word(cert);
  const char* bundle = "/etc/ssl/certs/ca-certificates.crt";
  std::fprintf(out,
               "Wrote a new CA:\n"
               "  %s      the certificate, valid for 10 years: give it to clients\n"
               "  %s  its private key (mode 0600): whoever reads it can pose as any\n"
               "      site to the clients that trust the certificate, so keep it here\n"
               "\n"
               "1. Tell cutoff where the CA is, and which hosts to intercept, in its\n"
               "   configuration file:\n"
               "\n"
               "   [tls]\n"
               "   ca_cert = %s\n"
               "   ca_key = %s\n"
               "\n"
               "   [[route]]\n"
               "   name = \"intercepted\"\n"
               "   match = { host = \"*.example.com\" }\n"
               "   tls = \"intercept\"\n"
               "\n"
               "2. Make the clients trust it:\n"
               "\n"
               "   curl:  curl --cacert %s URL\n"
               "          or: export CURL_CA_BUNDLE=%s\n"
               "   Node:  export NODE_EXTRA_CA_CERTS=%s\n"
               "          (added to the CAs Node trusts already)\n"
               "   The system's store on Debian or Ubuntu (as root):\n"
               "          cp %s /usr/local/share/ca-certificates/cutoff.crt\n"
               "          update-ca-certificates\n"
               "   Python's ssl, Go:          export SSL_CERT_FILE=%s\n"
               "   Python's requests, pip:    export REQUESTS_CA_BUNDLE=%s\n"
               "          These two replace the CAs a client trusts rather than add one:\n"
               "          point them at a bundle that holds this CA besides the public\n"
               "          ones, such as the system's store once update-ca-certificates\n"
               "          has added it. Pointed at ca.pem alone, they would let clients\n"
               "          verify intercepted hosts only.\n",
               cert.c_str(), key.c_str(), toml_string(cert).c_str(), toml_string(key).c_str(),
               c.c_str(), c.c_str(), c.c_str(), c.c_str(), bundle, bundle);
}

}  // namespace

int run_ca_init(const std::string& dir, std::FILE* out, std::FILE* err) {
  EvpPkeyPtr key = generate_p256_key();
  X509Ptr cert = key ? make_ca_certificate(key.get()) : nullptr;
  const std::string key_pem = cert ? pem_of(key.get()) : "";
  const std::string cert_pem = cert ? pem_of(cert.get()) : "";
  if (key_pem.empty() || cert_pem.empty()) {
    std::fprintf(err, "cutoff: cannot make a CA: %s\n", take_openssl_error().c_str());
    return 1;
  }
  std::string why;
  if (!make_directory(dir, &why)) {
    std::fprintf(err, "cutoff: %s\n", why.c_str());
    return 1;
  }
  const std::string base = absolute_path(dir);
  const std::string key_path = base + "/" + kKeyFile;
  const std::string cert_path = base + "/" + kCertFile;
  if (!write_new_file(key_path, key_pem, 0600, &why)) {
    std::fprintf(err, "cutoff: %s\n", why.c_str());
    return 1;
  }
  // Half a CA is of no use, and would stop the next run.
  if (!write_new_file(cert_path, cert_pem, 0644, &why)) {
    unlink(key_path.c_str());
    std::fprintf(err, "cutoff: %s\n", why.c_str());
    return 1;
  }
  print_next_steps(out, cert_path, key_path);
  return 0;
}

}  // namespace cutoff
