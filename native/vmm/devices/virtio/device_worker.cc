#include "vmm/devices/virtio/device_worker.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace nodevisor::vmm::virtio {

namespace {

Result<UniqueFd> make_eventfd() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return sys_error(errno, "eventfd", "cannot create a virtio doorbell");
  return UniqueFd(fd);
}

void drain(int fd) {
  uint64_t count = 0;
  while (::read(fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<std::unique_ptr<DeviceWorker>> DeviceWorker::start(std::string thread_name, uint16_t queues, Handler handler,
                                                          std::vector<int> watched) {
  std::unique_ptr<DeviceWorker> worker(new DeviceWorker(std::move(handler)));
  worker->watching_.assign(watched.size(), true);
  worker->watched_ = std::move(watched);
  for (uint32_t i = 0; i <= queues; i++) {
    auto fd = make_eventfd();
    if (!fd) return fd.error();
    worker->doorbells_.push_back(std::move(fd).value());
  }
  auto stop = make_eventfd();
  if (!stop) return stop.error();
  worker->stop_ = std::move(stop).value();
  try {
    worker->thread_ = std::thread([w = worker.get(), name = std::move(thread_name)] {
      // Signals for the process are for other threads; this one only waits on its fds.
      sigset_t all;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, nullptr);
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      w->run();
    });
  } catch (const std::system_error& e) {
    return sys_error(e.code().value(), "pthread_create", "cannot start a virtio device thread");
  }
  return worker;
}

DeviceWorker::~DeviceWorker() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    while (::write(stop_.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
}

void DeviceWorker::ring(uint16_t index) {
  if (index >= doorbells_.size()) return;
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: the worker has a wake-up pending anyway.
  while (::write(doorbells_[index].get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void DeviceWorker::run() {
  const size_t doorbells = doorbells_.size();
  std::vector<pollfd> fds(doorbells + watched_.size() + 1);
  for (size_t i = 0; i < doorbells; i++) fds[i] = {doorbells_[i].get(), POLLIN, 0};
  fds.back() = {stop_.get(), POLLIN, 0};
  for (;;) {
    // A watched fd that is switched off is skipped (poll ignores negative fds).
    for (size_t i = 0; i < watched_.size(); i++) fds[doorbells + i] = {watching_[i] ? watched_[i] : -1, POLLIN, 0};
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // cannot happen with valid fds; the device then simply stops serving
    }
    if (fds.back().revents) return;
    for (size_t i = 0; i < doorbells; i++) {
      if (!fds[i].revents) continue;
      drain(fds[i].fd);
      // Budget spent with work left: come back after polling (a stop is seen in between).
      if (handler_(static_cast<uint16_t>(i))) ring(static_cast<uint16_t>(i));
    }
    // A watched fd still readable after a budget-limited pass wakes the next poll by itself.
    for (size_t i = 0; i < watched_.size(); i++) {
      if (fds[doorbells + i].revents) handler_(watched_index(i));
    }
  }
}

}  // namespace nodevisor::vmm::virtio
