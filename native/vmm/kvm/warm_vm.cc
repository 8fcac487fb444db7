#include "vmm/kvm/warm_vm.h"

#include <cstdlib>
#include <cstring>
#include <system_error>

#include "vmm/kvm/cpuid.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/util/background_thread.h"

namespace nodevisor::vmm {

bool spare_vms_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("NODEVISOR_WARM_VM");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

WarmVmCache& WarmVmCache::instance() {
  static WarmVmCache cache;
  return cache;
}

void WarmVmCache::start_thread() {
  if (thread_.joinable()) return;
  try {
    thread_ = start_background_thread("nv-prewarm", [this] { run(); });
  } catch (const std::system_error&) {
    // No thread to spare (EAGAIN): starts simply make their own VMs; asked again next time.
  }
}

std::unique_ptr<WarmVm> WarmVmCache::take(uint64_t memory_bytes, uint32_t vcpus) {
  if (!spare_vms_enabled()) return nullptr;
  std::unique_ptr<WarmVm> out;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return nullptr;
    start_thread();
    if (spare_ && spare_bytes_ == memory_bytes && spare_vcpus_ == vcpus) out = std::move(spare_);
    wanted_bytes_ = memory_bytes;
    wanted_vcpus_ = vcpus;
  }
  wanted_changed_.notify_one();
  return out;
}

KvmVm WarmVmCache::take_empty() {
  if (!spare_vms_enabled()) return KvmVm{};
  KvmVm out;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return KvmVm{};
    start_thread();
    out = std::move(empty_);
    empty_ = KvmVm{};
    empty_wanted_ = true;
  }
  wanted_changed_.notify_one();
  return out;
}

bool WarmVmCache::has_work() const {
  const bool spare_fits = spare_ && spare_bytes_ == wanted_bytes_ && spare_vcpus_ == wanted_vcpus_;
  return (wanted_bytes_ != 0 && !spare_fits) || (empty_wanted_ && empty_.fd() < 0);
}

namespace {

// Guest memory, the VM with its memory slot, irqchip and PIT, and `vcpus` vCPUs with the
// CPUID vm.cc gives them; nullptr when any step fails.
std::unique_ptr<WarmVm> prepare(uint64_t bytes, uint32_t vcpus) {
  auto system = KvmSystem::get();
  if (!system.ok()) return nullptr;
  auto memory = GuestMemory::create(bytes);
  if (!memory.ok()) return nullptr;
  auto owned = std::make_unique<GuestMemory>(std::move(memory.value()));
  auto vm = KvmVm::create(*owned);
  if (!vm.ok()) return nullptr;
  auto made = std::make_unique<WarmVm>(std::move(owned), std::move(vm.value()), std::vector<std::unique_ptr<KvmVcpu>>{});
  for (uint32_t index = 0; index < vcpus; ++index) {
    auto vcpu = KvmVcpu::create(made->vm, index);
    if (!vcpu.ok()) return nullptr;
    auto v = std::make_unique<KvmVcpu>(std::move(vcpu.value()));
    if (!v->set_cpuid(vcpu_cpuid(system.value()->supported_cpuid(), index, vcpus)).ok()) return nullptr;
    made->vcpus.push_back(std::move(v));
  }
  return made;
}

}  // namespace

void WarmVmCache::settle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return stopping_ || !thread_.joinable() || (!preparing_ && !has_work()); });
}

void WarmVmCache::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wanted_changed_.wait(lock, [this] { return stopping_ || has_work(); });
    if (stopping_) return;
    preparing_ = true;
    if (empty_wanted_ && empty_.fd() < 0) {
      lock.unlock();
      auto vm = KvmVm::create_empty();
      lock.lock();
      if (vm.ok()) {
        empty_ = std::move(vm.value());
      } else {
        empty_wanted_ = false;  // a restore makes its own (and reports why)
      }
    } else {
      const uint64_t bytes = wanted_bytes_;
      const uint32_t vcpus = wanted_vcpus_;
      std::unique_ptr<WarmVm> other_size = std::move(spare_);
      lock.unlock();
      if (other_size) {
        other_size->vcpus.clear();  // vCPUs before their VM
        other_size.reset();  // a spare nobody asks for any more (closing it waits in the kernel)
      }
      std::unique_ptr<WarmVm> made = prepare(bytes, vcpus);
      lock.lock();
      if (made) {
        spare_ = std::move(made);
        spare_bytes_ = bytes;
        spare_vcpus_ = vcpus;
      } else if (wanted_bytes_ == bytes && wanted_vcpus_ == vcpus) {
        wanted_bytes_ = 0;  // it failed: a cold start makes its own (and reports why)
      }
    }
    preparing_ = false;
    idle_.notify_all();
  }
}

WarmVmCache::~WarmVmCache() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wanted_changed_.notify_all();
  idle_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace nodevisor::vmm
