// Waiting for the other threads of a multithreaded unit test to make progress. CI runs the tests
// on a loaded 2-core machine (sanitizers, ctest -j2), where a thread may get no core for a long
// time: a test whose checks need the other threads to have done something waits until they have
// (a counter of their attempts), never a fixed number of iterations or a fixed time. The wait
// gives up after kProgressGiveUp, so that a thread that never gets anywhere fails the test (the
// caller reports it, after joining its threads) instead of hanging it.
#pragma once

#include <chrono>
#include <thread>

namespace hvtest {

inline constexpr std::chrono::seconds kProgressGiveUp{30};

// Yields until done() holds; false if it still does not after kProgressGiveUp.
template <class Done>
bool wait_for_progress(Done done) {
  const auto give_up = std::chrono::steady_clock::now() + kProgressGiveUp;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return done();
    std::this_thread::yield();
  }
  return true;
}

}  // namespace hvtest
