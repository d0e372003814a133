// A binary's DWARF as libdwfl reads it offline: relocated when the file is relocatable (a .ko
// or .o, whose .debug_info reaches .debug_str and the code through relocations that libdw's
// dwarf_begin alone does not apply: names would read as the section's first strings).
#pragma once
#include <elfutils/libdwfl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sie {

class OfflineDwarf {
 public:
  static absl::StatusOr<OfflineDwarf> Open(const std::string& path);
  // The one module of the file (dwfl_module_nextcu, dwfl_module_getsymtab, ...).
  Dwfl_Module* module() const { return module_; }

 private:
  struct Closer {
    void operator()(Dwfl* d) const { dwfl_end(d); }
  };
  std::unique_ptr<Dwfl, Closer> dwfl_;
  Dwfl_Module* module_ = nullptr;
};

}  // namespace sie
