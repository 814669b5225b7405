#include "cutoff/certificate_authority.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cutoff/ascii.hpp"
#include "cutoff/certificate_fields.hpp"

namespace cutoff {
namespace {

// A CA's PEM file is a few KiB; anything far bigger was not meant.
constexpr off_t kMaxPemBytes = 1 << 20;
// The longest commonName X.509 allows (RFC 5280's ub-common-name).
constexpr size_t kMaxCommonName = 64;

using FilePtr = std::unique_ptr<std::FILE, decltype(&std::fclose)>;

bool fail(std::string* error, std::string sentence) {
  *error = std::move(sentence);
  ERR_clear_error();
  return false;
}

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Reads a whole PEM file. The key's mode is checked on the file as opened,
// so that it cannot be swapped for another between the check and the read.
bool read_pem_file(const std::string& what, const std::string& path, bool secret, std::string* text,
                   std::string* error) {
  auto cannot_read = [&](int code) {
    return fail(error, "cannot read " + what + " " + path + ": " + std::strerror(code));
  };
  FilePtr file(std::fopen(path.c_str(), "re"), &std::fclose);
  if (!file) return cannot_read(errno);
  struct stat st;
  if (fstat(fileno(file.get()), &st) != 0) return cannot_read(errno);
  if (!S_ISREG(st.st_mode)) return fail(error, what + " " + path + " is not a regular file");
  if (st.st_size > kMaxPemBytes) return fail(error, what + " " + path + " is too large for PEM");
  // Whoever reads the key can mint certificates that every client trusting
  // this CA accepts, for any site.
  if (secret && (st.st_mode & S_IROTH)) {
    return fail(error, what + " " + path + " is readable by other users (mode " +
                           octal_mode(st.st_mode) + "): run chmod 600 " + path);
  }
  text->resize(static_cast<size_t>(st.st_size));
  size_t got = std::fread(text->data(), 1, text->size(), file.get());
  if (std::ferror(file.get())) return cannot_read(errno);
  text->resize(got);
  return true;
}

BioPtr text_bio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

bool contains(const std::string& text, std::string_view piece) {
  return text.find(piece) != std::string::npos;
}

X509Ptr parse_certificate(const std::string& path, const std::string& text, std::string* error) {
  BioPtr bio = text_bio(text);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (cert) return cert;
  if (contains(text, "-----BEGIN CERTIFICATE-----")) {
    fail(error, "the CA certificate " + path + " is damaged: " + take_openssl_error());
  } else if (contains(text, "PRIVATE KEY-----")) {
    fail(error, path + " holds a private key, not the CA certificate: are the certificate " +
                    "and the key swapped?");
  } else {
    fail(error, "the CA certificate " + path +
                    " is not a PEM certificate (it has no -----BEGIN CERTIFICATE----- line)");
  }
  return nullptr;
}

// A passphrase callback that refuses, and notes that one was asked for:
// cutoff starts unattended, and says so rather than "bad decrypt".
int refuse_passphrase(char*, int, int, void* asked) {
  *static_cast<bool*>(asked) = true;
  return 0;
}

EvpPkeyPtr parse_key(const std::string& path, const std::string& text, std::string* error) {
  BioPtr bio = text_bio(text);
  bool asked = false;
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, &asked)
                     : nullptr);
  if (key) return key;
  if (asked) {
    fail(error, "the CA key " + path + " is encrypted; cutoff needs it without a passphrase");
  } else if (contains(text, "PRIVATE KEY-----")) {
    fail(error, "the CA key " + path + " is damaged: " + take_openssl_error());
  } else if (contains(text, "-----BEGIN CERTIFICATE-----")) {
    fail(error, path + " holds a certificate, not the CA key: are the certificate and the " +
                    "key swapped?");
  } else {
    fail(error, "the CA key " + path +
                    " is not a PEM private key (it has no -----BEGIN PRIVATE KEY----- line)");
  }
  return nullptr;
}

