// Opening a path given by the caller (a kernel, an initrd, a disk) only once its type is
// known: `open_path` takes an O_PATH fd, which never opens the object itself (a FIFO would
// block open() until a writer comes, forever; a character device would see an open()), and
// fstat()s it; the caller checks the type; `reopen` then opens that very inode for I/O through
// /proc/self/fd, so a path swapped in between cannot slip another object in.
//
// Threads: any; called where blocking on the file system is allowed (a libuv worker).
#pragma once

#include <sys/stat.h>

#include <string>

#include "sys/unique_fd.h"
#include "sys/result.h"

namespace nodevisor::vmm {

// O_PATH fd of `path` and its stat. Errors name `what` ("the kernel", "disk") and the path.
Result<UniqueFd> open_path(const std::string& path, struct stat& st, const std::string& what);
// The object behind `path_fd`, opened with `flags` (O_CLOEXEC is added).
Result<UniqueFd> reopen(const UniqueFd& path_fd, int flags, const std::string& path, const std::string& what);

}  // namespace nodevisor::vmm
