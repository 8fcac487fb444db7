#include "vmm/devices/virtio/console/console_device.h"

namespace nodevisor::vmm::virtio {

namespace {

constexpr uint16_t kReceiveQueue = 0;
constexpr uint16_t kTransmitQueue = 1;
// The worker's extra doorbell for host-side work (DeviceWorker: index == queue count). A
// constant, not worker_->host_doorbell(): the handler may still run while ~ConsoleDevice
// resets worker_ (unique_ptr::reset clears the pointer before it joins the thread).
constexpr uint16_t kHostDoorbell = 2;
constexpr uint32_t kConsoleStateVersion = 1;

// virtio_console_config: cols, rows, max_nr_ports, emerg_wr. Without F_SIZE and
// F_MULTIPORT the driver reads none of it; report an 80x25 single-port console.
struct ConsoleConfig {
  uint16_t cols;
  uint16_t rows;
  uint32_t max_nr_ports;
  uint32_t emerg_wr;
};

}  // namespace

Result<std::shared_ptr<ConsoleDevice>> ConsoleDevice::create(std::string name, ConsoleNotifications notify) {
  std::shared_ptr<ConsoleDevice> dev(new ConsoleDevice(std::move(name), std::move(notify)));
  auto worker = DeviceWorker::start("nv-console", 2, [raw = dev.get()](uint16_t doorbell) { return raw->on_doorbell(doorbell); });
  if (!worker) return worker.error();
  dev->worker_ = std::move(worker).value();
  return dev;
}

ConsoleDevice::~ConsoleDevice() { worker_.reset(); }

void ConsoleDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
  const ConsoleConfig config{80, 25, 1, 0};
  read_config_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&config), sizeof config), offset, data);
}

Status ConsoleDevice::activate(GuestMemory& mem, InterruptSink& interrupts) {
  mem_ = &mem;
  interrupts_ = &interrupts;
  set_activated(true);
  worker_->ring(kHostDoorbell);
  return {};
}

void ConsoleDevice::reset() {
  set_activated(false);
  mem_ = nullptr;
  interrupts_ = nullptr;
}

void ConsoleDevice::kick(uint16_t queue) { worker_->ring(queue); }

void ConsoleDevice::wake_all() {
  // The host doorbell serves both queues (on_doorbell): one eventfd write instead of three on
  // every resume, which is on the pool hand-over's path.
  worker_->ring(kHostDoorbell);
}

void ConsoleDevice::drain_final() {
  std::lock_guard guard(lock());
  // Everything the guest queued (each chain is at most kMaxTxChainBytes, the ring at most
  // 256 chains): the budget only bounds the loop.
  if (activated() && mem_ != nullptr) (void)drain_transmit_queue(kMaxQueueSize);
}

bool ConsoleDevice::on_doorbell(uint16_t doorbell) {
  std::lock_guard guard(lock());
  if (!activated() || paused() || mem_ == nullptr) return false;
  bool more = false;
  if (doorbell == kReceiveQueue || doorbell == kHostDoorbell) {
    more |= fill_receive_queue(kConsoleChainsPerWakeup);
  }
  if (activated() && (doorbell == kTransmitQueue || doorbell == kHostDoorbell)) {
    more |= drain_transmit_queue(kConsoleChainsPerWakeup);
  }
  return more;
}

void ConsoleDevice::broken_ring() {
  stats_.ring_errors++;
  set_activated(false);  // until the driver resets the device
  if (interrupts_ != nullptr) interrupts_->needs_reset();
}

bool ConsoleDevice::fill_receive_queue(uint32_t budget) {
  Queue& rx = queues()[kReceiveQueue];
  if (!rx.ready) return false;
  bool used_any = false;
  bool more = false;
  for (uint32_t taken = 0;; taken++) {
    {
      std::lock_guard buffers(buffer_mutex_);
      if (input_.empty()) break;
    }
    if (taken == budget) {
      more = true;
      break;
    }
    auto popped = rx.pop(*mem_);
    if (!popped) {
      broken_ring();
      return false;
    }
    if (!popped.value()) break;  // no receive buffer: the rest waits for the guest
    PoppedChain& entry = *popped.value();
    uint32_t len = 0;
    if (entry.chain && entry.chain->writable_bytes > 0) {
      ChainWriter out(*mem_, entry.chain->writable);
      // Copied out under the buffer lock (a push may move the buffer), written to the guest
      // without it, then consumed: only this thread takes bytes out of input_.
      {
        std::lock_guard buffers(buffer_mutex_);
        const size_t n = static_cast<size_t>(std::min<uint64_t>(out.remaining(), input_.size()));
        auto front = input_.front(n);
        scratch_.assign(front.begin(), front.end());
      }
      if (out.write(scratch_).ok()) {
        std::lock_guard buffers(buffer_mutex_);
        input_.pop(scratch_.size());
        stats_.bytes_in += scratch_.size();
        len = static_cast<uint32_t>(scratch_.size());
      }
    } else if (!entry.chain) {
      stats_.dropped_chains++;
    }
    if (!rx.add_used(*mem_, entry.head, len).ok()) {
      broken_ring();
      return false;
    }
    used_any = true;
  }
  if (used_any && rx.needs_interrupt(*mem_)) interrupts_->used_buffer();
  bool space = false;
  {
    std::lock_guard buffers(buffer_mutex_);
    if (input_was_full_ && input_.room() >= input_.capacity() / 2) {
      input_was_full_ = false;
      space = true;
    }
  }
  if (space && notify_.input_space) notify_.input_space();
  return more;
}

