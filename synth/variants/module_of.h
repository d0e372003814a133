// Which binary kbuild builds an object into: vmlinux or a module, and which module, read from
// kbuild's own data (the object's saved compile command and the kernel's modules.order), so a
// kernel spec's spans are mapped onto the binary the guest runs.
#pragma once
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::synth {

// The module an object is compiled for (kbuild passes -DMODULE for module code).
struct ObjectModule {
  std::string name;  // KBUILD_MODNAME: the name /proc/kallsyms and /sys/module use ("dm_bufio")
  std::string file;  // KBUILD_MODFILE when the command carries it ("drivers/md/dm-bufio"), or ""
};

// The module of an object from its compile command (the savedcmd of .<obj>.cmd, or the whole
// file); nullopt when the object is built into vmlinux (no -DMODULE). A module command without
// KBUILD_MODNAME is an error.
absl::StatusOr<std::optional<ObjectModule>> ModuleOfCommand(absl::string_view command);

// The module's path below /lib/modules/<release> ("kernel/block/bfq.ko") in `modules_order`
// (the text of modules.order): KBUILD_MODFILE when known, else the one entry named like the
// module ('-' and '_' alike) whose directory holds `object` (a composite module lives in the
// object's directory or above it).
absl::StatusOr<std::string> ModulePathInOrder(absl::string_view modules_order,
                                              const std::string& object, const ObjectModule& m);

}  // namespace sie::synth
