// N-API binding of native/vmm's Vm: `vmCreate(config, onEvent)` and `vmRestore(dir, onEvent)`
// -> Promise<VmHandle>, and the handle's methods (start, pause, resume, stop, snapshot,
// writeConsole, postWaitWord, state, generation, and a debug helper for tests). src/vm/vm.ts
// wraps this into the public `Vm` class.
//
// Threads:
// - Every function here is entered on the JS thread.
// - Building the VM (file reads, KVM ioctls), pause and stop (they wait for vCPU threads)
//   run on libuv workers through PromiseWorker; they touch only the plain-C++ VmSession.
// - vCPU threads report through VmEventQueue (one ThreadSafeFunction per VM) and never see
//   N-API. The TSFN is referenced only while the VM runs, so a created or stopped VM does
//   not keep the process alive.
// - Teardown: `stop` is idempotent. The handle's finalizer and the environment cleanup hook
//   run on the JS thread, so they never join: they close the event queue (no event reaches
//   JS after that), release the TSFN, and hand the VM to the reapers (vmm/util/reaper.h),
//   which stops it in the background and before the process exits.
#include <napi.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>

#include "addon/errors.h"
#include "addon/exports.h"
#include "addon/promise_worker.h"
#include "addon/vm_events.h"
#include "guest/probe/probe_abi.h"
#include "vmm/devices/legacy/vm_generation.h"
#include "vmm/devices/legacy/wait_port.h"
#include "vmm/devices/virtio/console/console_device.h"
#include "vmm/kvm/warm_vm.h"
#include "vmm/restore_spares.h"
#include "vmm/util/reaper.h"
#include "vmm/vm.h"

namespace nodevisor::addon {

namespace {

// What a VM handle owns; shared with in-flight workers so a handle collected while a stop
// runs cannot free the VM under it.
struct VmSession : std::enable_shared_from_this<VmSession> {
  std::shared_ptr<VmEventQueue> events = std::make_shared<VmEventQueue>();
  std::unique_ptr<vmm::Vm> vm;
  bool tsfn_released = false;  // JS thread only
  bool handed_off = false;     // JS thread only

