#include "seccomp.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"
#include "request.h"

namespace nodevisor::agent {

namespace {

struct SyscallName {
  const char* name;
  int number;
};

constexpr SyscallName kSyscalls[] = {
#include "syscall_table.inc"
};

constexpr uint32_t kX32SyscallBit = 0x40000000;
constexpr size_t kMaxRules = 4096;
constexpr size_t kMaxNames = 1024;  // per rule
constexpr size_t kMaxArgs = 6;      // per rule: one per system call argument

// Where seccomp_data's fields are, for BPF_ABS loads.
constexpr uint32_t kNrOffset = offsetof(seccomp_data, nr);
constexpr uint32_t kArchOffset = offsetof(seccomp_data, arch);
constexpr uint32_t arg_low(int index) { return offsetof(seccomp_data, args) + 8 * index; }
constexpr uint32_t arg_high(int index) { return arg_low(index) + 4; }

sock_filter stmt(uint16_t code, uint32_t k) { return {code, 0, 0, k}; }
sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { return {code, jt, jf, k}; }

// A jump target to fix up once a rule's block is complete: "the end of this rule" (no match).
constexpr uint8_t kNoMatch = 0xff;

uint32_t action(const std::string& name, std::optional<int64_t> errno_ret, const std::string& field) {
  uint32_t err = static_cast<uint32_t>(errno_ret.value_or(EPERM)) & SECCOMP_RET_DATA;
  if (name == "SCMP_ACT_ALLOW") return SECCOMP_RET_ALLOW;
  if (name == "SCMP_ACT_ERRNO") return SECCOMP_RET_ERRNO | err;
  if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return SECCOMP_RET_KILL_THREAD;
  if (name == "SCMP_ACT_KILL_PROCESS") return SECCOMP_RET_KILL_PROCESS;
  if (name == "SCMP_ACT_TRAP") return SECCOMP_RET_TRAP;
  if (name == "SCMP_ACT_TRACE") return SECCOMP_RET_TRACE | err;
  if (name == "SCMP_ACT_LOG") return SECCOMP_RET_LOG;
  if (name == "SCMP_ACT_NOTIFY") fail("EINVAL", field + ": SCMP_ACT_NOTIFY is not supported (no notification listener)");
  fail("EINVAL", field + ": unknown action \"" + name.substr(0, 64) + "\"");
}

// The checks of one argument condition. Each instruction that decides "no match" jumps to
// kNoMatch (patched later); falling through the block means the condition holds.
void compile_condition(std::vector<sock_filter>& out, const Fields& f) {
  int index = static_cast<int>(f.integer("index", 0, 5));
  uint64_t value = static_cast<uint64_t>(f.integer("value", INT64_MIN, INT64_MAX));
  uint64_t value_two = static_cast<uint64_t>(f.optional_integer("valueTwo", INT64_MIN, INT64_MAX).value_or(0));
  std::string op = f.string("op");
  auto hi = [](uint64_t v) { return static_cast<uint32_t>(v >> 32); };
  auto lo = [](uint64_t v) { return static_cast<uint32_t>(v); };
  const uint16_t ld = BPF_LD | BPF_W | BPF_ABS;
  if (op == "SCMP_CMP_EQ") {
    out.push_back(stmt(ld, arg_high(index)));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, hi(value), 0, kNoMatch));
    out.push_back(stmt(ld, arg_low(index)));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, lo(value), 0, kNoMatch));
  } else if (op == "SCMP_CMP_NE") {
    out.push_back(stmt(ld, arg_high(index)));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, hi(value), 0, 2));  // high words differ: holds
    out.push_back(stmt(ld, arg_low(index)));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, lo(value), kNoMatch, 0));
  } else if (op == "SCMP_CMP_GT" || op == "SCMP_CMP_GE") {
    // Unsigned 64-bit: decided by the high words unless they are equal.
    out.push_back(stmt(ld, arg_high(index)));
    out.push_back(jump(BPF_JMP | BPF_JGT | BPF_K, hi(value), 3, 0));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, hi(value), 0, kNoMatch));
    out.push_back(stmt(ld, arg_low(index)));
    out.push_back(jump(BPF_JMP | (op == "SCMP_CMP_GT" ? BPF_JGT : BPF_JGE) | BPF_K, lo(value), 0, kNoMatch));
  } else if (op == "SCMP_CMP_LT" || op == "SCMP_CMP_LE") {
    out.push_back(stmt(ld, arg_high(index)));
    out.push_back(jump(BPF_JMP | BPF_JGT | BPF_K, hi(value), kNoMatch, 0));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, hi(value), 0, 2));  // high word smaller: holds
    out.push_back(stmt(ld, arg_low(index)));
    out.push_back(jump(BPF_JMP | (op == "SCMP_CMP_LT" ? BPF_JGE : BPF_JGT) | BPF_K, lo(value), kNoMatch, 0));
  } else if (op == "SCMP_CMP_MASKED_EQ") {
    // (arg & value) == valueTwo
    out.push_back(stmt(ld, arg_high(index)));
    out.push_back(stmt(BPF_ALU | BPF_AND | BPF_K, hi(value)));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, hi(value_two), 0, kNoMatch));
    out.push_back(stmt(ld, arg_low(index)));
    out.push_back(stmt(BPF_ALU | BPF_AND | BPF_K, lo(value)));
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, lo(value_two), 0, kNoMatch));
  } else {
    fail("EINVAL", f.field_name("op") + ": unknown operator \"" + op.substr(0, 64) + "\"");
  }
}

}  // namespace

