// virtio-net (virtio 1.2 §5.1): one receive and one transmit queue, the MAC in config space,
// link status, backed by a tap fd (sys/tap.h: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with a 12-byte
// virtio_net_hdr). The header is passed through both ways: no offload is offered, so the
// guest's headers say "no checksum, no GSO" and the tap gives complete frames.
//
// A slot can be empty (no tap, link down) and get a tap attached or detached while the guest
// runs — the endpoint hot-plug of Kata (B39). Attaching sets the MAC and link up and raises a
// config-change interrupt.
//
// Bounded work: one wake-up moves at most kNetBudget frames each way, then gives the worker
// (and the device mutex) back; the rest is picked up on the next turn (the tap stays readable,
// the transmit doorbell is rung again). A guest that offers no receive buffers only stops the
// device reading its tap (the kernel then drops frames at the tap's queue), never spins it.
// A malformed chain is consumed and counted; a broken ring stops the device until a reset.
//
// Threads: queue and tap I/O on the device's worker thread; attach/detach on a libuv worker;
// all under the device mutex.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sys/unique_fd.h"
#include "vmm/devices/virtio/device_worker.h"
#include "vmm/devices/virtio/virtio_device.h"

namespace nodevisor::vmm::virtio {

inline constexpr uint32_t kDeviceIdNet = 1;
inline constexpr uint64_t kNetFeatureMac = 1ull << 5;
inline constexpr uint64_t kNetFeatureStatus = 1ull << 16;
inline constexpr uint16_t kNetStatusLinkUp = 1;

// struct virtio_net_hdr with num_buffers (always present with VERSION_1).
inline constexpr uint32_t kNetHdrBytes = 12;
// The largest frame (without the header) the device moves: a 64 KiB IP packet plus Ethernet.
inline constexpr uint32_t kNetMaxFrameBytes = 65536 + 14;
// Frames per direction per wake-up.
inline constexpr uint32_t kNetBudget = 64;

using MacAddress = std::array<uint8_t, 6>;

struct NetDeviceStats {
  uint64_t rx_frames = 0;      // tap → guest
  uint64_t tx_frames = 0;      // guest → tap
  uint64_t rx_dropped = 0;     // a frame larger than the guest's buffer
  uint64_t tx_dropped = 0;     // a frame the tap refused, or sent while no tap is attached
  uint64_t bad_chains = 0;     // malformed descriptor chains (consumed, answered with 0)
  uint64_t ring_errors = 0;    // broken rings (the device then needs a reset)
};

class NetDevice final : public VirtioDevice {
 public:
  // `tap` may be invalid (an empty hot-plug slot).
  static Result<std::shared_ptr<NetDevice>> create(std::string name, MacAddress mac, UniqueFd tap);
  ~NetDevice() override;

  uint32_t device_id() const override { return kDeviceIdNet; }
  uint64_t device_features() const override { return kNetFeatureMac | kNetFeatureStatus; }
  const char* name() const override { return name_.c_str(); }

  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, InterruptSink& interrupts) override;
  void reset() override;
  void kick(uint16_t queue) override;
  void wake_all() override;
  void save(StateWriter& out) const override;
  Status restore(StateReader& in) override;

  // Hot-plug (device mutex taken inside). `interrupts` is the transport, to announce it.
  Status attach(UniqueFd tap, MacAddress mac, InterruptSink& interrupts);
  Status detach(InterruptSink& interrupts);
  bool has_tap();
  NetDeviceStats stats();

  int queue_eventfd(uint16_t queue) const { return worker_->queue_eventfd(queue); }

 private:
  NetDevice(std::string name, MacAddress mac) : VirtioDevice(2), name_(std::move(name)), mac_(mac) {}
  bool on_doorbell(uint16_t doorbell);  // worker thread, mutex held
  void receive();                       // tap → rx queue
  bool transmit();                      // tx queue → tap
  void stop_serving();
  Status set_tap(UniqueFd tap);         // mutex held

  std::string name_;
  MacAddress mac_;
  UniqueFd tap_;
  // The tap is polled through this epoll fd, so the worker's watched fd stays the same while
  // taps come and go.
  UniqueFd epoll_;
  std::vector<uint8_t> frame_;   // header + frame read from the tap, not yet delivered
  size_t frame_len_ = 0;         // 0: none pending
  std::vector<uint8_t> bounce_;  // a transmit chain's bytes
  GuestMemory* mem_ = nullptr;
  InterruptSink* interrupts_ = nullptr;
  NetDeviceStats stats_;
  std::unique_ptr<DeviceWorker> worker_;
};

}  // namespace nodevisor::vmm::virtio
