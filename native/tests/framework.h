// A minimal test framework for the native core (no Node, no third-party code): TEST cases
// register themselves; CHECK records a failure with file and line and goes on; main() runs
// every case (or those matching argv[1]) and prints "N passed, N failed".
//
// test/native/native-tests.test.ts runs the binary from vitest, so these results count in
// `npm test`.
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
