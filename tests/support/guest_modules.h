// Loading and unloading sie's kernel modules from guest test and benchmark programs. One copy,
// shared by tests/vm, tests/consistency and benchmarks (they run in the guest only).
#pragma once
#include <filesystem>
#include <string>

#include "absl/status/status.h"

namespace sie::guest {

// build/kmod, next to build/bin where the calling program lives.
std::filesystem::path KmodDir();

// delete_module(2), retried while busy: a BPF program that used a module's kfuncs drops its
// module reference from deferred work (RCU + workqueue).
absl::Status UnloadModule(const std::string& name);

// finit_module(2) of KmodDir()/NAME.ko; a leftover of an earlier run is replaced, so the
// loaded code matches the .ko the caller disassembles.
absl::Status LoadModule(const std::string& name);

}  // namespace sie::guest
