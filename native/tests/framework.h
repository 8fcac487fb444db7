// A minimal test framework for the native core (no Node, no third-party code): TEST cases
// register themselves; CHECK records a failure with file and line and goes on; SKIP ends a
// case that cannot run here, with its reason; main() runs every case (or those matching
// argv[1]) and prints "N passed, N failed, N skipped".
//
// test/native/native-core.test.ts runs the binary from vitest case by case, so these results
// count in `npm test`: a case that printed "skip NAME: reason" is a vitest skip with that reason.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace nodevisor::tests {

struct TestCase {
  const char* name;
  std::function<void()> body;
};

std::vector<TestCase>& registry();
void record_failure(const char* file, int line, const std::string& what);
// Marks the current case as skipped (it did not run its checks) with the reason printed.
void record_skip(const std::string& reason);

struct Registrar {
  Registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

}  // namespace nodevisor::tests

#define NV_TEST_CONCAT2(a, b) a##b
#define NV_TEST_CONCAT(a, b) NV_TEST_CONCAT2(a, b)
#define TEST(name)                                                                                          \
  static void name();                                                                                       \
  static ::nodevisor::tests::Registrar NV_TEST_CONCAT(registrar_, name)(#name, name);                       \
  static void name()

#define CHECK(expr)                                                                      \
  do {                                                                                   \
    if (!(expr)) ::nodevisor::tests::record_failure(__FILE__, __LINE__, "CHECK(" #expr ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                                    \
  do {                                                                                                    \
    const auto nv_a_ = (a);                                                                               \
    const auto nv_b_ = (b);                                                                               \
    if (!(nv_a_ == nv_b_)) {                                                                              \
      ::nodevisor::tests::record_failure(__FILE__, __LINE__,                                              \
                                         "CHECK_EQ(" #a ", " #b "): " + std::to_string(nv_a_) + " != " + \
                                             std::to_string(nv_b_));                                      \
    }                                                                                                     \
  } while (0)

// Stops the current case when `expr` fails (for preconditions later checks depend on).
#define REQUIRE(expr)                                                                        \
  do {                                                                                       \
    if (!(expr)) {                                                                           \
      ::nodevisor::tests::record_failure(__FILE__, __LINE__, "REQUIRE(" #expr ")");          \
      return;                                                                                \
    }                                                                                        \
  } while (0)

// Ends the current case as skipped, saying why (e.g. a tool that is not installed and the
// Debian package that has it). A skipped case is not a passed one.
#define SKIP(reason)                               \
  do {                                             \
    ::nodevisor::tests::record_skip(reason);       \
    return;                                        \
  } while (0)
