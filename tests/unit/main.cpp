// GCC 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside
// libstdc++'s <regex>, which Catch2's main pulls in; -Werror would stop here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
