#include "runtime/loader/checks.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bpf/include/sie/abi.h"
#include "common/base/diag.h"
#include "kmod/include/sie/consistency.h"

namespace sie::loader {
using nlohmann::json;

absl::Status ValidateRequest(const artifact::SynthesizedConst& c, const SetOptions& o) {
  if (o.value < c.range_min || o.value > c.range_max)
    return InvalidWithHint(absl::StrCat("value ", o.value, " is outside the range of ", c.name,
                                        " [", c.range_min, ", ", c.range_max, "]"),
                           "the range comes from the constant's spec (const.json 'range')");
  if (c.pow2_only && (o.value <= 0 || (o.value & (o.value - 1)) != 0))
    return InvalidWithHint(absl::StrCat("value ", o.value, " is not a power of two: ", c.name,
                                        " takes powers of two only (the code synthesized for it "
                                        "shifts or masks by the value)"),
                           absl::StrCat("pick one of 1, 2, 4, ... within [", c.range_min, ", ",
                                        c.range_max, "] (const.json 'pow2_only')"));
  if (o.mode < 0 || o.mode > 2)
    return InvalidWithHint(absl::StrCat("unknown mode ", o.mode), "modes are 0, 1, 2");
  return absl::OkStatus();
}

absl::Status ValidateEngineName(const std::string& engine) {
  if (engine != "auto" && engine != "bpf" && engine != "native")
    return InvalidWithHint(absl::StrCat("unknown engine '", engine, "'"),
                           "--engine takes auto, bpf or native");
  return absl::OkStatus();
}

absl::Status CheckUpdate(const std::string& name, const json& old, const SetOptions& o) {
  if (old.value("state", "") != "loaded")
    return FailedWithHint(
        absl::StrCat(name, " was left half-loaded by process ", old.value("pid", 0)),
        absl::StrCat("remove it first: sie unload ", name));
  const std::string loaded_engine = old.value("engine", "bpf");
  if (o.engine != "auto" && o.engine != loaded_engine)
    return FailedWithHint(absl::StrCat(name, " is loaded with the ", loaded_engine, " engine"),
                          absl::StrCat("changing the engine needs a reload: sie unload ", name,
                                       ", then sie set --engine ", o.engine));
  if (loaded_engine == "native") {
    if (o.mode != 0)
      return FailedWithHint(
          absl::StrCat(name, " is loaded in mode 0 (native engine)"),
          absl::StrCat("changing the mode needs a reload: sie unload ", name, ", then sie set"));
    return absl::OkStatus();
  }
  if (old.value("mode", 0) != o.mode)
    return FailedWithHint(
        absl::StrCat(name, " is loaded in mode ", old.value("mode", 0)),
        absl::StrCat("changing the mode needs a reload: sie unload ", name, ", then sie set"));
  return absl::OkStatus();
}

std::string NativeWhyNot(const artifact::SynthesizedConst& c, const SetOptions& o) {
  std::string why_not = NativeUnsupported(c, o.mode, !o.policy_objects.empty());
  if (why_not.empty() && c.values.empty())
    why_not = "the shipped value is unknown (const.json 'values'), so probes cannot start inert";
  if (why_not.empty())
    for (const auto& s : c.spans)
      if (auto v = NativeValue(s, o.value); !v.ok()) return std::string(v.status().message());
  return why_not;
}

absl::StatusOr<EngineChoice> ChooseEngine(const std::string& name, const std::string& engine,
                                          const std::string& why_not) {
  EngineChoice ch;
  if (engine == "native") {
    if (!why_not.empty())
      return FailedWithHint(absl::StrCat(name, " cannot use the native engine: ", why_not),
                            "use --engine bpf (or auto, which picks it)");
    ch.native = true;
    ch.reason = "forced by --engine native";
  } else if (engine == "bpf") {
    ch.reason = "forced by --engine bpf";
  } else if (why_not.empty()) {
    ch.native = true;
    ch.reason = "sie_native covers every span (mode 0, fixed value, reg/mem kinds)";
  } else {
    ch.reason = absl::StrCat("sie_native cannot: ", why_not);
  }
  return ch;
}

absl::Status FallBackToBpf(EngineChoice& ch, const std::string& engine, absl::Status refusal,
                           std::string reason) {
  if (engine == "native") return refusal;
  ch.native = false;
  ch.reason = std::move(reason);
  return absl::OkStatus();
}

std::string NativePlaceTaken(const std::vector<NativeProbe>& probes,
                             const std::map<std::string, NativeCounters>& listing,
                             const std::function<std::string(const std::string&)>& owner_of) {
  const int i = NativeConflict(probes, listing);
  if (i < 0) return "";
  const std::string key = NativeKey(probes[i].symbol, probes[i].offset);
  const std::string owner = owner_of(key);
  return absl::StrCat("span ", probes[i].span, " (", key, ") is already probed natively by ",
                      owner.empty() ? "another constant or tool" : owner,
                      " (sie_native keeps one probe per place)");
}

absl::Status NativePlaceRefusal(EngineChoice& ch, const std::string& name,
                                const std::string& engine, const std::string& taken) {
  return FallBackToBpf(
      ch, engine,
      FailedWithHint(
          absl::StrCat(name, " cannot use the native engine: ", taken),
          "use --engine bpf (or auto, which falls back to it), or unload the other constant"),
      absl::StrCat("sie_native cannot: ", taken));
}

absl::StatusOr<std::string> CheckProbeBytes(const artifact::CriticalSpan& s,
                                            const std::string& bytes, bool in_module,
                                            const std::string& const_path,
                                            const std::function<std::string()>& verified_by,
                                            const std::function<bool()>& int3_here) {
  if (BytesMatch(s.expect_bytes, bytes, in_module)) return std::string();
  const std::string where = absl::StrCat(s.function, "+0x", absl::Hex(s.probe_offset));
  if (const std::string by = verified_by(); !by.empty())
    return absl::StrCat("the code at ", where, " is under ", by,
                        "'s probe, which verified the same bytes");
  if (BytesMatchUnderInt3(s.expect_bytes, bytes, in_module) && int3_here())
    return absl::StrCat("the first byte at ", where,
                        " is another kprobe's int3 (kprobes/list); the other ", bytes.size() - 1,
                        " byte(s) match");
  return FailedWithHint(
      absl::StrCat("the code at ", where, " is ", ToHex(bytes), ", but ", const_path, " expects ",
                   s.expect_bytes),
      "the running kernel is not the build synth analyzed (run 'sie synth' again), or another "
      "tool patched the code there (e.g. a jump-optimized kprobe: see "
      "/sys/kernel/debug/kprobes/list)");
}

std::vector<artifact::SafeSpan> SafeSpansOf(const artifact::SynthesizedConst& c) {
  std::vector<artifact::SafeSpan> ss = c.safe_spans;
  if (!ss.empty()) return ss;
  std::set<std::string> fns;
  for (const auto& s : c.spans) fns.insert(s.function);
  for (const auto& f : fns) ss.push_back({f, 0, 0, artifact::SafeSpanHow::kWholeFunction});
  return ss;
}

absl::Status CheckSafeSpanCount(const std::string& name, size_t n, int mode) {
  const size_t max_spans = mode == 1 ? SIE_MAX_SAFE_CHECKED : SIE_CONS_MAX_SPANS;
  if (n <= max_spans) return absl::OkStatus();
  return FailedWithHint(
      absl::StrCat(name, " has ", n, " safe spans; mode ", mode, " supports ", max_spans),
      mode == 1 ? "use --mode 0" : "use --mode 1 or 0");
}

absl::Status CheckUnpatched(const std::string& where, const std::vector<KprobeEntry>& foreign,
                            uint64_t addr, uint64_t size) {
  for (const auto& e : foreign)
    if (e.addr >= addr && e.addr < addr + size)
      return FailedWithHint(
          absl::StrCat(where, ": the code is patched by a kprobe at ", e.where,
                       " (another constant or tool); its exits cannot be read"),
          "unload what probes that function (sie status; kprobes/list), or use --mode 1");
  return absl::OkStatus();
}

absl::Status CheckExitUses(const std::string& name, const std::vector<GlobalSpan>& spans,
                           std::vector<Attached>& probes) {
  for (const GlobalSpan& g : spans) {
    auto is_exit = [&](uint64_t a) {
      return std::find(g.exits.begin(), g.exits.end(), a) != g.exits.end();
    };
    int uses = 0;
    const Attached* on_exit = nullptr;
    for (const Attached& a : probes) {
      if (a.info.role != "apply") continue;
      const bool exit = is_exit(a.info.address);
      if ((a.info.address >= g.start && a.info.address < g.end) || exit) ++uses;
      if (exit) on_exit = &a;
    }
    if (on_exit && uses > 1)
      return FailedWithHint(
          absl::StrCat("span ", on_exit->info.span, " of ", name, " is probed at ",
                       on_exit->info.function, "+0x", absl::Hex(on_exit->info.offset),
                       ", an exit of a safe span with ", uses,
                       " uses: mode 2 would apply the new value there only for the last task "
                       "out"),
          "use --mode 1 (per-task)");
    for (Attached& a : probes)
      std::erase_if(a.candidates, [&](uint64_t off) { return is_exit(a.func_addr + off); });
  }
  return absl::OkStatus();
}

void NoteOtherKprobes(const std::vector<KprobeEntry>& list, std::vector<Attached>& probes,
                      std::vector<std::string>& warnings) {
  for (Attached& a : probes) {
    for (const auto& e : list)
      if (e.addr == a.info.address) a.info.others.push_back(DescribeKprobe(e));
    a.info.others_count = static_cast<int>(a.info.others.size());
    if (!a.info.others.empty())
      warnings.push_back(
          absl::StrCat(a.info.role, " probe of span ", a.info.span, " at ", a.info.function, "+0x",
                       absl::Hex(a.info.offset), ": ", a.info.others.size(),
                       " other kprobe(s) already registered there (",
                       absl::StrJoin(a.info.others, "; "), "); they run on the same hits"));
  }
}

std::optional<TargetGone> ModuleTargetGone(const std::string& name, const std::string& binary,
                                           bool module_loaded, int probes, int probes_gone) {
  if (binary.empty() || binary == "vmlinux") return std::nullopt;
  if (!module_loaded)
    return TargetGone{"module unloaded",
                      absl::StrCat("module ", binary, " was unloaded after 'sie set': its ", probes,
                                   " probe(s) went with it, so ", name, " no longer applies"),
                      absl::StrCat("sie unload ", name, "; to tune it again: modprobe ", binary,
                                   ", then sie set ", name, " VALUE")};
  if (probes_gone > 0)
    return TargetGone{
        "module reloaded",
        absl::StrCat("module ", binary,
                     " was unloaded and loaded again after 'sie set': ", probes_gone, " of its ",
                     probes, " probe(s) are gone (the kernel never re-arms them), so ", name,
                     " no longer applies"),
        absl::StrCat("sie unload ", name, ", then sie set ", name, " VALUE again")};
  return std::nullopt;
}

int GlobalInstanceIn(const json& state) {
  if (state.value("mode", 0) != 2) return -1;
  if (auto it = state.find("instance"); it != state.end() && it->is_number_integer())
    return it->get<int>();
  return state.value("id", -1);
}

absl::StatusOr<int> FreeGlobalInstance(const std::vector<json>& others) {
  std::set<int> held;
  for (const json& s : others) held.insert(GlobalInstanceIn(s));
  for (int i = 1; i < SIE_CONS_MAX_ID; ++i)
    if (!held.count(i)) return i;
  return FailedWithHint(absl::StrCat("all ", SIE_CONS_MAX_ID - 1,
                                     " sie_consistency instances are held by loaded constants"),
                        "unload constants loaded in mode 2 (sie status), or use --mode 1");
}

namespace {

// Was `state` loaded from a const.json inside `consts_dir` (DIR/<id>/const.json)?
bool LoadedFrom(const json& state, const std::string& consts_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p = state.value("const_path", "");
  return !p.empty() && fs::weakly_canonical(p.parent_path().parent_path(), ec) ==
                           fs::weakly_canonical(consts_dir, ec);
}

std::string Origin(const json& s) {
  const std::filesystem::path p = s.value("const_path", "");
  return absl::StrCat(s.value("name", "?"), " (from ", p.parent_path().parent_path().string(), ")");
}

}  // namespace

absl::StatusOr<std::string> ResolveLoaded(const std::string& arg, const std::vector<json>& states,
                                          const std::string& consts_dir) {
  for (const json& s : states)
    if (absl::EqualsIgnoreCase(s.value("name", ""), arg)) return s.value("name", "");
  int id = 0;
  if (!absl::SimpleAtoi(arg, &id))
    return ErrorWithHint(absl::StatusCode::kNotFound, absl::StrCat(arg, " is not loaded"),
                         "see 'sie status' for the loaded constants");
  std::vector<const json*> hits;
  for (const json& s : states)
    if (s.value("id", -1) == id && (consts_dir.empty() || LoadedFrom(s, consts_dir)))
      hits.push_back(&s);
  if (hits.size() == 1) return (*hits[0]).value("name", "");
  if (hits.empty())
    return ErrorWithHint(
        absl::StatusCode::kNotFound,
        absl::StrCat("no loaded constant has id ", id,
                     consts_dir.empty() ? "" : absl::StrCat(" in ", consts_dir)),
        "see 'sie status' for the loaded constants and their ids ('sie consts --consts DIR' "
        "lists a directory's)");
  std::vector<std::string> who;
  for (const json* s : hits) who.push_back(Origin(*s));
  return InvalidWithHint(
      absl::StrCat("id ", id, " names ", hits.size(),
                   " loaded constants (ids are per consts directory): ", absl::StrJoin(who, ", ")),
      "name the constant, or add --consts DIR");
}

}  // namespace sie::loader
