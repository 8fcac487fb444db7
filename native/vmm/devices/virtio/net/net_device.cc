#include "vmm/devices/virtio/net/net_device.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/devices/virtio/net/net_frames.h"

namespace nodevisor::vmm::virtio {

namespace {

constexpr uint16_t kReceiveQueue = 0;
constexpr uint16_t kTransmitQueue = 1;
// 2: the MAC config space shows is recorded too (a slot emptied keeps its last one).
constexpr uint32_t kNetStateVersion = 2;

// virtio_net_config fields offered (F_MAC, F_STATUS).
struct NetConfig {
  uint8_t mac[6];
  uint16_t status;
};
static_assert(sizeof(NetConfig) == 8);

}  // namespace

Result<std::shared_ptr<NetDevice>> NetDevice::create(std::string name, MacAddress mac, UniqueFd tap) {
  std::shared_ptr<NetDevice> dev(new NetDevice(std::move(name), mac));
  dev->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!dev->epoll_) return sys_error(errno, "epoll_create1", "cannot create the net device's poll set");
  if (tap) NV_TRY(dev->set_tap(std::move(tap)));
  dev->frame_.resize(kNetHdrBytes + kNetMaxFrameBytes);
  dev->bounce_.reserve(kNetHdrBytes + kNetMaxFrameBytes);
  auto worker = DeviceWorker::start(
      "nv-net", 2,
      [raw = dev.get()](uint16_t doorbell) {
        // Bounded work under the device mutex: at most kNetBudget frames per call (the tap is
        // non-blocking), so a vCPU's register access or a hot-plug waits at most that long.
        std::lock_guard guard(raw->lock());
        return raw->on_doorbell(doorbell);
      },
      {dev->epoll_.get()});
  if (!worker) return worker.error();
  dev->worker_ = std::move(worker).value();
  return dev;
}

NetDevice::~NetDevice() { worker_.reset(); }

Status NetDevice::set_tap(UniqueFd tap) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = tap.get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, tap.get(), &ev) != 0) {
    return sys_error(errno, "epoll_ctl", "cannot poll the tap");
  }
  tap_ = std::move(tap);
  frame_len_ = 0;
  return {};
}

void NetDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
  NetConfig config{};
  for (size_t i = 0; i < 6; i++) config.mac[i] = mac_[i];
  config.status = tap_ ? kNetStatusLinkUp : 0;
  read_config_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&config), sizeof config), offset, data);
}

Status NetDevice::activate(GuestMemory& mem, InterruptSink& interrupts) {
  mem_ = &mem;
  interrupts_ = &interrupts;
  set_activated(true);
  wake_all();
  return {};
}

void NetDevice::reset() {
  set_activated(false);
  mem_ = nullptr;
  interrupts_ = nullptr;
}

void NetDevice::kick(uint16_t queue) { worker_->ring(queue); }

void NetDevice::wake_all() {
  worker_->ring(kReceiveQueue);
  worker_->ring(kTransmitQueue);
}

void NetDevice::stop_serving() {
  stats_.ring_errors++;
  set_activated(false);
  if (interrupts_ != nullptr) interrupts_->needs_reset();
}

bool NetDevice::on_doorbell(uint16_t doorbell) {
  if (!activated() || paused() || mem_ == nullptr) {
    // Not serving: stop polling the tap until the driver (re)starts us (kick or activate).
    worker_->watch(0, false);
    return false;
  }
  if (doorbell == kTransmitQueue) return transmit();
  // The receive doorbell (new buffers) or the tap (new frames); a tap still readable after
  // the budget wakes the worker's next poll by itself.
  receive();
  return false;
}

