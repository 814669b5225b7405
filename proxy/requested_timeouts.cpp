#include "cutoff/requested_timeouts.hpp"

#include <fmt/format.h>

#include <optional>

#include "cutoff/ascii.hpp"

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

std::optional<TimeoutName> find_name(std::string_view name) {
  for (const Asked& asked : kNames) {
    if (asked.name == name) return asked.timeout;
  }
  return std::nullopt;
}

// "dns, connect, ...", for the sentence that refuses an unknown name.
std::string known_names() {
  std::string list;
  for (const Asked& asked : kNames) list.append(list.empty() ? "" : ", ").append(asked.name);
  return list;
}

}  // namespace

std::string RequestedTimeouts::add(std::string_view value) {
  // Empty list elements are skipped (RFC 9110 §5.6.1); a value of nothing
  // else (" , ,") asks as little as an empty one, and is as likely a test's
  // template gone wrong.
  bool named = false;
  std::string why;
  for_each_list_item(value, [&](std::string_view item) {
    named = true;
    why = add_item(item);
    return why.empty();
  });
  if (!named) return "Cutoff-Timeout is empty: give name=duration pairs";
  return why;
}

std::string RequestedTimeouts::add_item(std::string_view item) {
  size_t equals = item.find('=');
  if (equals == std::string_view::npos) {
    return fmt::format("Cutoff-Timeout: \"{}\" is not name=duration", item);
  }
  std::string_view name = trim_ows(item.substr(0, equals));
  std::optional<TimeoutName> timeout = find_name(name);
  if (!timeout) {
    return fmt::format("Cutoff-Timeout: unknown name \"{}\"; known: {}", name, known_names());
  }
  Duration& slot = asked_[static_cast<size_t>(*timeout)];
  if (!slot.is_off()) return fmt::format("Cutoff-Timeout names {} twice", name);
  std::string_view text = trim_ows(item.substr(equals + 1));
  if (text == "off") {
    return fmt::format(
        "Cutoff-Timeout: {}=off would lengthen the deadline; a request can only shorten its "
        "deadlines",
        name);
  }
  std::string reason;
  std::optional<Duration> duration = parse_duration(text, /*allow_off=*/false, &reason);
  if (!duration) return fmt::format("Cutoff-Timeout: {}: {}", name, reason);
  slot = *duration;
  any_ = true;
  return {};
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
