{
  # One addon, built by `npm ci` (the package's install script runs `node-gyp rebuild`).
  # The core under native/vmm and native/sys is plain C++20 and never includes napi.h;
  # only native/addon does. CMakeLists.txt builds the same sources with sanitizers.
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
        "native/sys/blockdev.cc"
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
    }
  ]
}
