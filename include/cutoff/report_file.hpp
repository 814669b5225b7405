#pragma once
// Where the --report file goes (SPEC §12): checked at start-up, replaced
// whole at exit.
//
// A regular file, or one not there yet, is replaced by a file written
// beside it and renamed into place, so that a reader never sees half of
// one. A symlink is followed: its target is replaced and the link stays,
// so that a path linked into a CI artifacts folder fills that folder.
// Anything else, a FIFO or a device such as /dev/stdout, is refused:
// renaming over it would leave a regular file where it was (and, run as
// root, replace /dev/null for every process on the machine).

#include <string>
#include <string_view>

namespace cutoff {

// True when a report could be written to `path` at exit; otherwise false,
// with *why saying what stands in the way.
bool could_write_report(const std::string& path, std::string* why);

// Writes `text` as the whole of the file `path` names. False with *why on
// failure, the file then left as it was.
bool write_report_file(const std::string& path, std::string_view text, std::string* why);

}  // namespace cutoff
