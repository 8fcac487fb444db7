#include <cstring>

#include "tests/framework.h"

namespace nodevisor::tests {

namespace {
int g_failures_in_case = 0;
std::string g_skip_reason;
}

std::vector<TestCase>& registry() {
  static std::vector<TestCase> cases;
  return cases;
}

void record_failure(const char* file, int line, const std::string& what) {
  g_failures_in_case++;
  std::fprintf(stdout, "    %s:%d: %s\n", file, line, what.c_str());
}

void record_skip(const std::string& reason) { g_skip_reason = reason.empty() ? "(no reason given)" : reason; }

}  // namespace nodevisor::tests

int main(int argc, char** argv) {
  using namespace nodevisor::tests;
  // `--list`: the case names, one per line. `--only NAME`: that case. `TEXT`: cases whose
  // name contains TEXT. Nothing: every case.
  if (argc > 1 && std::strcmp(argv[1], "--list") == 0) {
    for (const auto& test : registry()) std::printf("%s\n", test.name);
    return 0;
  }
  const bool exact = argc > 2 && std::strcmp(argv[1], "--only") == 0;
  const char* filter = exact ? argv[2] : argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0, skipped = 0;
  for (const auto& test : registry()) {
    if (filter != nullptr && (exact ? std::strcmp(test.name, filter) != 0 : std::strstr(test.name, filter) == nullptr)) {
      continue;
    }
    g_failures_in_case = 0;
    g_skip_reason.clear();
    test.body();
    if (g_failures_in_case == 0 && !g_skip_reason.empty()) {
      skipped++;
      std::fprintf(stdout, "skip %s: %s\n", test.name, g_skip_reason.c_str());
    } else if (g_failures_in_case == 0) {
      passed++;
      std::fprintf(stdout, "ok   %s\n", test.name);
    } else {
      failed++;
      std::fprintf(stdout, "FAIL %s\n", test.name);
    }
    std::fflush(stdout);
  }
  std::fprintf(stdout, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 && passed + skipped > 0 ? 0 : 1;
}