  // JS thread, when nobody can use the VM any more (finalizer, environment teardown, a
  // failed create). Lets the TSFN go, then has the reaper stop the VM: never a join here.
  void abandon(Napi::Env env) {
    if (!tsfn_released) {
      events->close();
      events->tsfn().Unref(env);
      events->tsfn().Release();
      tsfn_released = true;
    }
    // A VM already stopped holds no thread or guest memory any more: nothing to hand over.
    if (vm && !handed_off && vm->state() != vmm::VmState::kStopped) {
      handed_off = true;
      vmm::Reaper::instance().run_later([session = shared_from_this()] { session->vm->stop(); });
    }
  }
};

Napi::Value slot_to_js(Napi::Env env, const uint32_t& slot) { return Napi::Number::New(env, slot); }

Napi::Promise resolved(Napi::Env env, const Status& status) {
  auto deferred = Napi::Promise::Deferred::New(env);
  if (status.ok()) {
    deferred.Resolve(env.Undefined());
  } else {
    deferred.Reject(make_error(env, to_failure(status.error())).Value());
  }
  return deferred.Promise();
}

// The probe guest parks on the wait port (guest/probe/probe_abi.h); a Linux guest never reads
// it, so every VM gets the probe's words. The VMM itself does not know the probe.
static_assert(vmm::WaitPort::kPort == PROBE_WAIT_PORT, "probe_abi.h and the VMM disagree on the wait port");
static_assert(vmm::VmGeneration::kPort == PROBE_VM_GENERATION_PORT, "probe_abi.h and the VMM disagree on the port");
constexpr vmm::WaitPortWords kProbeWaitWords{PROBE_CMD_CONSOLE_INPUT, PROBE_CMD_VIRTIO};

// A disk as JS describes it ({path, readOnly?, serial?}); validated in src/vm first.
vmm::virtio::DiskConfig disk_config(const Napi::Object& js) {
  vmm::virtio::DiskConfig disk;
  disk.path = js.Get("path").As<Napi::String>().Utf8Value();
  disk.read_only = js.Has("readOnly") && js.Get("readOnly").ToBoolean().Value();
  if (js.Has("serial") && js.Get("serial").IsString()) disk.serial = js.Get("serial").As<Napi::String>().Utf8Value();
  return disk;
}

// A network endpoint as JS describes it ({tapFd} or {tapName, netns?}, mac as 6 numbers);
// validated in src/vm first.
vmm::virtio::NetdevConfig netdev_config(const Napi::Object& js) {
  vmm::virtio::NetdevConfig net;
  if (js.Has("tapFd") && js.Get("tapFd").IsNumber()) net.tap_fd = js.Get("tapFd").As<Napi::Number>().Int32Value();
  if (js.Has("tapName") && js.Get("tapName").IsString()) net.tap_name = js.Get("tapName").As<Napi::String>().Utf8Value();
  if (js.Has("netns") && js.Get("netns").IsString()) net.netns = js.Get("netns").As<Napi::String>().Utf8Value();
  Napi::Array mac = js.Get("mac").As<Napi::Array>();
  for (uint32_t i = 0; i < net.mac.size() && i < mac.Length(); i++) {
    net.mac[i] = static_cast<uint8_t>(mac.Get(i).As<Napi::Number>().Uint32Value());
  }
  return net;
}

class VmHandle final : public Napi::ObjectWrap<VmHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "VmHandle",
                       {InstanceMethod<&VmHandle::start>("start"), InstanceMethod<&VmHandle::pause>("pause"),
                        InstanceMethod<&VmHandle::resume>("resume"), InstanceMethod<&VmHandle::stop>("stop"),
                        InstanceMethod<&VmHandle::state>("state"),
                        InstanceMethod<&VmHandle::write_console>("writeConsole"),
                        InstanceMethod<&VmHandle::post_wait_word>("postWaitWord"),
                        InstanceMethod<&VmHandle::attach_disk>("attachDisk"),
                        InstanceMethod<&VmHandle::detach_disk>("detachDisk"),
                        InstanceMethod<&VmHandle::attach_net>("attachNet"),
                        InstanceMethod<&VmHandle::detach_net>("detachNet"),
                        InstanceMethod<&VmHandle::write_agent>("writeAgent"),
                        InstanceMethod<&VmHandle::read_agent>("readAgent"),
                        InstanceMethod<&VmHandle::snapshot>("snapshot"),
                        InstanceMethod<&VmHandle::generation>("generation"),
                        InstanceMethod<&VmHandle::debug_read_guest>("debugReadGuest")});
  }

  // Called through the constructor from build_vm (its to_js) with an External<shared_ptr>.
  explicit VmHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VmHandle>(info) {
    auto* session = info[0].As<Napi::External<std::shared_ptr<VmSession>>>().Data();
    session_ = *session;
    env_ = info.Env();
    napi_add_env_cleanup_hook(env_, &VmHandle::on_env_cleanup, this);
  }

  // JS thread (GC finalizer, or environment teardown).
  ~VmHandle() override {
    if (!cleanup_ran_) napi_remove_env_cleanup_hook(env_, &VmHandle::on_env_cleanup, this);
    session_->abandon(env_);
  }

 private:
  // JS thread, while the environment shuts down: no event may reach JS after this; the
  // reaper stops the VM (before the process exits).
  static void on_env_cleanup(void* self) {
    auto* handle = static_cast<VmHandle*>(self);
    handle->cleanup_ran_ = true;
    handle->session_->abandon(handle->env_);
  }

  Napi::Value start(const Napi::CallbackInfo& info) {
    // Spawning the vCPU threads is quick and never waits on the guest: done right here.
    // start(true): the vCPUs start parked (a restored VM asked to stay paused).
    const bool paused = info.Length() > 0 && info[0].ToBoolean().Value();
    Status status = session_->vm->start(paused);
    if (status.ok() && !session_->tsfn_released) session_->events->tsfn().Ref(info.Env());
    return resolved(info.Env(), status);
  }

  Napi::Value pause(const Napi::CallbackInfo& info) {
    auto session = session_;
    return PromiseWorker<void>::start(info.Env(), "nodevisor.vm.pause", [session] { return session->vm->pause(); });
  }

  Napi::Value resume(const Napi::CallbackInfo& info) { return resolved(info.Env(), session_->vm->resume()); }

  Napi::Value stop(const Napi::CallbackInfo& info) {
    auto session = session_;
    return PromiseWorker<void>::start(info.Env(), "nodevisor.vm.stop", [session] {
      session->vm->stop();
      return Status{};
    });
  }

  Napi::Value state(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), vmm::vm_state_name(session_->vm->state()));
  }

  Napi::Value write_console(const Napi::CallbackInfo& info) {
    auto bytes = info[0].As<Napi::Uint8Array>();
    size_t accepted = session_->vm->write_console(std::span<const uint8_t>(bytes.Data(), bytes.ByteLength()));
    return Napi::Number::New(info.Env(), static_cast<double>(accepted));
  }

  Napi::Value post_wait_word(const Napi::CallbackInfo& info) {
    uint32_t word = info[0].As<Napi::Number>().Uint32Value();
    return Napi::Boolean::New(info.Env(), session_->vm->post_wait_word(word));
  }

  // attachDisk({path, readOnly, serial}) -> Promise<slot>. Opening the disk may wait on the
  // device, so it runs on a libuv worker.
  Napi::Value attach_disk(const Napi::CallbackInfo& info) {
    vmm::virtio::DiskConfig disk = disk_config(info[0].As<Napi::Object>());
    auto session = session_;
    return PromiseWorker<uint32_t>::start(
        info.Env(), "nodevisor.vm.attachDisk", [session, disk] { return session->vm->attach_disk(disk); }, slot_to_js);
  }

  Napi::Value detach_disk(const Napi::CallbackInfo& info) {
    const uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    auto session = session_;
    return PromiseWorker<void>::start(info.Env(), "nodevisor.vm.detachDisk", [session, slot] { return session->vm->detach_disk(slot); });
  }

  // attachNet({tapFd | tapName, netns, mac}) -> Promise<slot>. Opening the tap enters the
  // netns on a thread of its own, so it runs on a libuv worker.
  Napi::Value attach_net(const Napi::CallbackInfo& info) {
    vmm::virtio::NetdevConfig net = netdev_config(info[0].As<Napi::Object>());
    auto session = session_;
    return PromiseWorker<uint32_t>::start(
        info.Env(), "nodevisor.vm.attachNet", [session, net] { return session->vm->attach_net(net); }, slot_to_js);
  }

  Napi::Value detach_net(const Napi::CallbackInfo& info) {
    const uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    auto session = session_;
    return PromiseWorker<void>::start(info.Env(), "nodevisor.vm.detachNet", [session, slot] { return session->vm->detach_net(slot); });
  }

  // JS thread: copies into the console's bounded input buffer (a short memcpy under the
  // device lock) and returns how many bytes it took.
  Napi::Value write_agent(const Napi::CallbackInfo& info) {
    auto bytes = info[0].As<Napi::Uint8Array>();
    size_t taken = session_->vm->write_agent(std::span<const uint8_t>(bytes.Data(), bytes.ByteLength()));
    return Napi::Number::New(info.Env(), static_cast<double>(taken));
  }

  // JS thread: takes up to `max` bytes of guest output (a Buffer, empty when there is none).
  Napi::Value read_agent(const Napi::CallbackInfo& info) {
    const uint32_t max = info[0].As<Napi::Number>().Uint32Value();
    std::vector<uint8_t> out = session_->vm->read_agent(max);
    return Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), out.size());
  }

  Napi::Value debug_read_guest(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const double address = info[0].As<Napi::Number>().DoubleValue();
    const double length = info[1].As<Napi::Number>().DoubleValue();
    if (address < 0 || length < 0 || address > 9007199254740991.0 || length > 9007199254740991.0) {
      throw Napi::RangeError::New(env, "debugReadGuest: address and length must be non-negative safe integers");
    }
    auto bytes = session_->vm->read_guest(static_cast<uint64_t>(address), static_cast<uint64_t>(length));
    if (!bytes.ok()) throw make_error(env, to_failure(bytes.error()));
    return Napi::Buffer<uint8_t>::Copy(env, bytes->data(), bytes->size());
  }

  // snapshot(dir) -> Promise<void>: writes guest memory and state on a libuv worker.
  Napi::Value snapshot(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "snapshot(dir): dir must be a string");
    std::string dir = info[0].As<Napi::String>().Utf8Value();
    auto session = session_;
    return PromiseWorker<void>::start(info.Env(), "nodevisor.vm.snapshot", [session, dir] { return session->vm->snapshot(dir); });
  }

  // JS thread: the VM generation id as 16 hex digits (64 bits do not fit a JS number).
  Napi::Value generation(const Napi::CallbackInfo& info) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(session_->vm->generation()));
    return Napi::String::New(info.Env(), text);
  }

  std::shared_ptr<VmSession> session_;
  napi_env env_ = nullptr;
  bool cleanup_ran_ = false;
};

