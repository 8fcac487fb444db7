#include "vmm/devices/virtio/console/console_device.h"

namespace nodevisor::vmm::virtio {

namespace {

constexpr uint16_t kReceiveQueue = 0;
constexpr uint16_t kTransmitQueue = 1;
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
  auto worker = DeviceWorker::start("nv-console", 2, dev->lock(),
                                    [raw = dev.get()](uint16_t doorbell) { raw->on_doorbell(doorbell); });
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
  worker_->ring(worker_->host_doorbell());
  return {};
}

void ConsoleDevice::reset() {
  set_activated(false);
  mem_ = nullptr;
  interrupts_ = nullptr;
}

void ConsoleDevice::kick(uint16_t queue) { worker_->ring(queue); }

void ConsoleDevice::wake_all() {
  worker_->ring(kReceiveQueue);
  worker_->ring(kTransmitQueue);
  worker_->ring(worker_->host_doorbell());
}

void ConsoleDevice::drain_final() {
  std::lock_guard guard(lock());
  if (activated() && mem_ != nullptr) drain_transmit_queue();
}

void ConsoleDevice::on_doorbell(uint16_t doorbell) {
  if (!activated() || paused() || mem_ == nullptr) return;
  if (doorbell == kReceiveQueue || doorbell == worker_->host_doorbell()) fill_receive_queue();
  if (doorbell == kTransmitQueue || doorbell == worker_->host_doorbell()) drain_transmit_queue();
}

void ConsoleDevice::broken_ring() {
  stats_.ring_errors++;
  set_activated(false);  // until the driver resets the device
  if (interrupts_ != nullptr) interrupts_->needs_reset();
}

void ConsoleDevice::fill_receive_queue() {
  Queue& rx = queues()[kReceiveQueue];
  if (!rx.ready) return;
  bool used_any = false;
  while (!input_.empty()) {
    auto popped = rx.pop(*mem_);
    if (!popped) return broken_ring();
    if (!popped.value()) break;  // no receive buffer: the rest waits for the guest
    PoppedChain& entry = *popped.value();
    uint32_t len = 0;
    if (entry.chain && entry.chain->writable_bytes > 0) {
      ChainWriter out(*mem_, entry.chain->writable);
      const size_t n = static_cast<size_t>(std::min<uint64_t>(out.remaining(), input_.size()));
      if (out.write(input_.front(n)).ok()) {
        input_.pop(n);
        stats_.bytes_in += n;
        len = static_cast<uint32_t>(n);
      }
    } else if (!entry.chain) {
      stats_.dropped_chains++;
    }
    if (!rx.add_used(*mem_, entry.head, len).ok()) return broken_ring();
    used_any = true;
  }
  if (used_any && rx.needs_interrupt(*mem_)) interrupts_->used_buffer();
  if (input_was_full_ && input_.room() >= input_.capacity() / 2) {
    input_was_full_ = false;
    if (notify_.input_space) notify_.input_space();
  }
}

void ConsoleDevice::drain_transmit_queue() {
  Queue& tx = queues()[kTransmitQueue];
  if (!tx.ready) return;
  const bool was_empty = output_.empty();
  bool used_any = false;
  // Take a chain only when any chain we accept fits: the guest waits while the host is slow.
  while (output_.room() >= kMaxTxChainBytes) {
    auto popped = tx.pop(*mem_);
    if (!popped) return broken_ring();
    if (!popped.value()) break;
    PoppedChain& entry = *popped.value();
    if (entry.chain && entry.chain->readable_bytes <= kMaxTxChainBytes) {
      std::vector<uint8_t> bytes(static_cast<size_t>(entry.chain->readable_bytes));
      ChainReader in(*mem_, entry.chain->readable);
      if (in.read(bytes).ok()) {
        output_.push(bytes);
        stats_.bytes_out += bytes.size();
      }
    } else {
      stats_.dropped_chains++;
    }
    if (!tx.add_used(*mem_, entry.head, 0).ok()) return broken_ring();
    used_any = true;
  }
  if (used_any && tx.needs_interrupt(*mem_)) interrupts_->used_buffer();
  if (was_empty && !output_.empty() && notify_.output_ready) notify_.output_ready();
}

size_t ConsoleDevice::write_input(std::span<const uint8_t> data) {
  size_t taken = 0;
  {
    std::lock_guard guard(lock());
    taken = input_.push(data);
    if (taken < data.size()) input_was_full_ = true;
  }
  if (taken > 0) worker_->ring(worker_->host_doorbell());
  return taken;
}

std::vector<uint8_t> ConsoleDevice::read_output(size_t max) {
  std::vector<uint8_t> out;
  bool resume = false;
  {
    std::lock_guard guard(lock());
    const size_t n = std::min(max, output_.size());
    const bool was_blocked = output_.room() < kMaxTxChainBytes;
    auto front = output_.front(n);
    out.assign(front.begin(), front.end());
    output_.pop(n);
    resume = was_blocked && output_.room() >= kMaxTxChainBytes;
  }
  // The worker stopped taking transmit buffers while the output was full.
  if (resume) worker_->ring(worker_->host_doorbell());
  return out;
}

ConsoleStats ConsoleDevice::stats() {
  std::lock_guard guard(lock());
  return stats_;
}

void ConsoleDevice::discard_host_buffers() {
  std::lock_guard guard(lock());
  input_.clear();
  output_.clear();
}

void ConsoleDevice::save(StateWriter& out) const {
  out.put(kConsoleStateVersion);
  out.put_bytes(input_.front(input_.size()));
  out.put_bytes(output_.front(output_.size()));
}

bool ConsoleDevice::restore(StateReader& in) {
  uint32_t version = 0;
  std::vector<uint8_t> input, output;
  if (!in.get(version) || version != kConsoleStateVersion || !in.get_bytes(input, kConsoleBufferBytes) ||
      !in.get_bytes(output, kConsoleBufferBytes)) {
    return false;
  }
  input_.clear();
  output_.clear();
  input_.push(input);
  output_.push(output);
  return true;
}

}  // namespace nodevisor::vmm::virtio
