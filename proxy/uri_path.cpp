#include "cutoff/uri_path.hpp"

#include "cutoff/ascii.hpp"

namespace cutoff {
namespace {

bool is_unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// What a path may carry raw besides unreserved characters (RFC 3986 pchar
// and "/"); anything else is the same byte escaped.
bool is_raw_path_char(char c) {
  return is_unreserved(c) || std::string_view("!$&'()*+,;=:@/").find(c) != std::string_view::npos;
}

void append_escaped(std::string* out, unsigned char c) {
  constexpr char kHex[] = "0123456789ABCDEF";
  out->push_back('%');
  out->push_back(kHex[c >> 4]);
  out->push_back(kHex[c & 15]);
}

// Decodes what RFC 3986 says is equivalent (and, leniently, escaped and
// backward slashes), into *out.
PathError decode_equivalent(std::string_view path, PathReading reading, std::string* out) {
  const bool lenient = reading == PathReading::lenient;
  out->clear();
  bool in_parameter = false;  // after a ";", until the next raw "/"
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '/') in_parameter = false;
    if (c == ';') in_parameter = true;
    if (c == '\\' && in_parameter) return PathError::hidden_separator;
    if (c == '\\' && lenient) c = '/';
    if (c != '%') {
      if (is_raw_path_char(c)) {
        out->push_back(c);
      } else {
        append_escaped(out, static_cast<unsigned char>(c));
      }
      continue;
    }
    if (i + 2 >= path.size()) return PathError::bad_escape;
    int high = hex_value(path[i + 1]);
    int low = hex_value(path[i + 2]);
    if (high < 0 || low < 0) return PathError::bad_escape;
    char decoded = static_cast<char>(high * 16 + low);
    i += 2;
    bool separator = decoded == '/' || decoded == '\\';
    if (separator && in_parameter) return PathError::hidden_separator;
    if (is_unreserved(decoded)) {
      out->push_back(decoded);
    } else if (lenient && separator) {
      out->push_back('/');
    } else {
      append_escaped(out, static_cast<unsigned char>(decoded));
    }
  }
  return PathError::none;
}

// RFC 3986 §5.2.4 remove_dot_segments, merging empty segments as it goes;
// `drop_parameters` cuts each segment at its first ";" first.
void remove_dot_segments(std::string_view decoded, bool drop_parameters, std::string* out) {
  out->clear();
  bool trailing_slash = false;
  size_t i = 0;
  while (i < decoded.size()) {
    if (decoded[i] == '/') {
      ++i;
      continue;
    }
    size_t end = decoded.find('/', i);
    if (end == std::string_view::npos) end = decoded.size();
    std::string_view segment = decoded.substr(i, end - i);
    if (drop_parameters) segment = segment.substr(0, segment.find(';'));
    if (segment.empty()) {
      trailing_slash = true;
    } else if (segment == ".") {
      trailing_slash = true;
    } else if (segment == "..") {
      size_t last = out->rfind('/');
      out->resize(last == std::string::npos ? 0 : last);
      trailing_slash = true;
    } else {
      out->push_back('/');
      out->append(segment);
      trailing_slash = end < decoded.size();
    }
    i = end;
  }
  if (out->empty() || trailing_slash) out->push_back('/');
}

}  // namespace

PathError normalize_path(std::string_view path, PathReading reading, std::string* out) {
  path = path.substr(0, path.find('?'));
  std::string decoded;
  PathError error = decode_equivalent(path, reading, &decoded);
  if (error != PathError::none) return error;
  remove_dot_segments(decoded, reading == PathReading::lenient, out);
  return PathError::none;
}

bool readings_may_differ(std::string_view path) {
  path = path.substr(0, path.find('?'));
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\' || path[i] == ';') return true;
    if (path[i] != '%' || i + 2 >= path.size()) continue;
    char high = path[i + 1];
    char low = path[i + 2];
    if ((high == '2' && (low == 'f' || low == 'F')) ||
        (high == '5' && (low == 'c' || low == 'C'))) {
      return true;
    }
  }
  return false;
}

bool percent_decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    int high = i + 2 < in.size() ? hex_value(in[i + 1]) : -1;
    int low = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
    if (high < 0 || low < 0) return false;
    out->push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

}  // namespace cutoff