// The JS handle of a built VM. `started`: the build also started the VM, so its events keep the
// loop alive from now on (as VmHandle::start does for a VM started from JS). JS thread.
Napi::Value vm_handle(Napi::Env env, const std::shared_ptr<VmSession>& built, Napi::FunctionReference* handle_class,
                      bool started) {
  if (started && !built->tsfn_released) built->events->tsfn().Ref(env);
  auto* external_data = new std::shared_ptr<VmSession>(built);
  auto external = Napi::External<std::shared_ptr<VmSession>>::New(
      env, external_data, [](Napi::Env, std::shared_ptr<VmSession>* data) { delete data; });
  return handle_class->Value().New({external});
}

// Builds a VM (create, or restore from a snapshot) on a libuv worker and resolves its handle;
// a failed build lets the session go. JS thread.
using BuildVm = std::function<Result<std::unique_ptr<vmm::Vm>>(vmm::VmEventSink&)>;
// `started`: as for vm_handle.
Napi::Promise build_vm(Napi::Env env, const char* name, BuildVm build, std::shared_ptr<VmSession> session,
                       Napi::FunctionReference* handle_class, bool started = false) {
  return PromiseWorker<std::shared_ptr<VmSession>>::start(
      env, name,
      [build = std::move(build), session]() -> Result<std::shared_ptr<VmSession>> {  // libuv worker
        auto vm = build(*session->events);
        if (!vm.ok()) return vm.error();
        session->vm = std::move(vm.value());
        return session;
      },
      [handle_class, started](Napi::Env env, const std::shared_ptr<VmSession>& built) -> Napi::Value {
        return vm_handle(env, built, handle_class, started);
      },
      [session](Napi::Env env) { session->abandon(env); });
}

