// Reading DIR/<id>/const.json back into the data model (synth/model.h) for the runtime and the
// stub generator. The writer is synth/output/const_json.cc; this reader is strict about types
// and names the offending field ("spans[2].width") so a hand-edited or foreign file gives a
// clear error rather than a probe at a wrong place.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "synth/model.h"

namespace sie::stubgen {

// `origin` names the file in messages.
absl::StatusOr<synth::SynthesizedConst> ParseConstJson(absl::string_view text,
                                                       absl::string_view origin);
absl::StatusOr<synth::SynthesizedConst> ReadConstFile(const std::filesystem::path& path);

struct ConstEntry {
  std::filesystem::path path;  // DIR/<id>/const.json
  synth::SynthesizedConst c;
};

// Every constant of DIR (each DIR/<n>/const.json), sorted by name. Unreadable files are errors.
absl::StatusOr<std::vector<ConstEntry>> ListConsts(const std::filesystem::path& dir);

// The constant called `name_or_id` (its name, case-insensitively, or its numeric id).
absl::StatusOr<ConstEntry> FindConst(const std::filesystem::path& dir,
                                     absl::string_view name_or_id);

// Register names: "ax".."r15" as in pt_regs; x86 names of any width ("rax", "eax", "al",
// "r8d", "sil") map to their pt_regs slot. Empty when unknown.
std::string NormalizeReg(absl::string_view reg);

}  // namespace sie::stubgen
