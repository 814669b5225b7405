// WarningTally: a warning at most once per interval, with the count since
// the last one.

#include <catch2/catch.hpp>

#include "cutoff/warning_tally.hpp"

using namespace cutoff;

TEST_CASE("warnings: the first at once, then at most one per interval", "[warning_tally]") {
  WarningTally tally(60000);
  CHECK(tally.take_due(0) == 0);  // nothing happened
  tally.add(3);
  tally.add(2);
  CHECK(tally.take_due(1000) == 5);
  tally.add(7);
  CHECK(tally.take_due(1000 + 59999) == 0);
  tally.add(1);
  CHECK(tally.take_due(1000 + 60000) == 8);
  CHECK(tally.take_due(1000 + 200000) == 0);  // nothing new
  tally.add(4);
  CHECK(tally.take_due(1000 + 200001) == 4);
}
