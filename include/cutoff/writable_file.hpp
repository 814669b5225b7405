#pragma once
// Whether a file could be opened for appending, asked without opening it:
// `--check` must not create or truncate the access log it checks.

#include <string>

namespace cutoff {

// True when `path` names a writable file (a FIFO too, with or without a
// reader: see FdOutput::open_file), or a file that does not exist yet in a
// directory where it could be created. Otherwise false, with
// *why saying what stands in the way ("no such directory /var/log/x").
bool could_append_to(const std::string& path, std::string* why);

}  // namespace cutoff
