// A constants directory, as `sie synth --out DIR` leaves it for the runtime:
//   DIR/index.json        names <-> ids of every constant, retired ids never to reuse, next_id
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

// ConstIDs are what a person types (`sie set 3 ...`): 1, 2, 3, ... per directory, in the order
// the constants were first synthesized, never reused. They live in [1, kMaxConstId].
inline constexpr int kMaxConstId = 999;
// index.json "id_scheme": absent (1) in directories of older sie, whose ids were an FNV hash of
// the name; 2: sequential. synth renumbers an older directory the first time it writes into it.
inline constexpr int kLegacyIdScheme = 1;
inline constexpr int kIdScheme = 2;

struct IdIndex {
  std::map<std::string, int> ids;      // current constants
  std::map<std::string, int> retired;  // names no longer in the spec; their ids stay reserved
  // The lowest id never assigned: a high-water mark, so deleting retired entries from
  // index.json can never make an id come back for another name.
  int next_id = 1;
  int scheme = kIdScheme;
};

// Reads DIR/index.json; a missing file is an empty index. Never throws.
absl::StatusOr<IdIndex> ReadIdIndex(const std::filesystem::path& dir);

// Stable ids for `names` (spec order) from a sequential-scheme `previous`: a name it knows
// (current or retired) keeps its id; new names take next_id, next_id + 1, ... in spec order.
// Names of `previous` missing from `names` become retired.
absl::StatusOr<IdIndex> AssignConstIds(const std::vector<std::string>& names,
                                       const IdIndex& previous);

// What synth does with a directory's ids before it writes: the index after this run and, for a
// directory of the older scheme (or one without index.json holding constants), the renumbering
// of its constant directories, DIR/<old> -> DIR/<new>.
struct IdPlan {
  IdIndex index;
  bool migrate = false;
  std::map<int, int> renumber;  // old directory id -> new id
};

// Plans the ids of `names` in `dir`. Reads index.json and, when migrating, the const.json of
// constant directories the index does not list; changes nothing. New numeric directories the
// index does not know (copied in by hand) push next_id past them, so none is overwritten.
absl::StatusOr<IdPlan> PlanConstIds(const std::filesystem::path& dir,
                                    const std::vector<std::string>& names);

// Carries out plan.renumber: every DIR/<old> moves to DIR/<new> (through a staging directory,
// since old and new numbers overlap), its const.json gets the new id, and the files generated
// from the old const.json (stub, header, object, skeleton, C++ view: they embed the id) are
// removed, to be generated again (stubgen::EmitArtifacts); then index.json is written.
absl::Status ApplyIdMigration(const std::filesystem::path& dir, const IdPlan& plan);

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
