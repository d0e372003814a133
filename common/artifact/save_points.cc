// SavePointsOf (model.h): one definition for the stub generator and the loader, which must
// agree on the save programs' names and places.
#include <map>

#include "absl/strings/str_cat.h"
#include "common/artifact/model.h"

namespace sie::artifact {

std::vector<SavePoint> SavePointsOf(const CriticalSpan& s) {
  std::map<uint64_t, std::vector<SavedValue>> at;
  // X saved: a recompute's input, or the register a flags span's add/sub/and overwrites.
  if ((s.kind == SpanKind::kRecompute || s.kind == SpanKind::kFlags) && s.x_from_probe.empty() &&
      s.save_offset)
    at[*s.save_offset].push_back({'X', s.save_reg, 8});
  for (const SpanInput& in : s.inputs)
    if (in.save_offset && !in.name.empty())
      at[*in.save_offset].push_back({in.name[0], in.reg, in.width});
  std::vector<SavePoint> out;
  for (auto& [off, vals] : at) out.push_back({off, std::move(vals)});
  return out;
}

std::string SaveProgramName(int span, int point) {
  return point == 0 ? absl::StrCat("sie_save_", span) : absl::StrCat("sie_save_", span, "_", point);
}

}  // namespace sie::artifact
