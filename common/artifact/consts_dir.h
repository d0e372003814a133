// A constants directory, as `sie synth --out DIR` leaves it for the runtime:
//   DIR/index.json        names <-> ids of every constant, plus retired ids never to reuse
//   DIR/<id>/const.json   one constant (common/artifact/const_json.h)
//   DIR/<id>/...          its stub, object, skeleton and C++ view (common/stubgen)
#pragma once
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/artifact/const_json.h"
#include "common/artifact/model.h"

namespace sie::artifact {

// ConstIDs live in [1, kMaxConstId]: small enough for a BPF array map.
inline constexpr int kMaxConstId = 999;

struct IdIndex {
  std::map<std::string, int> ids;      // current constants
  std::map<std::string, int> retired;  // names no longer in the spec; their ids stay reserved
};

// Reads DIR/index.json; a missing file is an empty index. Never throws.
absl::StatusOr<IdIndex> ReadIdIndex(const std::filesystem::path& dir);

// Stable ids for `names`: kept from `previous` when present there; otherwise derived from a
// hash of the name (FNV-1a mod kMaxConstId), probing upwards past taken ids. New names are
// placed in sorted order so the result does not depend on the spec's order.
absl::StatusOr<IdIndex> AssignConstIds(const std::vector<std::string>& names,
                                       const IdIndex& previous);

nlohmann::json IndexToJson(const IdIndex& index);
absl::Status WriteIndex(const std::filesystem::path& out_dir, const IdIndex& index);

struct ConstEntry {
  std::filesystem::path path;  // DIR/<id>/const.json
  SynthesizedConst c;
};

// Every constant of DIR (each DIR/<n>/const.json), sorted by name. Unreadable files are errors.
absl::StatusOr<std::vector<ConstEntry>> ListConsts(const std::filesystem::path& dir);

// The constant called `name_or_id` (its name, case-insensitively, or its numeric id).
absl::StatusOr<ConstEntry> FindConst(const std::filesystem::path& dir,
                                     absl::string_view name_or_id);

}  // namespace sie::artifact