// One session per VM, with its TSFN unreferenced until start(). The TSFN's finalizer (JS
// thread, after the last Release, when the VM threads are joined) drops the queue it kept
// alive for late calls.
std::shared_ptr<VmSession> new_session(Napi::Env env, Napi::Function on_event) {
  auto session = std::make_shared<VmSession>();
  auto queue = session->events;
  session->events->attach(
      Napi::ThreadSafeFunction::New(env, on_event, "nodevisor.vm.events", 0, 1, [queue](Napi::Env) {}));
  session->events->tsfn().Unref(env);
  return session;
}

// vmCreate(config, onEvent) -> Promise<VmHandle>. The config was validated in TS already;
// the VMM checks it again (sizes, files, ELF headers) and its errors reject the promise.
Napi::Value vm_create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    throw Napi::TypeError::New(env, "vmCreate(config, onEvent): expected an object and a function");
  }
  Napi::Object js = info[0].As<Napi::Object>();
  vmm::VmConfig config;
  config.kernel_path = js.Get("kernel").As<Napi::String>().Utf8Value();
  if (js.Has("initrd") && js.Get("initrd").IsString()) config.initrd_path = js.Get("initrd").As<Napi::String>().Utf8Value();
  if (js.Has("cmdline") && js.Get("cmdline").IsString()) config.cmdline = js.Get("cmdline").As<Napi::String>().Utf8Value();
  config.memory_mib = static_cast<uint64_t>(js.Get("memoryMiB").As<Napi::Number>().Int64Value());
  config.vcpus = js.Get("vcpus").As<Napi::Number>().Uint32Value();
  if (js.Has("hotplugSlots") && js.Get("hotplugSlots").IsNumber()) {
    config.hotplug_slots = js.Get("hotplugSlots").As<Napi::Number>().Uint32Value();
  }
  if (js.Has("agentConsole")) config.agent_console = js.Get("agentConsole").ToBoolean().Value();
  if (js.Has("virtioCmdline")) config.virtio_cmdline = js.Get("virtioCmdline").ToBoolean().Value();
  if (js.Has("disks") && js.Get("disks").IsArray()) {
    Napi::Array disks = js.Get("disks").As<Napi::Array>();
    for (uint32_t i = 0; i < disks.Length(); i++) config.disks.push_back(disk_config(disks.Get(i).As<Napi::Object>()));
  }
  if (js.Has("hotplugNetSlots") && js.Get("hotplugNetSlots").IsNumber()) {
    config.hotplug_net_slots = js.Get("hotplugNetSlots").As<Napi::Number>().Uint32Value();
  }
  if (js.Has("netdevs") && js.Get("netdevs").IsArray()) {
    Napi::Array nets = js.Get("netdevs").As<Napi::Array>();
    for (uint32_t i = 0; i < nets.Length(); i++) config.netdevs.push_back(netdev_config(nets.Get(i).As<Napi::Object>()));
  }
  if (js.Has("bootEntry") && js.Get("bootEntry").IsString()) {
    config.pvh_entry_only = js.Get("bootEntry").As<Napi::String>().Utf8Value() == "pvh";
  }
  if (js.Has("waitTimeoutMs") && js.Get("waitTimeoutMs").IsNumber()) {
    config.wait_port_timeout = std::chrono::milliseconds(js.Get("waitTimeoutMs").As<Napi::Number>().Int64Value());
  }

  config.wait_words = kProbeWaitWords;

  auto session = new_session(env, info[1].As<Napi::Function>());
  return build_vm(
      env, "nodevisor.vm.create",
      [config = std::move(config)](vmm::VmEventSink& sink) { return vmm::Vm::create(config, sink); }, session,
      static_cast<Napi::FunctionReference*>(info.Data()));
}