std::string time_text(const ASN1_TIME* time) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "an unreadable date";
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// What clients demand of an issuer, so that a CA they would refuse is
// refused here, once, instead of at every handshake.
bool check_is_ca(const std::string& path, X509* cert, std::string* error) {
  uint32_t flags = X509_get_extension_flags(cert);
  if (flags & EXFLAG_INVALID) {
    return fail(error, "the CA certificate " + path + " has extensions that cannot be read");
  }
  if (!(flags & EXFLAG_CA)) {
    return fail(error, path +
                           " is not a CA certificate (no basicConstraints CA:TRUE), so clients "
                           "would refuse what it signs; `cutoff ca init DIR` writes a CA");
  }
  if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
    return fail(error, "the CA certificate " + path +
                           " may not sign certificates (its keyUsage lacks keyCertSign)");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return fail(
        error, "the CA certificate " + path + " expired on " + time_text(X509_get0_notAfter(cert)));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    return fail(error, "the CA certificate " + path + " is not valid before " +
                           time_text(X509_get0_notBefore(cert)) +
                           "; is this machine's clock right?");
  }
  return true;
}

bool check_key(const std::string& cert_path, const std::string& key_path, X509* cert, EVP_PKEY* key,
               std::string* error) {
  int type = EVP_PKEY_get_base_id(key);
  if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA) {
    const char* name = EVP_PKEY_get0_type_name(key);
    return fail(error, "the CA key " + key_path + " is " + (name ? name : "of an unknown type") +
                           "; cutoff signs with an EC or RSA CA key");
  }
  if (X509_check_private_key(cert, key) != 1) {
    return fail(error,
                "the CA key " + key_path + " does not belong to the CA certificate " + cert_path);
  }
  return true;
}

// The leaves' authorityKeyIdentifier: the CA's own subjectKeyIdentifier, or,
// for a CA without one, the identifier computed the way RFC 5280 suggests.
X509ExtensionPtr authority_key_identifier(X509* ca, EVP_PKEY* ca_key) {
  const ASN1_OCTET_STRING* stated = X509_get0_subject_key_id(ca);
  Asn1OctetStringPtr id(stated ? ASN1_OCTET_STRING_dup(stated) : key_identifier(ca_key).release());
  AuthorityKeyidPtr akid(AUTHORITY_KEYID_new());
  if (!id || !akid) return nullptr;
  akid->keyid = id.release();
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid.get()));
}

// What strict verifiers (OpenSSL's X509_STRICT, Go, Node) want of a TLS
// server's leaf, besides its subjectAltName.
std::vector<X509ExtensionPtr> leaf_extensions(X509* ca, EVP_PKEY* ca_key, EVP_PKEY* leaf_key) {
  std::vector<X509ExtensionPtr> out;
  out.push_back(make_extension(NID_basic_constraints, "critical,CA:FALSE"));
  out.push_back(make_extension(NID_key_usage, "critical,digitalSignature"));
  out.push_back(make_extension(NID_ext_key_usage, "serverAuth"));
  out.push_back(subject_key_identifier(leaf_key));
  out.push_back(authority_key_identifier(ca, ca_key));
  for (const X509ExtensionPtr& e : out) {
    if (!e) return {};
  }
  return out;
}

// inet_pton is strict where OpenSSL's own parser is not: "1.2.3.4.nip.io" is
// a DNS name, not 1.2.3.4.
bool is_ip_literal(const std::string& name) {
  unsigned char address[16];
  return inet_pton(AF_INET, name.c_str(), address) == 1 ||
         inet_pton(AF_INET6, name.c_str(), address) == 1;
}

// Letters, digits, '-', '_' and dots: what a host name in a CONNECT line can
// be. Anything else would make a subjectAltName no client matches.
bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// The subject's CN is for people reading the certificate; clients match the
// subjectAltName. An address is no CN: a client that falls back to the CN
// when no DNS name is listed would take it for a host name. Without a CN the
// subject is empty, and RFC 5280 §4.2.1.6 then wants the subjectAltName
// critical.
bool set_subject(X509* leaf, const std::string& name, bool ip, bool* alt_name_critical) {
  *alt_name_critical = ip || name.size() > kMaxCommonName;
  if (*alt_name_critical) return true;
  const auto* bytes = reinterpret_cast<const unsigned char*>(name.c_str());
  return X509_NAME_add_entry_by_NID(X509_get_subject_name(leaf), NID_commonName, MBSTRING_ASC,
                                    bytes, -1, -1, 0) == 1;
}

