// The one Catch2 main of the host test programs.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