// vmDrainTeardown() -> Promise<void>: resolves once the reaper has released every stopped
// VM's fds and memory (waits on a libuv worker).
Napi::Value vm_drain_teardown(const Napi::CallbackInfo& info) {
  return PromiseWorker<void>::start(info.Env(), "nodevisor.vm.drainTeardown", [] {
    vmm::WarmVmCache::instance().settle();  // the spare VMs being made hold fds too
    vmm::RestoreSpares::instance().settle();
    vmm::Reaper::instance().drain();
    return Status{};
  });
}

// vmRestore(dir, onEvent, options) -> Promise<VmHandle>: a new VM from a snapshot directory,
// built on a libuv worker (reads the state file, maps the memory file, KVM ioctls, reopens
// disks) or from the restore prepared for `dir` (vmPrepareRestore), and started there, paused
// or running (`options.paused`): no vCPU thread is spawned on the JS thread, and a running
// restore's guest gets going while JS sets up its side. A running restore of a VM prepared on
// tmpfs is taken right here instead (below). `options.agentInput` (copied here) is in the
// guest's agent channel before it runs. src/vm `Vm.restore` checks the arguments first.
Napi::Value vm_restore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsFunction() || !info[2].IsObject()) {
    throw Napi::TypeError::New(env, "vmRestore(dir, onEvent, options): expected a string, a function and an object");
  }
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  Napi::Object options = info[2].As<Napi::Object>();
  const bool paused = options.Get("paused").ToBoolean().Value();
  std::vector<uint8_t> input;
  Napi::Value agent_input = options.Get("agentInput");
  if (agent_input.IsTypedArray()) {
    auto bytes = agent_input.As<Napi::Uint8Array>();
    input.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
  } else if (!agent_input.IsUndefined()) {
    throw Napi::TypeError::New(env, "vmRestore: options.agentInput must be a Uint8Array");
  }
  auto* handle_class = static_cast<Napi::FunctionReference*>(info.Data());
  // A running restore of a VM assembled ahead (vmm/restore_spares.h) goes on right here:
  // taking it touches no file, and what is left to load (timers, clock, the agent input into
  // guest memory) its vCPU 0 loads as it starts (Vm::resume_restore). No libuv worker to wake.
  if (!paused && input.size() <= vmm::virtio::kConsoleBufferBytes) {
    if (std::unique_ptr<vmm::Vm> vm = vmm::RestoreSpares::instance().take_now(dir, kProbeWaitWords)) {
      auto session = new_session(env, info[1].As<Napi::Function>());
      Status resumed = vm->resume_restore(*session->events, input);
      session->vm = std::move(vm);
      auto deferred = Napi::Promise::Deferred::New(env);
      if (resumed.ok()) {
        deferred.Resolve(vm_handle(env, session, handle_class, /*started=*/true));
      } else {
        session->abandon(env);  // the reaper stops the VM, off this thread
        deferred.Reject(make_error(env, to_failure(resumed.error())).Value());
      }
      return deferred.Promise();
    }
  }
  auto session = new_session(env, info[1].As<Napi::Function>());
  return build_vm(
      env, "nodevisor.vm.restore",
      [dir, paused, input = std::move(input)](vmm::VmEventSink& sink) -> Result<std::unique_ptr<vmm::Vm>> {
        return vmm::Vm::restore(dir, sink, kProbeWaitWords, input, paused);
      },
      session, handle_class, /*started=*/true);
}

