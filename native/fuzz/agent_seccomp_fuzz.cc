// libFuzzer target: the agent's seccomp compiler (and the rest of the process object it comes
// with) over JSON documents. Whatever the profile, the compiler either refuses it with an
// AgentError or returns a classic BPF program the kernel would accept: within BPF_MAXINSNS,
// every jump inside the program, only loads of seccomp_data within its size, ending in a return.
//
// Input: the JSON text of a `process` object (seed inputs in test/fixtures/fuzz/).
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "guest/agent/errors.h"
#include "guest/agent/privileges.h"
#include "guest/agent/request.h"
#include "guest/protocol/json.h"

using namespace nodevisor;
using namespace nodevisor::agent;

namespace {

void check_program(const std::vector<sock_filter>& program) {
  if (program.empty() || program.size() > BPF_MAXINSNS) std::abort();
  for (size_t i = 0; i < program.size(); ++i) {
    const sock_filter& insn = program[i];
    switch (BPF_CLASS(insn.code)) {
      case BPF_LD:
        if (insn.k + 4 > sizeof(seccomp_data) || insn.k % 4 != 0) std::abort();
        break;
      case BPF_JMP:
        if (BPF_OP(insn.code) == BPF_JA) std::abort();  // the compiler never emits one
        if (i + 1 + insn.jt >= program.size() || i + 1 + insn.jf >= program.size()) std::abort();
        break;
      case BPF_RET:
      case BPF_ALU:
        break;
      default:
        std::abort();
    }
  }
  if (BPF_CLASS(program.back().code) != BPF_RET) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  json::ParseResult parsed = json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.value || !parsed.value->is_object()) return 0;
  try {
    Privileges p = parse_privileges(Fields(*parsed.value, "process."));
    if (!p.seccomp.empty()) check_program(p.seccomp);
  } catch (const AgentError& e) {
    if (e.code.empty() || e.message.empty()) std::abort();
  }
  return 0;
}
