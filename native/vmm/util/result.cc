#include "vmm/util/result.h"

namespace nodevisor::vmm {

Error sys_error(int errnum, std::string syscall, std::string message, std::string code) {
  Error e;
  e.code = std::move(code);
  e.errnum = errnum;
  e.syscall = std::move(syscall);
  e.message = std::move(message);
  return e;
}

Error plain_error(std::string code, std::string message) {
  Error e;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}

}  // namespace nodevisor::vmm
