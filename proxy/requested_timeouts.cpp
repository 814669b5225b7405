#include "cutoff/requested_timeouts.hpp"

#include <fmt/format.h>

#include <optional>

namespace cutoff {
namespace {

struct Asked {
  std::string_view name;
  TimeoutName timeout;
};

// The deadlines an exchange runs under. request_header and
// client_keepalive are missing: the head that carries the field has
// already arrived, and an idle connection is no exchange's.
constexpr Asked kNames[] = {
    {"dns", TimeoutName::dns_timeout},
    {"connect", TimeoutName::connect_timeout},
    {"tls_handshake", TimeoutName::tls_handshake_timeout},
    {"response_header", TimeoutName::response_header_timeout},
    {"idle", TimeoutName::idle_timeout},
    {"request", TimeoutName::request_timeout},
    {"tunnel_idle", TimeoutName::tunnel_idle_timeout},
    {"tunnel_max_duration", TimeoutName::tunnel_max_duration},
};

constexpr std::string_view kNameList =
    "dns, connect, tls_handshake, response_header, idle, request, tunnel_idle, "
    "tunnel_max_duration";

std::optional<TimeoutName> find_name(std::string_view name) {
  for (const Asked& asked : kNames) {
    if (asked.name == name) return asked.timeout;
  }
  return std::nullopt;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string RequestedTimeouts::add(std::string_view value) {
  constexpr std::string_view kEmpty = "Cutoff-Timeout is empty: give name=duration pairs";
  // A value of empty elements only (" , ,") asks as little as an empty one,
  // and is as likely a test's template gone wrong.
  bool named = false;
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = trimmed(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    if (item.empty()) continue;  // "a=1s,,b=2s": an empty list element (RFC 9110 §5.6.1)
    size_t equals = item.find('=');
    if (equals == std::string_view::npos) {
      return fmt::format("Cutoff-Timeout: \"{}\" is not name=duration", item);
    }
    std::string_view name = trimmed(item.substr(0, equals));
    std::optional<TimeoutName> timeout = find_name(name);
    if (!timeout) {
      return fmt::format("Cutoff-Timeout: unknown name \"{}\"; known: {}", name, kNameList);
    }
    Duration& slot = asked_[static_cast<size_t>(*timeout)];
    if (!slot.is_off()) return fmt::format("Cutoff-Timeout names {} twice", name);
    std::string_view text = trimmed(item.substr(equals + 1));
    if (text == "off") {
      return fmt::format(
          "Cutoff-Timeout: {}=off would lengthen the deadline; a request can "
          "only shorten its deadlines",
          name);
    }
    std::string reason;
    std::optional<Duration> duration = parse_duration(text, /*allow_off=*/false, &reason);
    if (!duration) return fmt::format("Cutoff-Timeout: {}: {}", name, reason);
    slot = *duration;
    any_ = true;
    named = true;
  }
  return named ? std::string() : std::string(kEmpty);
}

Duration RequestedTimeouts::shorter_of(TimeoutName name, Duration configured) const {
  Duration wanted = asked(name);
  bool shorter = !wanted.is_off() && (configured.is_off() || wanted.ms() < configured.ms());
  return shorter ? wanted : configured;
}

std::string read_requested_timeouts(const MessageHead& head, RequestedTimeouts* out) {
  // The field is hop-by-hop to cutoff: most heads have no such field at all.
  if (head.count(HeaderRole::hop_by_hop) == 0) return {};
  for (size_t i = 0; i < head.header_count(); ++i) {
    MessageHead::Header h = head.header(i);
    if (h.role != HeaderRole::hop_by_hop || !field_named(h.name, "cutoff-timeout")) continue;
    if (std::string why = out->add(h.value); !why.empty()) return why;
  }
  return {};
}

void RequestedTimeouts::forget() {
  asked_.fill(Duration::off());
  any_ = false;
}

}  // namespace cutoff
