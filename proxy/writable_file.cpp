#include "cutoff/writable_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cutoff {
namespace {

std::string parent_directory(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool refuse(std::string* why, std::string reason) {
  *why = std::move(reason);
  return false;
}

}  // namespace

bool could_append_to(const std::string& path, std::string* why) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return refuse(why, "it is a directory");
    if (S_ISSOCK(st.st_mode)) return refuse(why, "it is a socket, which cannot be opened");
    if (access(path.c_str(), W_OK) != 0) return refuse(why, std::strerror(errno));
    return true;
  }
  if (errno != ENOENT) return refuse(why, std::strerror(errno));
  // Missing: opening creates it, which takes a directory one may write in.
  const std::string dir = parent_directory(path);
  if (stat(dir.c_str(), &st) != 0) {
    return refuse(why, "cannot use directory " + dir + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return refuse(why, dir + " is not a directory");
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return refuse(why, "cannot create a file in " + dir + ": " + std::strerror(errno));
  }
  return true;
}

}  // namespace cutoff
