// Reads a whole regular file (kernel, initrd) with a size cap. Runs on: a worker thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sys/result.h"

namespace nodevisor::vmm {

// `what` names the file in messages ("kernel", "initrd"); `limit` names what `max_size` is.
Result<std::vector<uint8_t>> read_whole_file(const std::string& path, uint64_t max_size, const char* what,
                                             const char* limit = "guest memory");

}  // namespace nodevisor::vmm
