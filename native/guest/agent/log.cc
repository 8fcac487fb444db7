#include "log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace nodevisor::agent {

void log(const char* format, ...) {
  char line[512];
  int prefix = std::snprintf(line, sizeof line, "nodevisor-agent: ");
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(line + prefix, sizeof line - static_cast<size_t>(prefix) - 1, format, args);
  va_end(args);
  if (n < 0) return;
  size_t len = static_cast<size_t>(prefix) + static_cast<size_t>(n);
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  // One write so lines from the agent and its children do not interleave mid-line.
  ssize_t ignored = ::write(STDERR_FILENO, line, len);
  (void)ignored;
}

}  // namespace nodevisor::agent
