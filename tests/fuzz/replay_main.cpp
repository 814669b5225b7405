// Runs a fuzz target over saved inputs without libFuzzer, so that any
// compiler (and the ordinary test build) replays the seed corpus and every
// regression: `fuzz_X_replay DIR_OR_FILE...`. Files whose names start with
// "." are skipped (they keep empty directories in git). Each input runs in
// a child process, so that one broken invariant (an abort) does not hide
// the next: every failing input is listed, and the exit status is 1.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

namespace {

namespace fs = std::filesystem;

// The inputs under `arg`, sorted so that runs are reproducible.
bool collect(const fs::path& arg, std::vector<fs::path>* inputs) {
  std::error_code ec;
  if (fs::is_regular_file(arg, ec)) {
    inputs->push_back(arg);
    return true;
  }
  if (!fs::is_directory(arg, ec)) {
    std::fprintf(stderr, "replay: %s is neither a file nor a directory\n", arg.c_str());
    return false;
  }
  std::vector<fs::path> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(arg, ec)) {
    if (entry.is_regular_file() && entry.path().filename().string().front() != '.') {
      found.push_back(entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  inputs->insert(inputs->end(), found.begin(), found.end());
  return !ec;
}

void run(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  // A copy of exactly the input's size, so that ASan sees reads past its end.
  std::vector<uint8_t> input(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(input.data(), input.size());
}

// True when the input breaks nothing.
bool replay(const fs::path& path) {
  std::fflush(stderr);
  pid_t child = fork();
  if (child == 0) {
    run(path);
    std::fflush(stderr);
    _exit(0);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) {
    std::perror("replay: fork");
    return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (!collect(argv[i], &inputs)) return 2;
  }
  LLVMFuzzerTestOneInput(nullptr, 0);  // libFuzzer always tries the empty input too
  size_t failed = 0;
  for (const fs::path& path : inputs) {
    if (replay(path)) continue;
    ++failed;  // below what the child printed about it
    std::fprintf(stderr, "replay: FAILED %s\n\n", path.c_str());
  }
  std::fprintf(stderr, "replay: %zu inputs, %zu failed\n", inputs.size(), failed);
  return failed == 0 ? 0 : 1;
}
