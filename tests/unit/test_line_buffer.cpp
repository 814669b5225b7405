// LineBuffer against a scripted output: lines wait while the output is full,
// are dropped whole and counted past the bound, and are never torn, not by a
// partial write and not by another writer on the same output.

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cutoff/line_buffer.hpp"

using namespace cutoff;

namespace {

// Takes up to `capacity` bytes, then answers EAGAIN until given more room.
// With `atomic` set it behaves as a pipe: a write of up to that many bytes
// goes in whole or not at all.
class ScriptedOutput final : public LineOutput {
 public:
  explicit ScriptedOutput(size_t capacity, size_t atomic = 0)
      : capacity_(capacity), atomic_(atomic) {}

  ssize_t write_some(const char* data, size_t size) override {
    ++calls;
    if (error != 0) return -error;
    if (capacity_ == 0 || (size <= atomic_ && size > capacity_)) return -EAGAIN;
    size_t n = std::min(size, capacity_);
    written.append(data, n);
    sizes.push_back(n);
    capacity_ -= n;
    return static_cast<ssize_t>(n);
  }
  size_t atomic_size() const override { return atomic_; }

  void room(size_t bytes) { capacity_ = bytes; }

  std::string written;
  std::vector<size_t> sizes;  // of each write that took bytes
  int calls = 0;
  int error = 0;

 private:
  size_t capacity_;
  size_t atomic_;
};

std::string line(int n) {
  return "line " + std::to_string(n) + " " + std::string(static_cast<size_t>(n % 7), 'x') + "\n";
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string got; std::getline(in, got);) out.push_back(got + "\n");
  return out;
}

}  // namespace

TEST_CASE("lines wait for write_at or flush, then go in one write", "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(1 << 20);
  LineBuffer buffer(out, 4096, 1024);
  std::string expected;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(buffer.append(line(i)));
    expected += line(i);
  }
  CHECK(out->calls == 0);
  buffer.flush();
  CHECK(out->written == expected);
  CHECK(out->sizes == std::vector<size_t>{expected.size()});
  CHECK(buffer.buffered() == 0);
  CHECK(buffer.take_dropped() == 0);
}

TEST_CASE("a stalled output keeps lines up to the bound, then drops new ones whole",
          "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(0);
  LineBuffer buffer(out, 100, 1);
  std::string kept;
  int dropped = 0;
  for (int i = 0; i < 40; ++i) {
    if (buffer.append(line(i))) {
      kept += line(i);
    } else {
      ++dropped;
    }
  }
  CHECK(kept.size() <= 100);
  CHECK(dropped > 0);
  CHECK(buffer.take_dropped() == dropped);
  CHECK(buffer.take_dropped() == 0);
  // Once it has said it is full, the output is not asked again at every
  // line, only at the next flush.
  CHECK(out->calls == 1);

  out->room(1 << 20);
  buffer.flush();
  CHECK(out->written == kept);
  CHECK(buffer.buffered() == 0);
}

TEST_CASE("a write that ends inside a line: the rest goes first, and nobody writes into it",
          "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(0);
  LineBuffer a(out, 4096, 4096);
  LineBuffer b(out, 4096, 4096);
  REQUIRE(a.append("first line from a\n"));
  REQUIRE(a.append("second line from a\n"));
  REQUIRE(b.append("a line from b\n"));

  out->room(7);  // "first l"
  a.flush();
  CHECK(out->written == "first l");
  // b may not write while a's line is half out, even with room.
  out->room(1 << 20);
  b.flush();
  CHECK(out->written == "first l");
  CHECK(b.buffered() == 14);

  a.flush();
  b.flush();
  CHECK(out->written == "first line from a\nsecond line from a\na line from b\n");
}

TEST_CASE("on a pipe, each write is whole lines of at most PIPE_BUF", "[line_buffer]") {
  constexpr size_t kAtomic = 64;
  auto out = std::make_shared<ScriptedOutput>(1 << 20, kAtomic);
  LineBuffer buffer(out, 4096, 4096);
  std::string expected;
  for (int i = 0; i < 30; ++i) {
    REQUIRE(buffer.append(line(i)));
    expected += line(i);
  }
  std::string long_line = std::string(150, 'L') + "\n";
  REQUIRE(buffer.append(long_line));
  expected += long_line;
  buffer.flush();
  CHECK(out->written == expected);
  size_t at = 0;
  for (size_t size : out->sizes) {
    at += size;
    CHECK(out->written[at - 1] == '\n');
    if (size > kAtomic) CHECK(size == long_line.size());  // one long line goes alone
  }
}

