#include "common/elf/dwarf_offline.h"

#include "absl/strings/str_cat.h"

namespace sie {

absl::StatusOr<OfflineDwarf> OfflineDwarf::Open(const std::string& path) {
  static const Dwfl_Callbacks cb = {
      .find_elf = dwfl_build_id_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
      .section_address = dwfl_offline_section_address,
      .debuginfo_path = nullptr,
  };
  OfflineDwarf o;
  o.dwfl_.reset(dwfl_begin(&cb));
  if (!o.dwfl_) return absl::InternalError("dwfl_begin failed");
  dwfl_report_begin(o.dwfl_.get());
  o.module_ = dwfl_report_offline(o.dwfl_.get(), "obj", path.c_str(), -1);
  dwfl_report_end(o.dwfl_.get(), nullptr, nullptr);
  if (!o.module_) return absl::NotFoundError(absl::StrCat(path, ": ", dwfl_errmsg(-1)));
  return o;
}

}  // namespace sie
