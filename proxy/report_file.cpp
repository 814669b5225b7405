#include "cutoff/report_file.hpp"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cutoff/writable_file.hpp"

namespace cutoff {
namespace {

bool refuse(std::string* why, std::string reason) {
  *why = std::move(reason);
  return false;
}

std::string directory_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The file the report replaces: the final target of a symlink, else
// `path` itself. False when `path` is a symlink that leads nowhere.
bool destination(const std::string& path, std::string* file, std::string* why) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) {
    *file = path;
    return true;
  }
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) {
    return refuse(why,
                  std::string("it is a symlink that cannot be followed: ") + std::strerror(errno));
  }
  *file = resolved;
  return true;
}

// Only a regular file may be renamed over. Asked of the path as given,
// links followed by the kernel: /dev/stdout leads to a pipe or a terminal
// that has no path a rename could reach.
bool replaceable(const std::string& path, std::string* why) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return true;
  if (S_ISDIR(st.st_mode)) return refuse(why, "it is a directory");
  return refuse(why,
                "it is not a regular file (a FIFO or a device): the report is written beside "
                "it and moved into place, which would replace it");
}

}  // namespace

bool could_write_report(const std::string& path, std::string* why) {
  std::string file;
  if (!replaceable(path, why) || !destination(path, &file, why)) return false;
  if (!could_append_to(file, why)) return false;
  // The file written beside it is created in its directory, even when the
  // file itself is there already.
  std::string dir = directory_of(file);
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return refuse(why, "cannot create a file in " + dir + ": " + std::strerror(errno));
  }
  return true;
}

bool write_report_file(const std::string& path, std::string_view text, std::string* why) {
  std::string file;
  // Checked again: the path may have changed since start-up.
  if (!replaceable(path, why) || !destination(path, &file, why)) return false;
  std::string temporary = file + ".part";
  std::FILE* out = std::fopen(temporary.c_str(), "w");
  if (out == nullptr) return refuse(why, temporary + ": " + std::strerror(errno));
  bool written = std::fwrite(text.data(), 1, text.size(), out) == text.size();
  int error = errno;
  if (std::fclose(out) != 0 && written) {
    written = false;
    error = errno;
  }
  if (written && std::rename(temporary.c_str(), file.c_str()) == 0) return true;
  if (written) error = errno;
  std::remove(temporary.c_str());
  return refuse(why, std::strerror(error));
}

}  // namespace cutoff