TEST_CASE("a full pipe takes nothing rather than part of a line", "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(20, 4096);
  LineBuffer buffer(out, 4096, 1);
  REQUIRE(buffer.append("0123456789\n"));        // 11 bytes: fits
  REQUIRE(buffer.append("abcdefghijklmnop\n"));  // 17 more: EAGAIN, kept
  CHECK(out->written == "0123456789\n");
  out->room(100);
  buffer.flush();
  CHECK(out->written == "0123456789\nabcdefghijklmnop\n");
}

TEST_CASE("a failed output drops what waits, counted by line", "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(5);
  LineBuffer buffer(out, 4096, 4096);
  REQUIRE(buffer.append("one\n"));
  REQUIRE(buffer.append("two\n"));
  REQUIRE(buffer.append("three\n"));
  buffer.flush();  // "one\nt": "two" is started
  out->error = EPIPE;
  buffer.flush();
  CHECK(buffer.buffered() == 0);
  CHECK(buffer.take_dropped() == 2);
  // The slot is free again for another writer.
  out->error = 0;
  out->room(100);
  LineBuffer other(out, 4096, 1);
  REQUIRE(other.append("other\n"));
  CHECK(out->written == "one\ntother\n");
}

TEST_CASE("a line longer than the bound is dropped", "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(1 << 20);
  LineBuffer buffer(out, 64, 1);
  CHECK_FALSE(buffer.append(std::string(100, 'x') + "\n"));
  CHECK(buffer.take_dropped() == 1);
  CHECK(out->written.empty());
}

// A line written in place: reserve() offers room only for as many bytes as
// asked, and commit() queues the line as append() would, in turn with the
// lines appended.
TEST_CASE("a line written in place goes in turn with the others", "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(0);
  LineBuffer buffer(out, 64, 48);
  REQUIRE(buffer.append("one\n"));
  char* at = buffer.reserve(20);
  REQUIRE(at != nullptr);
  std::memcpy(at, "two\n", 4);
  buffer.commit(4);
  REQUIRE(buffer.append("three\n"));
  CHECK(buffer.buffered() == 14);
  CHECK(buffer.reserve(50) != nullptr);
  CHECK(buffer.reserve(51) == nullptr);
  CHECK(out->calls == 0);

  // With write_at bytes waiting, commit() writes them.
  out->room(1 << 20);
  const std::string last = std::string(33, 'x') + "\n";
  at = buffer.reserve(40);
  REQUIRE(at != nullptr);
  std::memcpy(at, last.data(), last.size());
  buffer.commit(last.size());
  CHECK(out->written == "one\ntwo\nthree\n" + last);
  CHECK(buffer.buffered() == 0);
  CHECK(buffer.reserve(64) != nullptr);
}

TEST_CASE("a new output gets whole lines only", "[line_buffer]") {
  auto old_out = std::make_shared<ScriptedOutput>(0);
  auto new_out = std::make_shared<ScriptedOutput>(1 << 20);
  LineBuffer buffer(old_out, 4096, 4096);
  REQUIRE(buffer.append("half written\n"));
  REQUIRE(buffer.append("waiting\n"));
  old_out->room(4);  // "half"
  buffer.set_output(new_out);
  CHECK(old_out->written == "half");
  CHECK(buffer.take_dropped() == 1);
  buffer.flush();
  CHECK(new_out->written == "waiting\n");
  // The old output's slot was given back.
  old_out->room(100);
  LineBuffer other(old_out, 4096, 1);
  REQUIRE(other.append("x\n"));
  CHECK(old_out->written == "halfx\n");
}

TEST_CASE("lines written by several buffers through stalls are all whole", "[line_buffer]") {
  auto out = std::make_shared<ScriptedOutput>(0);
  std::vector<std::unique_ptr<LineBuffer>> buffers;
  for (int i = 0; i < 3; ++i) buffers.push_back(std::make_unique<LineBuffer>(out, 300, 50));
  int kept = 0;
  for (int round = 0; round < 200; ++round) {
    auto& buffer = *buffers[static_cast<size_t>(round % 3)];
    if (buffer.append("writer " + std::to_string(round % 3) + " round " + std::to_string(round) +
                      "\n")) {
      ++kept;
    }
    if (round % 5 == 0) out->room(static_cast<size_t>(round % 37));  // odd sizes: partial writes
    if (round % 3 == 0) buffer.flush();
  }
  out->room(1 << 20);
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& buffer : buffers) buffer->flush();
  }
  std::vector<std::string> written = lines_of(out->written);
  CHECK(static_cast<int>(written.size()) == kept);
  for (const std::string& got : written) {
    CHECK(got.rfind("writer ", 0) == 0);
    CHECK(got.find("writer ", 1) == std::string::npos);
  }
}
