// `sie-run --describe POLICY.bpf.c`: what a policy decides and what a user can set, read from
// the compiled object's BTF (the same view --set and `sie knob` check against).
#include <bpf/libbpf.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/stubgen/stubgen.h"
#include "runtime/policy/knobs.h"
#include "runtime/policy/object_cache.h"
#include "runtime/policy/policy.h"

namespace sie::policy {
namespace fs = std::filesystem;
using nlohmann::json;

absl::StatusOr<std::vector<std::string>> PolicyConstNames(const fs::path& source,
                                                          const fs::path& consts_dir) {
  auto text = ReadFile(source);
  if (!text.ok()) return text.status();
  auto all = artifact::ListConsts(consts_dir);
  if (!all.ok()) return all.status();
  static const std::regex kPolicy(R"(SIE_POLICY\s*\(\s*(\w+)\s*,)");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (std::sregex_iterator it(text->begin(), text->end(), kPolicy), end; it != end; ++it) {
    const std::string lower = (*it)[1].str();
    if (!seen.insert(lower).second) continue;
    bool found = false;
    for (const auto& e : *all)
      if (stubgen::LowerIdent(e.c.name) == lower) {
        out.push_back(e.c.name);
        found = true;
      }
    if (!found)
      return ErrorWithHint(absl::StatusCode::kNotFound,
                           absl::StrCat(source.filename().string(), ": SIE_POLICY(", lower,
                                        "): no such constant in ", consts_dir.string()),
                           "pass the constants' directory with --consts DIR");
  }
  if (out.empty())
    return InvalidWithHint(absl::StrCat(source.string(), " has no SIE_POLICY"),
                           "name the constants with --const NAME[,NAME]");
  return out;
}

namespace {

struct ObjDeleter {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};

// Integers and bools as JSON numbers and bools; enums by name.
json KnobJson(const Knob& k) {
  json def = k.value;
  if (k.enc == Knob::Enc::kBool) def = k.value == "true";
  if (k.enc == Knob::Enc::kSigned || k.enc == Knob::Enc::kUnsigned)
    def = json::parse(k.value, nullptr, false);
  return {{"name", k.name}, {"type", k.type}, {"size", k.size}, {"default", def}};
}

void PrintHuman(const fs::path& source, const std::vector<artifact::ConstEntry>& consts,
                const std::vector<Knob>& knobs) {
  std::printf("%s\n  constants:\n", source.filename().string().c_str());
  for (const auto& e : consts)
    std::printf("    %-24s id %-3d range [%lld, %lld], shipped %lld\n", e.c.name.c_str(), e.c.id,
                static_cast<long long>(e.c.range_min), static_cast<long long>(e.c.range_max),
                static_cast<long long>(e.c.values.empty() ? 0 : e.c.values[0]));
  for (KnobKind kind : {KnobKind::kSetting, KnobKind::kLive}) {
    std::printf(kind == KnobKind::kSetting ? "  start settings (sie-run --set NAME=VALUE):\n"
                                           : "  live knobs (sie knob NAME VALUE):\n");
    int n = 0;
    for (const Knob& k : knobs)
      if (k.kind == kind && ++n)
        std::printf("    %-24s %-12s default %s\n", k.name.c_str(), k.type.c_str(),
                    k.value.c_str());
    if (!n) std::printf("    (none)\n");
  }
}

}  // namespace

absl::Status Describe(const RunOptions& opts) {
  std::vector<std::string> names = opts.consts;
  if (names.empty()) {
    auto found = PolicyConstNames(opts.source, opts.consts_dir);
    if (!found.ok()) return found.status();
    names = *found;
  }
  auto consts = ResolveConsts(opts.consts_dir, names);
  if (!consts.ok()) return consts.status();
  auto work = TempDir::Create(fs::temp_directory_path(), "sie-describe-");
  if (!work.ok()) return work.status();
  CacheOptions cache;  // a cached object is as good as a fresh one; nothing is stored
  if (opts.use_cache) cache.lookup = PolicyCacheDirs(opts.consts_dir);
  auto cr = CompilePolicy(Toolchain::FromBuild(), opts.source, *consts, work->path() / "include",
                          work->path() / "policy.bpf.o", &cache);
  if (!cr.ok()) return cr.status();
  std::unique_ptr<bpf_object, ObjDeleter> obj(bpf_object__open_file(cr->object.c_str(), nullptr));
  if (!obj) return absl::InternalError(absl::StrCat("opening ", cr->object.string()));
  auto knobs = KnobsOfObject(obj.get());
  if (!knobs.ok()) return knobs.status();
  if (!opts.json) {
    PrintHuman(opts.source, *consts, *knobs);
    return absl::OkStatus();
  }
  json j{{"policy", opts.source.string()},
         {"constants", json::array()},
         {"settings", json::array()},
         {"live_knobs", json::array()}};
  for (const auto& e : *consts)
    j["constants"].push_back({{"name", e.c.name},
                              {"id", e.c.id},
                              {"range", {e.c.range_min, e.c.range_max}},
                              {"default", e.c.values.empty() ? 0 : e.c.values[0]}});
  for (const Knob& k : *knobs)
    j[k.kind == KnobKind::kSetting ? "settings" : "live_knobs"].push_back(KnobJson(k));
  std::printf("%s\n", j.dump(2).c_str());
  return absl::OkStatus();
}

}  // namespace sie::policy
