{
  "targets": [
    {
      # The addon: loaded on the main thread (spawn, pidfd watch, fd helpers)
      # and in Piscina workers (loop devices, mount). Context-aware: no static
      # mutable state anywhere in these sources.
      "target_name": "nstar",
      "sources": [
        "native/addon.cc",
        "native/common.cc",
        "native/loop.cc",
        "native/dm.cc",
        "native/fd-watch.cc",
        "native/spawn.cc",
        "native/messages.cc",
        "native/netns.cc",
        "native/fd.cc",
        "native/cgroup.cc",
        "native/copy.cc",
        "native/netif.cc",
        "native/pty.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fexceptions"]
    },
    {
      # nstar-init: a small static, single-threaded C program, PID 1 of every
      # container's pid namespace. Static so it runs with nothing from the
      # host's /lib after pivot_root.
      "target_name": "nstar-init",
      "type": "executable",
      "sources": ["native/init/nstar-init.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-static"],
      "libraries": []
    }
  ]
}