int syscall_number(std::string_view name) {
  for (const auto& s : kSyscalls) {
    if (name == s.name) return s.number;
  }
  return -1;
}

std::vector<sock_filter> compile_seccomp(const Fields& f) {
  std::string prefix = f.field_name("");
  std::optional<int64_t> default_errno = f.optional_integer("defaultErrnoRet", 0, 4095);
  uint32_t default_action = action(f.string("defaultAction"), default_errno, f.field_name("defaultAction"));
  // architectures only widens what libseccomp would filter; this filter handles x86-64 and
  // refuses every other table, so the list needs no more than a check of its shape.
  f.string_array("architectures", 64, false);

  std::vector<sock_filter> program;
  program.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArchOffset));
  program.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  program.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
  program.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kNrOffset));
  program.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, kX32SyscallBit, 0, 1));
  program.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));

  const json::Value* rules = f.get("syscalls");
  if (rules != nullptr && !rules->is_array()) fail("EINVAL", f.field_name("syscalls") + " must be an array");
  if (rules != nullptr && rules->items().size() > kMaxRules) fail("EINVAL", f.field_name("syscalls") + " has too many rules");
  for (size_t r = 0; rules != nullptr && r < rules->items().size(); ++r) {
    const json::Value& rule_value = rules->items()[r];
    std::string where = prefix + "syscalls[" + std::to_string(r) + "].";
    if (!rule_value.is_object()) fail("EINVAL", prefix + "syscalls[" + std::to_string(r) + "] must be an object");
    Fields rule(rule_value, where);
    std::vector<std::string> names = rule.string_array("names", kMaxNames, true);
    uint32_t rule_action = action(rule.string("action"), rule.optional_integer("errnoRet", 0, 4095), where + "action");
    // The argument conditions, compiled once; every name of the rule repeats them.
    std::vector<sock_filter> conditions;
    const json::Value* args = rule.get("args");
    if (args != nullptr && (!args->is_array() || args->items().size() > kMaxArgs)) {
      fail("EINVAL", where + "args must be an array of at most 6 conditions");
    }
    for (size_t a = 0; args != nullptr && a < args->items().size(); ++a) {
      if (!args->items()[a].is_object()) fail("EINVAL", where + "args[" + std::to_string(a) + "] must be an object");
      compile_condition(conditions, Fields(args->items()[a], where + "args[" + std::to_string(a) + "]."));
    }
    for (const auto& name : names) {
      int nr = syscall_number(name);
      if (nr < 0) continue;  // another architecture's name
      // [ld nr] [jeq nr, 0, end] conditions... [ret action] end:
      size_t block = program.size();
      program.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kNrOffset));
      program.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, kNoMatch));
      program.insert(program.end(), conditions.begin(), conditions.end());
      program.push_back(stmt(BPF_RET | BPF_K, rule_action));
      size_t end = program.size();
      for (size_t i = block; i < end; ++i) {
        sock_filter& insn = program[i];
        if (BPF_CLASS(insn.code) != BPF_JMP) continue;
        // At most 2 + 6*6 + 1 instructions per block: the distance always fits in 8 bits.
        uint8_t to_end = static_cast<uint8_t>(end - (i + 1));
        if (insn.jt == kNoMatch) insn.jt = to_end;
        if (insn.jf == kNoMatch) insn.jf = to_end;
      }
      if (program.size() >= BPF_MAXINSNS) fail("E2BIG", prefix + "syscalls compile to more than 4096 BPF instructions");
    }
  }
  program.push_back(stmt(BPF_RET | BPF_K, default_action));
  return program;
}

int load_seccomp(const std::vector<sock_filter>& program) {
  sock_fprog prog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return errno;
  return 0;
}

}  // namespace nodevisor::agent