// vmPrepareRestore(dir): the next restore of `dir` is made ahead on a background thread
// (vmm/restore_spares.h). Returns at once.
Napi::Value vm_prepare_restore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "vmPrepareRestore(dir): expected a string");
  vmm::RestoreSpares::instance().prepare(info[0].As<Napi::String>().Utf8Value(), kProbeWaitWords);
  return env.Undefined();
}

// vmRestoreCounts() -> { takenNow, takenAfterCheck, assembled }: how this process's restores
// went (vmm/restore_spares.h). JS thread.
Napi::Value vm_restore_counts(const Napi::CallbackInfo& info) {
  const auto counts = vmm::RestoreSpares::instance().counts();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("takenNow", static_cast<double>(counts.taken_now));
  out.Set("takenAfterCheck", static_cast<double>(counts.taken_after_check));
  out.Set("assembled", static_cast<double>(counts.assembled));
  return out;
}

// vmForgetSnapshot(dir) -> Promise<void>: drops the restore prepared for `dir` and stops
// preparing more; resolves once its files are closed and unmapped (a libuv worker waits for
// the reaper), so the directory's filesystem can then be unmounted.
Napi::Value vm_forget_snapshot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "vmForgetSnapshot(dir): expected a string");
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  return PromiseWorker<void>::start(env, "nodevisor.vm.forgetSnapshot", [dir] {
    vmm::RestoreSpares::instance().forget(dir);
    vmm::Reaper::instance().drain();
    return Status{};
  });
}

}  // namespace

void register_vm(Napi::Env env, Napi::Object exports) {
  // The VmHandle class, per environment, freed when the environment goes away.
  auto* handle_class = new Napi::FunctionReference(Napi::Persistent(VmHandle::define(env)));
  env.AddCleanupHook([handle_class] { delete handle_class; });
  // Registered before any VM's own hook, so it runs after them (Node runs cleanup hooks in
  // reverse): every stopped VM's fds and memory are released before the environment is gone.
  // A VM restored ahead of time (restore_spares.h) is stopped first, so its fds go too.
  env.AddCleanupHook([] {
    vmm::RestoreSpares::instance().drop_all();
    vmm::Reaper::instance().drain();
  });
  exports.Set("vmCreate", Napi::Function::New(env, vm_create, "vmCreate", handle_class));
  exports.Set("vmRestore", Napi::Function::New(env, vm_restore, "vmRestore", handle_class));
  exports.Set("vmPrepareRestore", Napi::Function::New(env, vm_prepare_restore, "vmPrepareRestore"));
  exports.Set("vmRestoreCounts", Napi::Function::New(env, vm_restore_counts, "vmRestoreCounts"));
  exports.Set("vmForgetSnapshot", Napi::Function::New(env, vm_forget_snapshot, "vmForgetSnapshot"));
  exports.Set("vmDrainTeardown", Napi::Function::New(env, vm_drain_teardown, "vmDrainTeardown"));
}

}  // namespace nodevisor::addon
