// Headers a policy compiles against, generated per run from the constants' const.json:
//
//   <lname>.h       the stub's header (synth/stubgen): id, range, decision-hook prototype
//   <lname>_vars.h  this file's part: struct sie_ctx_<lname> and one typed accessor per
//                   variable that DWARF locates exactly at every span of the constant
//                   (sie_<lname>__arg_<var>): in a register ("reg:bx"), as register + offset
//                   ("val:bx+1344") or in a stack slot ("breg:sp+28", read with
//                   bpf_probe_read_kernel), plus a list of the variables that are not
//                   accessible and why (sie-run quotes it when a policy uses one)
//   sie_consts.h    includes both for every constant and defines sie_arg__<var>(ctx), which
//                   dispatches on the context type (_Generic) so one name works in the
//                   SIE_POLICY of every constant that has it
//
// stubgen does not emit accessors (yet); generating them here keeps synth/ untouched. A
// variable that is not live at the span has no sie_arg__<var>, so the policy fails to COMPILE.
#pragma once
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/artifact/consts_dir.h"
#include "common/artifact/model.h"

namespace sie::policy {

struct VarAccess {
  std::string name;
  std::string c_type;  // as used in the accessor ("struct sock *", "u32", "void *")
  bool accessible = false;
  std::string why_not;  // when !accessible: "not live at span 1", "in memory (fbreg:-24)" ...
};

// The variables of a constant and whether the policy can read them.
std::vector<VarAccess> AnalyzeVars(const artifact::SynthesizedConst& c,
                                   const std::set<std::string>& known_structs);

// `struct X` names defined in vmlinux.h (typed pointers need them; others become void *).
std::set<std::string> KnownStructs(const std::string& vmlinux_h_text);

std::string VarsHeader(const artifact::SynthesizedConst& c,
                       const std::set<std::string>& known_structs);
std::string ConstsHeader(const std::vector<artifact::ConstEntry>& consts,
                         const std::set<std::string>& known_structs);

// Writes <lname>.h, <lname>_vars.h of every constant and sie_consts.h into `dir`.
absl::Status WritePolicyHeaders(const std::vector<artifact::ConstEntry>& consts,
                                const std::filesystem::path& vmlinux_h,
                                const std::filesystem::path& dir);

}  // namespace sie::policy