bool add_subject_alt_name(X509* leaf, const std::string& name, bool ip, bool critical) {
  int type = ip ? GEN_IPADD : GEN_DNS;
  GeneralNamesPtr names(GENERAL_NAMES_new());
  GeneralNamePtr entry(a2i_GENERAL_NAME(nullptr, nullptr, nullptr, type, name.c_str(), 0));
  if (!names || !entry || sk_GENERAL_NAME_push(names.get(), entry.get()) <= 0) return false;
  entry.release();  // the stack owns it now
  return X509_add1_ext_i2d(leaf, NID_subject_alt_name, names.get(), critical ? 1 : 0,
                           X509V3_ADD_DEFAULT) == 1;
}

}  // namespace

std::string leaf_name(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string name(host);
  for (char& c : name) c = ascii_lower(c);
  return name;
}

CertificateAuthority::CertificateAuthority(X509Ptr certificate, EvpPkeyPtr key, EvpPkeyPtr leaf_key,
                                           std::vector<X509ExtensionPtr> leaf_extensions)
    : certificate_(std::move(certificate)),
      key_(std::move(key)),
      leaf_key_(std::move(leaf_key)),
      leaf_extensions_(std::move(leaf_extensions)) {}

std::shared_ptr<const CertificateAuthority> CertificateAuthority::load(const std::string& cert_path,
                                                                       const std::string& key_path,
                                                                       std::string* error) {
  std::string cert_text;
  std::string key_text;
  if (!read_pem_file("the CA certificate", cert_path, false, &cert_text, error) ||
      !read_pem_file("the CA key", key_path, true, &key_text, error)) {
    return nullptr;
  }
  X509Ptr cert = parse_certificate(cert_path, cert_text, error);
  if (!cert) return nullptr;
  EvpPkeyPtr key = parse_key(key_path, key_text, error);
  if (!key || !check_is_ca(cert_path, cert.get(), error) ||
      !check_key(cert_path, key_path, cert.get(), key.get(), error)) {
    return nullptr;
  }
  EvpPkeyPtr leaf_key = generate_p256_key();
  std::vector<X509ExtensionPtr> extensions;
  if (leaf_key) extensions = leaf_extensions(cert.get(), key.get(), leaf_key.get());
  if (extensions.empty()) {
    fail(error, "cannot prepare leaf certificates: " + take_openssl_error());
    return nullptr;
  }
  std::shared_ptr<const CertificateAuthority> ca(new CertificateAuthority(
      std::move(cert), std::move(key), std::move(leaf_key), std::move(extensions)));
  // One leaf now proves that the key signs, and leaves nothing for the first
  // workers to set up lazily, at once, on several threads.
  if (!ca->build("localhost")) {
    fail(error,
         "cannot sign a certificate with the CA key " + key_path + ": " + take_openssl_error());
    return nullptr;
  }
  return ca;
}

X509Ptr CertificateAuthority::mint(std::string_view host) const {
  const std::string name = leaf_name(host);
  if (!is_ip_literal(name) && !is_dns_name(name)) return nullptr;
  X509Ptr leaf = build(name);
  // The caller's next TLS call on this thread must not find our error.
  if (!leaf) ERR_clear_error();
  return leaf;
}

X509Ptr CertificateAuthority::build(const std::string& name) const {
  const bool ip = is_ip_literal(name);
  X509Ptr leaf(X509_new());
  bool alt_name_critical = false;
  bool made = leaf && start_certificate(leaf.get(), kLeafLifetimeS) &&
              set_subject(leaf.get(), name, ip, &alt_name_critical) &&
              X509_set_issuer_name(leaf.get(), X509_get_subject_name(certificate_.get())) == 1 &&
              X509_set_pubkey(leaf.get(), leaf_key_.get()) == 1 &&
              add_subject_alt_name(leaf.get(), name, ip, alt_name_critical);
  for (size_t i = 0; made && i < leaf_extensions_.size(); ++i) {
    made = X509_add_ext(leaf.get(), leaf_extensions_[i].get(), -1) == 1;
  }
  if (!made || !sign(leaf.get())) return nullptr;
  return leaf;
}

bool CertificateAuthority::sign(X509* leaf) const {
  // SHA-256 with either key type: what every client accepts.
  return X509_sign(leaf, key_.get(), EVP_sha256()) > 0;
}

}  // namespace cutoff
