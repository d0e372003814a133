// Which binary an object of the guest kernel is linked into: vmlinux or a module (and which
// .ko), from kbuild's data as synth maps spans: the object's saved command (-DMODULE,
// KBUILD_MODNAME, module_of.h) when kbuild built it, else the compile units of the -dbg
// vmlinux, else the compile units of the debug .ko files modules.order lists in the object's
// directory or above (find_objects.h: CompileUnitSources, cached per binary).
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "synth/variants/kernel_tree.h"

namespace sie::synth::discover {

struct ObjectBinary {
  std::string object;  // "net/ipv4/tcp_bbr.o"
  bool built = false;  // compiled into this kernel at all
  bool module = false;
  std::string binary;  // "vmlinux" or "kernel/net/ipv4/tcp_bbr.ko"
};

class BinaryResolver {
 public:
  BinaryResolver(std::filesystem::path root, GuestKernelFiles files,
                 std::filesystem::path cache_dir)
      : root_(std::move(root)), files_(std::move(files)), cache_dir_(std::move(cache_dir)) {}

  absl::StatusOr<ObjectBinary> Resolve(const std::string& object);

 private:
  absl::StatusOr<std::optional<std::string>> FromSavedCommand(const std::string& object);
  std::optional<std::string> FromModules(const std::string& source);
  const std::set<std::string>& CompileUnits(const std::string& ko);

  std::filesystem::path root_;
  GuestKernelFiles files_;
  std::filesystem::path cache_dir_;
  std::optional<std::set<std::string>> vmlinux_;
  std::optional<std::string> modules_order_;
  std::map<std::string, std::set<std::string>> ko_units_;
};

}  // namespace sie::synth::discover
