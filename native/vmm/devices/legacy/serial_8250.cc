#include "vmm/devices/legacy/serial_8250.h"

#include "vmm/util/state_codec.h"

namespace nodevisor::vmm {

namespace {

// Register offsets.
constexpr uint64_t kData = 0;  // RBR (read) / THR (write) / DLL (DLAB)
constexpr uint64_t kIer = 1;   // IER / DLM (DLAB)
constexpr uint64_t kIir = 2;   // IIR (read) / FCR (write)
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerReceived = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirReceived = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
constexpr uint8_t kMcrLoop = 0x10;
// Modem status with carrier detect, data set ready, clear to send: "a terminal is there".
constexpr uint8_t kMsrConnected = 0xb0;

constexpr uint32_t kStateTag = state_tag("S825");
constexpr uint32_t kStateVersion = 1;

}  // namespace

Serial8250::Serial8250(OutputFn output, InterruptFn interrupt)
    : output_(std::move(output)), interrupt_(std::move(interrupt)) {}

bool Serial8250::interrupt_pending() const {
  return ((ier_ & kIerReceived) && !input_.empty()) || ((ier_ & kIerThrEmpty) && thr_empty_interrupt_);
}

uint8_t Serial8250::interrupt_identification() const {
  uint8_t fifo = (fcr_ & 0x01) ? kIirFifoEnabled : 0;
  if ((ier_ & kIerReceived) && !input_.empty()) return fifo | kIirReceived;
  if ((ier_ & kIerThrEmpty) && thr_empty_interrupt_) return fifo | kIirThrEmpty;
  return fifo | kIirNone;
}

size_t Serial8250::enqueue_input(std::span<const uint8_t> bytes) {
  bool raise = false;
  size_t accepted = 0;
  {
    std::lock_guard lock(mutex_);
    const bool was_empty = input_.empty();
    accepted = std::min(bytes.size(), kInputCapacity - input_.size());
    input_.insert(input_.end(), bytes.begin(), bytes.begin() + accepted);
    raise = was_empty && accepted > 0 && (ier_ & kIerReceived);
  }
  if (raise) interrupt_();
  return accepted;
}

uint8_t Serial8250::read_register(uint64_t offset) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) return dll_;
      if (input_.empty()) return 0;
      {
        uint8_t byte = input_.front();
        input_.pop_front();
        return byte;
      }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlh_ : ier_;
    case kIir: {
      uint8_t iir = interrupt_identification();
      // Reading IIR acknowledges a THR-empty interrupt.
      if ((iir & 0x0f) == kIirThrEmpty) thr_empty_interrupt_ = false;
      return iir;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return static_cast<uint8_t>((input_.empty() ? 0 : kLsrDataReady) | kLsrThrEmpty | kLsrIdle);
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback: modem outputs (DTR, RTS, OUT1, OUT2) read back as DSR, CTS, RI, DCD.
        return static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) | ((mcr_ & 0x04) << 4) |
                                    ((mcr_ & 0x08) << 4));
      }
      return kMsrConnected;
    case kScr:
      return scr_;
    default:
      return 0xff;
  }
}

void Serial8250::write_register(uint64_t offset, uint8_t value, bool& raise, bool& emit, uint8_t& out) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return;
      }
      if (mcr_ & kMcrLoop) {
        if (input_.size() < kInputCapacity) input_.push_back(value);
        raise = (ier_ & kIerReceived) != 0;
      } else {
        emit = true;
        out = value;
      }
      // The byte left at once: THR is empty again.
      thr_empty_interrupt_ = true;
      if (ier_ & kIerThrEmpty) raise = true;
      return;
    case kIer: {
      if (lcr_ & kLcrDlab) {
        dlh_ = value;
        return;
      }
      const uint8_t before = ier_;
      ier_ = value & 0x0f;
      // Enabling the THR-empty interrupt while THR is empty raises it (Linux relies on this).
      if ((ier_ & kIerThrEmpty) && !(before & kIerThrEmpty)) {
        thr_empty_interrupt_ = true;
        raise = true;
      }
      if ((ier_ & kIerReceived) && !input_.empty()) raise = true;
      return;
    }
    case kIir:
      fcr_ = value;
      if (value & 0x02) input_.clear();  // reset the receive FIFO
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & 0x1f;
      return;
    case kScr:
      scr_ = value;
      return;
    default:
      return;  // LSR and MSR are read-only
  }
}

void Serial8250::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  // Wider accesses read consecutive registers, as the ISA bus splits them.
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < kPortCount ? read_register(offset + i) : 0xff;
}

void Serial8250::write(uint64_t offset, std::span<const uint8_t> data) {
  bool raise = false;
  for (size_t i = 0; i < data.size() && offset + i < kPortCount; ++i) {
    bool emit = false;
    uint8_t out = 0;
    {
      std::lock_guard lock(mutex_);
      write_register(offset + i, data[i], raise, emit, out);
    }
    if (emit) output_(out);
  }
  if (raise) interrupt_();
}

std::vector<uint8_t> Serial8250::save() const {
  std::lock_guard lock(mutex_);
  StateWriter w(kStateTag, kStateVersion);
  w.put(ier_);
  w.put(lcr_);
  w.put(mcr_);
  w.put(scr_);
  w.put(fcr_);
  w.put(dll_);
  w.put(dlh_);
  w.put(static_cast<uint8_t>(thr_empty_interrupt_));
  std::vector<uint8_t> input(input_.begin(), input_.end());
  w.put_bytes(input);
  return w.take();
}

Status Serial8250::restore(std::span<const uint8_t> state) {
  StateReader r(state);
  NV_TRY(r.expect_header(kStateTag, kStateVersion, "serial"));
  uint8_t ier, lcr, mcr, scr, fcr, dll, dlh, thr;
  std::vector<uint8_t> input;
  if (!r.get(ier) || !r.get(lcr) || !r.get(mcr) || !r.get(scr) || !r.get(fcr) || !r.get(dll) || !r.get(dlh) ||
      !r.get(thr) || !r.get_bytes(input, kInputCapacity) || !r.at_end()) {
    return truncated_state("serial");
  }
  std::lock_guard lock(mutex_);
  ier_ = ier & 0x0f;
  lcr_ = lcr;
  mcr_ = mcr & 0x1f;
  scr_ = scr;
  fcr_ = fcr;
  dll_ = dll;
  dlh_ = dlh;
  thr_empty_interrupt_ = thr != 0;
  input_.assign(input.begin(), input.end());
  return {};
}

}  // namespace nodevisor::vmm