void NetDevice::receive() {
  Queue& rx = queues()[kReceiveQueue];
  if (!rx.ready || !tap_) return worker_->watch(0, false);
  bool used_any = false;
  bool room = true;
  for (uint32_t n = 0; n < kNetBudget && !stop_requested(); n++) {
    if (frame_len_ == 0) {
      const ssize_t got = ::read(tap_.get(), frame_.data(), frame_.size());
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;  // EAGAIN: the tap is empty (the worker keeps polling it)
      if (static_cast<size_t>(got) < kNetHdrBytes) continue;
      frame_len_ = static_cast<size_t>(got);
    }
    auto popped = rx.pop(*mem_);
    if (!popped) {
      stop_serving();
      break;
    }
    if (!popped.value()) {
      room = false;  // keep the frame until the guest offers a buffer
      break;
    }
    PoppedChain& entry = *popped.value();
    uint32_t len = 0;
    if (entry.chain) {
      len = deliver_rx_frame(*mem_, *entry.chain, std::span<uint8_t>(frame_.data(), frame_len_));
      if (len == 0) {
        stats_.rx_dropped++;
      } else {
        stats_.rx_frames++;
      }
      frame_len_ = 0;
    } else {
      stats_.bad_chains++;  // the frame waits for a well-formed buffer
    }
    if (!rx.add_used(*mem_, entry.head, len).ok()) {
      stop_serving();
      break;
    }
    used_any = true;
  }
  // No receive buffer: stop polling the tap, or a readable tap would spin the worker; the
  // driver's next receive notification starts it again.
  worker_->watch(0, room && activated());
  if (used_any && interrupts_ != nullptr && rx.needs_interrupt(*mem_)) interrupts_->used_buffer();
}

bool NetDevice::transmit() {
  Queue& tx = queues()[kTransmitQueue];
  if (!tx.ready) return false;
  bool used_any = false;
  uint32_t n = 0;
  for (; n < kNetBudget && !stop_requested(); n++) {
    auto popped = tx.pop(*mem_);
    if (!popped) {
      stop_serving();
      break;
    }
    if (!popped.value()) break;
    PoppedChain& entry = *popped.value();
    if (!entry.chain || !read_tx_frame(*mem_, *entry.chain, bounce_)) {
      stats_.bad_chains++;
    } else if (!tap_) {
      stats_.tx_dropped++;
    } else {
      ssize_t put;
      do {
        put = ::write(tap_.get(), bounce_.data(), bounce_.size());
      } while (put < 0 && errno == EINTR);
      // A full tap queue (EAGAIN) or a frame the kernel refuses: dropped, as a NIC would.
      if (put < 0) {
        stats_.tx_dropped++;
      } else {
        stats_.tx_frames++;
      }
    }
    if (!tx.add_used(*mem_, entry.head, 0).ok()) {
      stop_serving();
      break;
    }
    used_any = true;
  }
  if (used_any && interrupts_ != nullptr && tx.needs_interrupt(*mem_)) interrupts_->used_buffer();
  // Budget spent with chains perhaps left: the worker comes back after the other doorbells
  // had a turn (and a stop could be seen).
  return n == kNetBudget && activated();
}

Status NetDevice::attach(UniqueFd tap, MacAddress mac, InterruptSink& interrupts) {
  {
    std::lock_guard guard(lock());
    if (tap_) return plain_error("EBUSY", std::string("net slot ") + name_ + " already holds a tap");
    NV_TRY(set_tap(std::move(tap)));
    mac_ = mac;
    bump_config_generation();
    worker_->ring(kReceiveQueue);
  }
  interrupts.config_changed();
  return {};
}

Status NetDevice::detach(InterruptSink& interrupts) {
  {
    std::lock_guard guard(lock());
    if (!tap_) return plain_error("ENOENT", std::string("net slot ") + name_ + " holds no tap");
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, tap_.get(), nullptr);
    tap_.reset();
    frame_len_ = 0;
    bump_config_generation();
  }
  interrupts.config_changed();
  return {};
}

bool NetDevice::has_tap() {
  std::lock_guard guard(lock());
  return tap_.valid();
}

NetDeviceStats NetDevice::stats() {
  std::lock_guard guard(lock());
  return stats_;
}

void NetDevice::save(StateWriter& out) const {
  // The tap is host state; a restored VM has no network until its endpoints are attached again.
  out.put(kNetStateVersion);
  out.put(config_generation());
  for (uint8_t b : mac_) out.put(b);
}

Status NetDevice::restore(StateReader& in) {
  uint32_t version = 0, generation = 0;
  MacAddress mac{};
  if (!in.get(version) || version != kNetStateVersion || !in.get(generation)) return truncated_state(name());
  for (uint8_t& b : mac) {
    if (!in.get(b)) return truncated_state(name());
  }
  // Restore fills empty slots only (the VM being built has no taps).
  set_config_generation(generation);
  mac_ = mac;
  return {};
}

}  // namespace nodevisor::vmm::virtio
