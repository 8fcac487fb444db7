{
  # What a user of the package needs, built by `npm ci` (the install script runs
  # `node-gyp rebuild -j max`): the addon, the probe guest and the guest agent. Test-only
  # builds (the ASan/UBSan native unit tests, the sanitizer addon) are in CMakeLists.txt and
  # made by the test run itself (test/helpers/native-tests.ts), never by an install.
  # The core under native/vmm and native/sys is plain C++20 and never includes napi.h;
  # only native/addon does.
  "variables": {
    "nodevisor_version": "<!(node -p \"require('./package.json').version\")"
  },
  "targets": [
    {
      "target_name": "nodevisor",
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ],
      "sources": [
        "native/addon/module.cc",
        "native/addon/errors.cc",
        "native/addon/build_info.cc",
        "native/addon/netns_binding.cc",
        "native/addon/blockdev_binding.cc",
        "native/sys/netns.cc",
        "native/sys/blockdev.cc",
        "native/sys/tap.cc",
        "native/addon/vm_binding.cc",
        "native/addon/vm_events.cc",
        "native/vmm/util/read_file.cc",
        "native/vmm/util/reaper.cc",
        "native/vmm/util/open_checked.cc",
        "native/vmm/memory/guest_memory.cc",
        "native/vmm/kvm/kvm_system.cc",
        "native/vmm/kvm/kvm_vm.cc",
        "native/vmm/kvm/kvm_vcpu.cc",
        "native/vmm/kvm/cpuid.cc",
        "native/vmm/kvm/warm_vm.cc",
        "native/vmm/arch/x86_64/elf_loader.cc",
        "native/vmm/arch/x86_64/pvh_boot.cc",
        "native/vmm/arch/x86_64/bzimage.cc",
        "native/vmm/arch/x86_64/kernel_image.cc",
        "native/vmm/arch/x86_64/long_mode.cc",
        "native/vmm/arch/x86_64/memory_map.cc",
        "native/vmm/bus/bus.cc",
        "native/vmm/devices/legacy/serial_8250.cc",
        "native/vmm/devices/legacy/i8042.cc",
        "native/vmm/devices/legacy/debug_port.cc",
        "native/vmm/devices/legacy/exit_port.cc",
        "native/vmm/devices/legacy/wait_port.cc",
        "native/vmm/devices/legacy/vm_generation.cc",
        "native/vmm/snapshot/open_snapshot.cc",
        "native/vmm/snapshot/state_file.cc",
        "native/vmm/snapshot/vm_snapshot.cc",
        "native/vmm/vstate/vcpu_thread.cc",
        "native/vmm/vstate/vcpu_state.cc",
        "native/vmm/vm.cc",
        "native/vmm/vm_virtio.cc",
        "native/vmm/vm_restore.cc",
        "native/vmm/restore_spares.cc",
        "native/vmm/acpi/aml.cc",
        "native/vmm/acpi/acpi_tables.cc",
        "native/vmm/devices/virtio/queue.cc",
        "native/vmm/devices/virtio/mmio_transport.cc",
        "native/vmm/devices/virtio/device_worker.cc",
        "native/vmm/device_manager/device_manager.cc",
        "native/vmm/devices/virtio/block/block_backend.cc",
        "native/vmm/devices/virtio/block/block_request.cc",
        "native/vmm/devices/virtio/block/block_device.cc",
        "native/vmm/devices/virtio/console/console_device.cc",
        "native/vmm/devices/virtio/net/net_device.cc",
        "native/vmm/devices/virtio/net/net_frames.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NAPI_CPP_EXCEPTIONS",
        "NODEVISOR_VERSION=\"<(nodevisor_version)\"",
        "_FORTIFY_SOURCE=2",
        "_GNU_SOURCE"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14"],
      "cflags": [
        "-Wall", "-Wextra", "-O2",
        "-fvisibility=hidden",
        "-fstack-protector-strong",
        "-fstack-clash-protection",
        "-fcf-protection",
        "-fPIC"
      ],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-fvisibility-inlines-hidden"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now", "-Wl,-z,noexecstack", "-Wl,--as-needed"]
    },
    {
      # The probe guest (native/guest/probe): a freestanding ELF for tests and benchmarks,
      # built with the host's gcc and a linker script, not linked into the addon.
      "target_name": "probe_guest",
      "type": "none",
      "conditions": [
        ["OS=='linux'", {
          "actions": [
            {
              "action_name": "build_probe_elf",
              "inputs": [
                "native/guest/probe/entry.S",
                "native/guest/probe/main.c",
                "native/guest/probe/libc.c",
                "native/guest/probe/virtio.c",
                "native/guest/probe/blk.c",
                "native/guest/probe/agent.c",
                "native/guest/probe/json_scan.c",
                "native/guest/probe/generation.c",
                "native/guest/probe/generation.h",
                "native/guest/probe/faults.c",
                "native/guest/probe/faults.h",
                "native/guest/probe/hostile.c",
                "native/guest/probe/net.c",
                "native/guest/probe/net.h",
                "native/guest/probe/probe.h",
                "native/guest/probe/virtio.h",
                "native/guest/probe/blk.h",
                "native/guest/probe/agent.h",
                "native/guest/protocol/crc32.h",
                "native/guest/probe/json_scan.h",
                "native/guest/probe/probe_abi.h",
                "native/guest/protocol/frame.h",
                "native/guest/protocol/elf_note.h",
                "native/guest/probe/probe.ld"
              ],
              "outputs": ["<(PRODUCT_DIR)/probe.elf"],
              "action": [
                "gcc", "-m64", "-O2", "-ffreestanding", "-nostdlib", "-static", "-fno-pic", "-no-pie",
                "-fno-stack-protector", "-fcf-protection=none", "-mno-red-zone", "-mgeneral-regs-only",
                "-fno-asynchronous-unwind-tables", "-Wall", "-Wextra",
                "-Wl,-T,native/guest/probe/probe.ld", "-Wl,--build-id=none",
                "-Wl,-z,max-page-size=4096", "-Wl,-z,noexecstack",
                "-o", "<(PRODUCT_DIR)/probe.elf",
                "native/guest/probe/entry.S", "native/guest/probe/main.c", "native/guest/probe/libc.c",
                "native/guest/probe/virtio.c", "native/guest/probe/blk.c", "native/guest/probe/agent.c",
                "native/guest/probe/json_scan.c",
                "native/guest/probe/generation.c",
                "native/guest/probe/faults.c",
                "native/guest/probe/hostile.c",
                "native/guest/probe/net.c"
              ],
              "message": "Building the probe guest"
            }
          ]
        }]
      ]
    },
    {
      # The guest agent (native/guest/agent): a static Linux executable, PID 1 (/init) of the
      # guest initramfs and the same binary in host-mode tests. Plain C++20, no Node headers.
      "target_name": "nodevisor-agent",
      "type": "executable",
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ],
      "sources": [
        "native/guest/protocol/json.cc",
        "native/guest/agent/main.cc",
        "native/guest/agent/agent.cc",
        "native/guest/agent/channel.cc",
        "native/guest/agent/containers.cc",
        "native/guest/agent/init.cc",
        "native/guest/agent/log.cc",
        "native/guest/agent/network.cc",
        "native/guest/agent/privileges.cc",
        "native/guest/agent/request.cc",
        "native/guest/agent/requests.cc",
        "native/guest/agent/seccomp.cc",
        "native/guest/agent/spawn.cc",
        "native/guest/agent/storage.cc",
        "native/guest/agent/validate.cc"
      ],
      "include_dirs": ["native"],
      "defines": ["_GNU_SOURCE", "_FORTIFY_SOURCE=2"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fstack-protector-strong"],
      "cflags_cc": ["-std=c++20", "-fexceptions"],
      "ldflags": ["-static"]
    }
  ]
}