bool ConsoleDevice::drain_transmit_queue(uint32_t budget) {
  Queue& tx = queues()[kTransmitQueue];
  if (!tx.ready) return false;
  bool was_empty;
  {
    std::lock_guard buffers(buffer_mutex_);
    was_empty = output_.empty();
  }
  bool used_any = false;
  bool more = false;
  // Take a chain only when any chain we accept fits: the guest waits while the host is slow.
  // Only this thread adds to output_, so the room seen here can only grow meanwhile.
  for (uint32_t taken = 0;; taken++) {
    {
      std::lock_guard buffers(buffer_mutex_);
      if (output_.room() < kMaxTxChainBytes) break;
    }
    if (taken == budget) {
      more = true;
      break;
    }
    auto popped = tx.pop(*mem_);
    if (!popped) {
      broken_ring();
      return false;
    }
    if (!popped.value()) break;
    PoppedChain& entry = *popped.value();
    if (entry.chain && entry.chain->readable_bytes <= kMaxTxChainBytes) {
      std::vector<uint8_t> bytes(static_cast<size_t>(entry.chain->readable_bytes));
      ChainReader in(*mem_, entry.chain->readable);
      if (in.read(bytes).ok()) {
        std::lock_guard buffers(buffer_mutex_);
        output_.push(bytes);
        stats_.bytes_out += bytes.size();
      }
    } else {
      stats_.dropped_chains++;
    }
    if (!tx.add_used(*mem_, entry.head, 0).ok()) {
      broken_ring();
      return false;
    }
    used_any = true;
  }
  if (used_any && tx.needs_interrupt(*mem_)) interrupts_->used_buffer();
  bool ready;
  {
    std::lock_guard buffers(buffer_mutex_);
    ready = was_empty && !output_.empty();
  }
  if (ready && notify_.output_ready) notify_.output_ready();
  return more;
}

size_t ConsoleDevice::queue_input(std::span<const uint8_t> data) {
  std::lock_guard buffers(buffer_mutex_);
  const size_t taken = input_.push(data);
  if (taken < data.size()) input_was_full_ = true;
  return taken;
}

size_t ConsoleDevice::write_input(std::span<const uint8_t> data) {
  const size_t taken = queue_input(data);
  if (taken > 0) worker_->ring(kHostDoorbell);
  return taken;
}

std::vector<uint8_t> ConsoleDevice::read_output(size_t max) {
  std::vector<uint8_t> out;
  bool resume = false;
  {
    std::lock_guard buffers(buffer_mutex_);
    const size_t n = std::min(max, output_.size());
    const bool was_blocked = output_.room() < kMaxTxChainBytes;
    auto front = output_.front(n);
    out.assign(front.begin(), front.end());
    output_.pop(n);
    resume = was_blocked && output_.room() >= kMaxTxChainBytes;
  }
  // The worker stopped taking transmit buffers while the output was full.
  if (resume) worker_->ring(kHostDoorbell);
  return out;
}

ConsoleStats ConsoleDevice::stats() {
  std::lock_guard guard(lock());
  return stats_;
}

void ConsoleDevice::fill_receive_buffers() {
  std::lock_guard guard(lock());
  if (activated() && mem_ != nullptr) (void)fill_receive_queue(kConsoleChainsPerWakeup);
}

void ConsoleDevice::discard_host_buffers() {
  std::lock_guard guard(lock());
  input_.clear();
  output_.clear();
}

void ConsoleDevice::save(StateWriter& out) const {
  std::lock_guard buffers(buffer_mutex_);
  out.put(kConsoleStateVersion);
  out.put_bytes(input_.front(input_.size()));
  out.put_bytes(output_.front(output_.size()));
}

Status ConsoleDevice::restore(StateReader& in) {
  uint32_t version = 0;
  std::vector<uint8_t> input, output;
  if (!in.get(version) || version != kConsoleStateVersion || !in.get_bytes(input, kConsoleBufferBytes) ||
      !in.get_bytes(output, kConsoleBufferBytes)) {
    return truncated_state(name());
  }
  std::lock_guard buffers(buffer_mutex_);
  input_.clear();
  output_.clear();
  input_.push(input);
  output_.push(output);
  return {};
}

}  // namespace nodevisor::vmm::virtio
