#include "runtime/loader/checks.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
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
  std::string why_not = NativeUnsupported(c, o.mode, !o.policy_objects.empty() || o.shared_object);
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

namespace {

std::string Where(const std::string& function, uint64_t off) {
  return absl::StrCat(function, "+0x", absl::Hex(off));
}

uint64_t FieldMask(int width) {
  return width >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * width)) - 1;
}

uint64_t LiveField(const std::string& live, size_t at, int width) {
  uint64_t v = 0;
  for (int k = width - 1; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(live[at + k]);
  return v;
}

std::string FieldHex(uint64_t v, int width) {
  std::string bytes;
  for (int k = 0; k < width; ++k) bytes.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  return ToHex(bytes);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> CheckCode(const std::string& what,
                                                   const std::string& function,
                                                   const artifact::CodeRange& r,
                                                   const std::string& live, const CodeContext& ctx,
                                                   const std::string& const_path) {
  const size_t n = r.bytes.size() / 2;
  const uint64_t start = ctx.func_addr + r.offset;
  std::vector<std::string> notes;
  if (live.size() < n)
    return absl::InternalError(
        absl::StrCat("read ", live.size(), " of ", n, " bytes at ", Where(function, r.offset)));
  // Bytes another armed kprobe holds: its int3, or an optimized probe's jmp rel32.
  std::vector<bool> covered(n, false);
  for (const KprobeEntry& e : ctx.kprobes) {
    if (e.ftrace || e.disabled || e.gone) continue;
    const uint64_t len = e.optimized ? 5 : 1;
    if (e.addr + len <= start || e.addr >= start + n) continue;
    const uint8_t op = e.optimized ? 0xe9 : 0xcc;
    if (e.addr >= start && static_cast<unsigned char>(live[e.addr - start]) != op) continue;
    int k = 0;
    for (uint64_t a = std::max(e.addr, start); a < std::min(e.addr + len, start + n); ++a, ++k)
      covered[a - start] = true;
    const std::string by = ctx.owner ? ctx.owner(e.addr) : "";
    notes.push_back(absl::StrCat(
        what, ": ", k, " byte(s) at ", Where(function, e.addr - ctx.func_addr), " are under ",
        by.empty() ? "another tool's" : absl::StrCat("sie constant ", by, "'s"),
        e.optimized ? " jump-optimized" : "", " kprobe (", e.where,
        "), not compared; the other bytes match"));
  }
  std::vector<bool> field(n, false);  // bytes of relocated fields
  for (const artifact::CodeReloc& x : r.relocs)
    for (int k = 0; k < x.width; ++k) field[x.offset - r.offset + k] = true;
  // Literal bytes.
  for (size_t i = 0; i < n; ++i) {
    if (covered[i] || field[i] || r.bytes.compare(2 * i, 2, "??") == 0) continue;
    int want = 0;
    if (!absl::SimpleHexAtoi(r.bytes.substr(2 * i, 2), &want))
      return absl::InvalidArgumentError(absl::StrCat("bad hex in ", const_path));
    if (static_cast<unsigned char>(live[i]) == want) continue;
    const size_t shown = std::min<size_t>(n - i, 8);
    return FailedWithHint(
        absl::StrCat("the code at ", Where(function, r.offset + i), " (", what, ") is ",
                     ToHex(live.substr(i, shown)), ", but ", const_path, " expects ",
                     r.bytes.substr(2 * i, 2 * shown), " (code range ", Where(function, r.offset),
                     "..0x", absl::Hex(r.end()), "); nothing was attached"),
        "the running kernel or module is not the build synth analyzed (run 'sie synth' "
        "again), or another tool patched the code there (livepatch, a debugger, a kprobe "
        "not in /sys/kernel/debug/kprobes/list)");
  }
  // Relocated fields.
  int unresolved = 0;
  std::string unresolved_what;
  for (const artifact::CodeReloc& x : r.relocs) {
    const size_t at = x.offset - r.offset;
    bool hidden = false;
    for (int k = 0; k < x.width; ++k) hidden |= covered[at + k];
    if (hidden) continue;
    const uint64_t p = ctx.func_addr + x.offset;
    uint64_t want = 0;
    std::string meaning;
    if (absl::StartsWith(x.kind, "kaslr")) {
      const uint64_t slide = start - r.link_address;
      want = x.kind == "kaslr" ? x.value + slide : x.value - slide;
      meaning = absl::StrCat("0x", absl::Hex(x.value), " as linked, ",
                             x.kind == "kaslr" ? "plus" : "minus", " the KASLR slide 0x",
                             absl::Hex(slide));
    } else {
      std::optional<uint64_t> s = ctx.symbol_address ? ctx.symbol_address(x) : std::nullopt;
      if (!s) {
        if (unresolved++ == 0) unresolved_what = x.symbol;
        continue;
      }
      want = *s + x.addend - (x.kind == "pc" ? p : 0);
      meaning = absl::StrCat(x.section ? "section " : "", x.symbol, " (0x", absl::Hex(*s), ")",
                             x.addend < 0 ? " - " : " + ", "0x",
                             absl::Hex(x.addend < 0 ? -static_cast<uint64_t>(x.addend)
                                                    : static_cast<uint64_t>(x.addend)),
                             x.kind == "pc" ? " - the field's address" : "");
    }
    const uint64_t got = LiveField(live, at, x.width);
    if ((want & FieldMask(x.width)) == got) continue;
    return FailedWithHint(
        absl::StrCat("the relocated field at ", Where(function, x.offset), " (", what, ") is ",
                     ToHex(live.substr(at, x.width)), ", but ", const_path, " expects ",
                     FieldHex(want, x.width), " (", meaning, "); nothing was attached"),
        "the running kernel or module is not the build synth analyzed (run 'sie synth' "
        "again), or its code refers elsewhere than the analyzed code did");
  }
  if (unresolved)
    notes.push_back(absl::StrCat(what, ": ", unresolved, " relocated field(s) in ",
                                 Where(function, r.offset), "..0x", absl::Hex(r.end()),
                                 " not compared (", unresolved_what,
                                 " has no unique address in /proc/kallsyms)"));
  return notes;
}

absl::Status CheckExpectAgainstCode(const artifact::CriticalSpan& s, const std::string& what,
                                    const std::string& const_path) {
  const uint64_t n = s.expect_bytes.size() / 2, p = s.probe_offset;
  std::string code;  // the recorded bytes at [p, p + n), "" where no range covers them
  for (const artifact::CodeRange& r : s.code)
    if (p >= r.offset && p + n <= r.end()) code = r.bytes.substr(2 * (p - r.offset), 2 * n);
  bool agree = !code.empty();
  for (uint64_t k = 0; agree && k < n; ++k) {
    const std::string a = s.expect_bytes.substr(2 * k, 2), b = code.substr(2 * k, 2);
    agree = a == "??" || b == "??" || absl::AsciiStrToLower(a) == absl::AsciiStrToLower(b);
  }
  if (agree) return absl::OkStatus();
  return FailedWithHint(
      absl::StrCat("the code at ", Where(s.function, p), " (", what, ") is ",
                   code.empty() ? "outside every code range" : code, ", but ", const_path,
                   " expects ", s.expect_bytes, "; nothing was attached"),
      "the const.json was edited (probe_offset, expect_bytes or code disagree): run 'sie synth' "
      "again");
}

std::vector<artifact::SafeSpan> SafeSpansOf(const artifact::SynthesizedConst& c) {
  std::vector<artifact::SafeSpan> ss = c.safe_spans;
  if (!ss.empty()) return ss;
  std::set<std::string> fns;
  for (const auto& s : c.spans) fns.insert(s.function);
  for (const auto& f : fns) {
    artifact::SafeSpan whole;
    whole.function = f;
    whole.how = artifact::SafeSpanHow::kWholeFunction;
    ss.push_back(whole);
  }
  return ss;
}

std::optional<std::string> UnboundedSafeSpans(const artifact::SynthesizedConst& c, int mode) {
  if (c.safe_spans_unbounded.empty() || (mode != 1 && mode != 2)) return std::nullopt;
  return absl::StrCat("mode ", mode, " keeps each run of ", c.name,
                      "'s safe spans on one value, but its value is ", c.safe_spans_unbounded,
                      ": code that reads it there later is not covered (list the safe spans by "
                      "hand in the spec to cover it)");
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

absl::StatusOr<bool> JoinsSharedSpans(const std::string& name,
                                      const std::vector<std::pair<uint64_t, uint64_t>>& spans,
                                      const GlobalSpan& g) {
  for (auto [start, end] : spans) {
    if (start == g.start && end == g.end) return false;
    if (start < g.end && g.start < end)
      return FailedWithHint(
          absl::StrCat("a safe span of ", name, " [0x", absl::Hex(g.start), ", 0x",
                       absl::Hex(g.end), ") overlaps another constant's of the policy [0x",
                       absl::Hex(start), ", 0x", absl::Hex(end),
                       ") without being equal to it: their one global switch needs disjoint "
                       "spans"),
          "run the policy in mode 1 (--mode 1: per task) or 0");
  }
  return true;
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
