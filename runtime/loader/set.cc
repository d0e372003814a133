// `sie set`: the driver, written once for both engines (engine.h): validate -> choose engine ->
// verify kernel bytes -> load -> attach all -> optimize probes -> activate. A constant that is
// loaded already only changes its value (UpdateLoaded).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/base/diag.h"
#include "common/base/fault.h"
#include "common/base/files.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/elf/elf_file.h"
#include "kmod/include/sie/consistency.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/engine.h"
#include "runtime/loader/global_transition.h"
#include "runtime/loader/jump_window.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/native.h"
#include "runtime/loader/stub_maps.h"

namespace sie::loader {
namespace fs = std::filesystem;
using artifact::SpanKind;
using nlohmann::json;

// The time of each load step (SIE_LOG=trace or SIE_TRACE=1: load latency investigations).
void LoadPlan::Mark(const char* what) const {
  Logf(LogLevel::kTrace, "sie set: %8.1f ms  %s", MsSince(t0), what);
}

json LoadPlan::BaseState() const {
  json s{{"name", c().name},
         {"id", c().id},
         {"const_path", fs::absolute(entry->path).string()},
         {"kernel_release", release},
         {"binary", c().target.binary},
         {"mode", opts->mode},
         {"value", opts->value},
         {"shipped_value", c().values.empty() ? json(nullptr) : json(c().values[0])},
         {"nspans", c().spans.size()},
         {"state", "loading"},
         {"pid", getpid()},
         {"loaded_at", static_cast<int64_t>(time(nullptr))}};
  if (instance >= 0) s["instance"] = instance;  // mode 2: what unload and status address
  // Decided by a policy (sie-run, sie set --policy), not a fixed value: sie apply leaves it be.
  if (!opts->policy_objects.empty() || opts->prepare_object || opts->shared_object)
    s["policy"] = true;
  return s;
}

void RecordLoaded(const std::vector<Attached>& probes, json& state, SetResult& res) {
  json pj = json::array();
  for (const auto& a : probes) {
    pj.push_back(ProbeToJson(a.info));
    res.probes.push_back(a.info);
  }
  state["probes"] = pj;
  state["state"] = "loaded";
  state["pid"] = 0;
}

namespace {

// ---- a loaded constant: only the value changes ----

// Native: each probe's value command; on a failure the probes changed so far get the old one.
absl::Status UpdateNative(const artifact::SynthesizedConst& c, const json& old, int64_t value,
                          int64_t old_value) {
  auto np = NativeProbes(c, old.value("binary", "vmlinux"));
  if (!np.ok()) return np.status();
  std::vector<uint64_t> vals, olds;
  for (const NativeProbe& p : *np) {
    auto v = NativeValue(*p.cs, value);
    auto o = NativeValue(*p.cs, old_value);
    if (!v.ok()) return v.status();
    vals.push_back(*v);
    olds.push_back(o.ok() ? *o : 0);
  }
  // The probes' current offsets (a candidate move changed some) from the state.
  for (NativeProbe& p : *np)
    for (const auto& n : old.value("native", json::array()))
      if (n.value("span", -1) == p.span) p.offset = n.value("offset", uint64_t{0});
  for (size_t i = 0; i < np->size(); ++i) {
    absl::Status st = KernelStep(absl::StrCat("sie_native value of ", (*np)[i].symbol));
    if (st.ok()) st = NativeCommand(NativeValueCommand((*np)[i], vals[i]));
    if (!st.ok()) {
      for (size_t j = 0; j < i; ++j) (void)NativeCommand(NativeValueCommand((*np)[j], olds[j]));
      return st;
    }
  }
  return absl::OkStatus();
}

// Mode 2: a global constant changes value through the original one: a reverse transition, the
// map update while the gate is closed, a forward transition. Each switch happens at an instant
// with no task inside a span, so no span ever sees two of the values. (Writing the map while
// active would switch at once, mid-span, like mode 0.)
absl::Status UpdateGlobal(const artifact::SynthesizedConst& c, const SetOptions& opts, int ctl,
                          int64_t old_value, SetResult& res) {
  // The instance this load was given (not the ConstID: ids are per consts directory).
  const int instance = static_cast<int>(CtlGet(ctl, SIE_CTL_INSTANCE));
  auto rv = RunGlobal(instance, false, opts.timeout_s);
  if (!rv.ok()) return rv.status();
  if (StatusValue(*rv, "state") != "off")
    return FailedWithHint(
        absl::StrCat("the reverse transition of ", c.name, " did not finish within ",
                     opts.timeout_s, " s: ", DescribeBlockers(*rv), "; the value stays ",
                     old_value),
        "retry with a larger --timeout, or reload in mode 1 (sie unload, then sie set "
        "--mode 1)");
  if (auto st = CtlSet(ctl, SIE_CTL_VALUE, static_cast<uint64_t>(opts.value)); !st.ok()) return st;
  auto fw = RunGlobal(instance, true, opts.timeout_s);
  if (!fw.ok() || StatusValue(*fw, "state") != "active") {
    // At the original value now: unload the rest, so nothing stays attached for nothing.
    (void)UnloadOne(c.name, opts.timeout_s);
    return FailedWithHint(
        absl::StrCat("the global transition of ", c.name, " to ", opts.value,
                     " did not finish within ", opts.timeout_s,
                     " s: ", fw.ok() ? DescribeBlockers(*fw) : std::string(fw.status().message()),
                     "; it is back at its original value and unloaded"),
        "use --mode 1 (per-task), or give the tasks more time: --timeout S");
  }
  res.transition_ms = ElapsedMs(*fw);
  res.transition_result = StatusValue(*fw, "result");
  return absl::OkStatus();
}

// BPF: one control-word write (mode 1: a new epoch first; mode 2: UpdateGlobal).
absl::Status UpdateBpf(const artifact::SynthesizedConst& c, const SetOptions& opts,
                       SetResult& res) {
  auto ctl = OpenPinned(c.name, SIE_MAP_CTL);
  if (!ctl.ok()) return ctl.status();
  res.old_value = static_cast<int64_t>(CtlGet(ctl->get(), SIE_CTL_VALUE));
  if (opts.mode == 2 && *res.old_value != opts.value)
    return UpdateGlobal(c, opts, ctl->get(), *res.old_value, res);
  if (opts.mode == 1) {
    // Tasks move to the new value at their next clean guard: a new epoch to measure.
    auto stats = OpenPinned(c.name, SIE_MAP_STATS);
    if (!stats.ok()) return stats.status();
    RETURN_IF_ERROR(KernelStep("new epoch"));
    if (auto st = BeginEpoch(ctl->get(), stats->get()); !st.ok()) return st;
  }
  RETURN_IF_ERROR(KernelStep(absl::StrCat("value of ", c.name)));
  return CtlSet(ctl->get(), SIE_CTL_VALUE, static_cast<uint64_t>(opts.value));
}

// The value changed in place: record it, journal it, report the probes as they are.
absl::StatusOr<SetResult> UpdateLoaded(const artifact::SynthesizedConst& c, const SetOptions& opts,
                                       json old, SetResult res, json& journal,
                                       Clock::time_point t0) {
  if (auto st = CheckUpdate(c.name, old, opts); !st.ok()) return st;
  // A new value for probes that went with their module would apply nowhere.
  if (auto gone = TargetGoneNow(c.name, old, ReadKprobeList()))
    return FailedWithHint(absl::StrCat(c.name, " is loaded, but ", gone->message), gone->hint);
  const std::string engine = old.value("engine", "bpf");
  if (engine == "native") {
    res.old_value = old.value("value", int64_t{0});
    if (auto st = UpdateNative(c, old, opts.value, *res.old_value); !st.ok()) return st;
  } else if (auto st = UpdateBpf(c, opts, res); !st.ok()) {
    return st;
  }
  old["value"] = opts.value;
  (void)WriteState(c.name, old);
  for (const auto& p : old["probes"]) res.probes.push_back(ProbeFromJson(p));
  res.updated_only = true;
  res.engine = engine;
  res.latency_ms = MsSince(t0);
  journal["old_value"] = *res.old_value;
  journal["engine"] = engine;
  journal["outcome"] = "updated";
  Journal(journal);
  return res;
}

// ---- verification: nothing attached yet ----

// Is an armed, unoptimized kprobe (its int3 in the code) registered at addr?
bool Int3KprobeAt(uint64_t addr) {
  auto list = ReadKprobeList();
  if (!list.ok()) return false;
  for (const KprobeEntry& e : *list)
    if (e.addr == addr && !e.optimized && !e.ftrace && !e.disabled) return true;
  return false;
}

// Refuses when one of `functions` of `object` ("vmlinux" or a module) is replaced by a
// livepatch that is enabled or switching: its callers reach the replacement through ftrace, so
// probes inside it would never fire and the new value would silently not apply.
absl::Status CheckLivepatches(const std::set<std::string>& functions, const std::string& object) {
  auto lps = ReadLivepatches();
  if (!lps.ok()) return lps.status();
  for (const std::string& fn : functions) {
    const LivepatchedFunction* lf = ActiveLivepatch(*lps, fn, object);
    if (!lf) continue;
    return FailedWithHint(
        absl::StrCat(lf->function, " (", object, ") is replaced by livepatch '", lf->patch, "' (",
                     lf->transition ? "in transition" : "enabled",
                     "): its callers run the patch's copy, so sie's probes inside the original "
                     "would never fire; nothing was attached"),
        absl::StrCat("disable the patch first (echo 0 > /sys/kernel/livepatch/", lf->patch,
                     "/enabled), or synthesize the constant against the patched code"));
  }
  return absl::OkStatus();
}

// The build id of the running kernel ("vmlinux") or of a loaded module, from sysfs notes.
absl::StatusOr<std::string> RunningBuildId(const std::string& binary) {
  std::string path = "/sys/kernel/notes";
  if (binary != "vmlinux")
    path = absl::StrCat("/sys/module/", absl::StrReplaceAll(binary, {{"-", "_"}}),
                        "/notes/.note.gnu.build-id");
  auto raw = ReadFile(path);
  if (!raw.ok()) return WithContext(raw.status(), "reading the running build id");
  auto id = elf::BuildIdInNotes(*raw);
  if (!id.ok()) return WithContext(id.status(), path);
  if (id->empty())
    return FailedWithHint(absl::StrCat(path, " holds no GNU build id"),
                          "the binary was linked without --build-id; sie cannot tell it from "
                          "another build");
  return id;
}

// The running binary (kernel or module) is the exact one synth mapped onto: a kernel or
// module of the same release built again (other code, other compiler) has another build id,
// even where the bytes at a probe happen to agree. Artifacts without a build id (hand-written)
// are not compared.
absl::Status CheckBuildId(const artifact::SynthesizedConst& c, const std::string& file) {
  if (c.target.build_id.empty()) return absl::OkStatus();
  const std::string bin = c.target.binary.empty() ? "vmlinux" : c.target.binary;
  auto id = RunningBuildId(bin);
  if (!id.ok()) return id.status();
  if (absl::AsciiStrToLower(*id) == absl::AsciiStrToLower(c.target.build_id))
    return absl::OkStatus();
  return FailedWithHint(
      absl::StrCat(file, " was synthesized for ", bin, " with build id ", c.target.build_id,
                   ", but the running ", bin == "vmlinux" ? "kernel" : "module", " has ", *id,
                   ": another build of release ", c.target.kernel_release,
                   "; nothing was attached"),
      absl::StrCat("run 'sie synth' against the running ",
                   bin == "vmlinux" ? "kernel (its -dbg vmlinux)" : "module (its .ko)",
                   "; code and offsets may differ between builds"));
}

// The running kernel is the one synthesized for, with the constant's functions in place.
absl::StatusOr<Kallsyms> VerifyKernel(LoadPlan& plan, SetResult& res) {
  const artifact::SynthesizedConst& c = plan.c();
  plan.release = KernelRelease();
  if (c.target.kernel_release != plan.release)
    return FailedWithHint(
        absl::StrCat(plan.entry->path.string(), " was synthesized for kernel ",
                     c.target.kernel_release, ", but this kernel is ", plan.release),
        "run 'sie synth' for the running kernel; offsets and bytes differ between builds");
  if (auto st = EnsureDebugfs(); !st.ok()) return st;
  if (auto st = EnsureBpffs(); !st.ok()) return st;
  plan.Mark("fs ready");
  plan.in_module = !c.target.binary.empty() && c.target.binary != "vmlinux";
  if (plan.in_module)
    if (auto st = LoadModuleIfNeeded(c.target.binary, &res.notes); !st.ok()) return st;
  if (auto st = CheckBuildId(c, plan.entry->path.string()); !st.ok()) return st;
  std::set<std::string> wanted, targets;
  for (const auto& s : c.spans) wanted.insert(s.function);
  for (const auto& s : c.safe_spans) wanted.insert(s.function);
  // The targets of relocated fields (module code) the byte check computes.
  auto add_targets = [&](const std::vector<artifact::CodeRange>& code) {
    for (const auto& r : code)
      for (const auto& x : r.relocs)
        if (!x.section && !x.symbol.empty()) targets.insert(x.symbol);
  };
  for (const auto& s : c.spans) add_targets(s.code);
  for (const auto& s : c.safe_spans) add_targets(s.code);
  auto ksyms = Kallsyms::Load(wanted, "/proc/kallsyms", targets);
  if (!ksyms.ok()) return ksyms.status();
  plan.Mark("kallsyms");
  if (auto st = CheckLivepatches(wanted, plan.binary()); !st.ok()) return st;
  return ksyms;
}

// sie_native keeps one probe per place: one of another constant there makes it refuse ours.
// SIE_NATIVE_NO_PRECHECK=1 skips this check (tests of the race it cannot see, NativeEngine).
absl::Status PrecheckNativePlaces(const LoadPlan& plan, EngineChoice& ch) {
  if (getenv("SIE_NATIVE_NO_PRECHECK")) return absl::OkStatus();
  auto np = NativeProbes(plan.c(), plan.binary());
  if (!np.ok()) return np.status();
  auto listing = ReadFile(kNativeControl);
  if (!listing.ok()) return absl::OkStatus();  // a refused add still falls back (NativeEngine)
  const std::string taken = NativePlaceTaken(*np, ParseNativeListing(*listing), NativeOwner);
  if (taken.empty()) return absl::OkStatus();
  return NativePlaceRefusal(ch, plan.c().name, plan.opts->engine, taken);
}

// The engine falls back to BPF when sie_native cannot be used after all (module, places).
absl::Status SettleEngine(const LoadPlan& plan, EngineChoice& ch, SetResult& res) {
  if (ch.native)
    if (auto st = LoadModuleIfNeeded("sie_native", &res.notes); !st.ok())
      if (auto fb = FallBackToBpf(ch, plan.opts->engine, st,
                                  absl::StrCat("sie_native is not available: ",
                                               st.message().substr(0, st.message().find('\n'))));
          !fb.ok())
        return fb;
  if (ch.native)
    if (auto st = PrecheckNativePlaces(plan, ch); !st.ok()) return st;
  res.engine = ch.native ? "native" : "bpf";
  res.engine_reason = ch.reason;
  return absl::OkStatus();
}

// The modules the engine and mode need.
absl::Status LoadEngineModules(LoadPlan& plan, const EngineChoice& ch, SetResult& res) {
  if (!ch.native)
    if (auto st = LoadStubModules(plan.opts->mode, &res.notes); !st.ok()) return st;
  // Mode 2 is BPF only (native: mode 0), so LoadStubModules loaded sie_consistency.
  if (plan.opts->mode != 2) return absl::OkStatus();
  if (plan.opts->shared_instance) {  // the policy's, created and switched by sie-run
    plan.instance = plan.opts->shared_instance->id;
    return absl::OkStatus();
  }
  auto instance = FreeGlobalInstance(StatesExcept(plan.c().name));
  if (!instance.ok()) return instance.status();
  plan.instance = *instance;
  // No state file claims it, so an instance there is a leftover of a killed `sie set`: its
  // spans may be stale, and its counting probes would look like foreign kprobes below.
  const int id = plan.instance;
  if (!ConsistencyStatus(id).empty()) {
    if (auto st = ConsistencyCommand(absl::StrCat("remove ", id)); !st.ok()) return st;
    res.notes.push_back(absl::StrCat("removed a leftover sie_consistency instance ", id));
  }
  return absl::OkStatus();
}

// The live code of every range synth recorded for one span or safe span (`what`) of `function`
// at `func_addr` (CheckCode): refused on the first difference, notes for bytes under other
// kprobes and fields it could not compute.
absl::Status VerifyCode(const LoadPlan& plan, const Kallsyms& ksyms,
                        const std::vector<KprobeEntry>& kprobes, const std::string& what,
                        const std::string& function, uint64_t func_addr,
                        const std::vector<artifact::CodeRange>& code, SetResult& res) {
  CodeContext ctx;
  ctx.func_addr = func_addr;
  ctx.kprobes = kprobes;
  const std::string module = absl::StrReplaceAll(plan.binary(), {{"-", "_"}});
  ctx.symbol_address = [&](const artifact::CodeReloc& x) -> std::optional<uint64_t> {
    if (x.section) return plan.in_module ? ModuleSectionAddress(module, x.symbol) : std::nullopt;
    return ksyms.FindAnywhere(x.symbol);
  };
  ctx.owner = [&](uint64_t addr) { return ProbeOwnerAt(plan.c().name, addr); };
  for (const artifact::CodeRange& r : code) {
    auto live = ReadKernelBytes(func_addr + r.offset, r.bytes.size() / 2);
    if (!live.ok()) return WithContext(live.status(), what);
    auto notes = CheckCode(what, function, r, *live, ctx, plan.entry->path.string());
    if (!notes.ok()) return notes.status();
    res.notes.insert(res.notes.end(), notes->begin(), notes->end());
  }
  return absl::OkStatus();
}

// The apply (and save) probes, each at a place whose code bytes are what synth analyzed: every
// code range of the span (const.json "code"), or in older files the apply probe's instruction
// (expect_bytes).
absl::Status ResolveProbes(LoadPlan& plan, const Kallsyms& ksyms, SetResult& res) {
  const artifact::SynthesizedConst& c = plan.c();
  std::vector<KprobeEntry> kprobes;
  if (auto list = ReadKprobeList(); list.ok()) kprobes = std::move(*list);
  for (size_t i = 0; i < c.spans.size(); ++i) {
    const auto& s = c.spans[i];
    auto sym = ksyms.Find(s.function, plan.binary());
    if (!sym.ok()) return WithContext(sym.status(), absl::StrCat("span ", i));
    Attached a;
    a.info = MakeProbe("apply", static_cast<int>(i), s.function, s.probe_offset, sym->addr);
    a.run_rank = s.cs_end > s.cs_start ? RunRank::kApplyAfterSpan : RunRank::kRewrite;
    a.func_addr = sym->addr;
    const uint64_t addr = a.info.address;
    if (!s.code.empty()) {
      RETURN_IF_ERROR(VerifyCode(plan, ksyms, kprobes, absl::StrCat("span ", i), s.function,
                                 sym->addr, s.code, res));
      RETURN_IF_ERROR(
          CheckExpectAgainstCode(s, absl::StrCat("span ", i), plan.entry->path.string()));
    } else {
      auto bytes = ReadKernelBytes(addr, s.expect_bytes.size() / 2);
      if (!bytes.ok()) return bytes.status();
      auto covered = CheckProbeBytes(
          s, *bytes, plan.in_module, plan.entry->path.string(),
          [&] {
            return VerifiedUnderProbeOf(c.name, addr, s.function, s.probe_offset, s.expect_bytes);
          },
          [&] { return Int3KprobeAt(addr); });
      if (!covered.ok()) return covered.status();
      if (!covered->empty()) res.notes.push_back(absl::StrCat("span ", i, ": ", *covered));
    }
    // A path token's apply stays at the join its marks are consumed at.
    if (s.kind == SpanKind::kReg && !s.mark_offset)
      for (uint64_t off : s.candidates)
        if (off != s.probe_offset) a.candidates.push_back(off);
    plan.probes.push_back(std::move(a));
    const std::vector<artifact::SavePoint> points = artifact::SavePointsOf(s);
    for (size_t k = 0; k < points.size(); ++k) {
      Attached sv;
      sv.info = MakeProbe("save", static_cast<int>(i), s.function, points[k].offset, sym->addr);
      sv.run_rank = RunRank::kSave;
      sv.info.point = static_cast<int>(k);
      sv.func_addr = sym->addr;
      plan.probes.push_back(std::move(sv));
    }
    // After the apply: attached in plan order, so no mark is set before its apply can take it
    // (a mark left over would let a later bypass of the same frame apply).
    if (s.mark_offset) {
      Attached mk;
      mk.info = MakeProbe("mark", static_cast<int>(i), s.function, *s.mark_offset, sym->addr);
      mk.run_rank = RunRank::kMark;
      mk.func_addr = sym->addr;
      plan.probes.push_back(std::move(mk));
    }
  }
  return absl::OkStatus();
}

// Mode 2: the safe span j at [addr+start, addr+end) of a function, with exits from the live
// code. Bytes under another loaded constant's probes are restored from what it recorded before
// patching them (e.g. a policy's other constant in the same function); a kprobe of another tool
// there is refused.
absl::Status AddGlobalSpan(LoadPlan& plan, const artifact::SafeSpan& s, size_t j, const KSym& sym,
                           uint64_t end, const std::vector<KprobeEntry>& foreign) {
  const std::string where = absl::StrCat("safe span ", j, " (", s.function, "+0x",
                                         absl::Hex(s.start), "..0x", absl::Hex(end), ")");
  const uint64_t fn_size = std::min<uint64_t>(std::max(sym.size, end), 1 << 20);
  const std::map<uint64_t, std::string> ours = OriginalBytesOfOthers(plan.c().name);
  std::vector<KprobeEntry> others;
  for (const KprobeEntry& e : foreign)
    if (!ours.count(e.addr)) others.push_back(e);
  if (auto st = CheckUnpatched(where, others, sym.addr, fn_size); !st.ok()) return st;
  auto code = ReadKernelBytes(sym.addr, fn_size);
  if (!code.ok()) return WithContext(code.status(), where);
  for (const auto& [addr, bytes] : ours)
    for (size_t k = 0; k < bytes.size(); ++k)
      if (addr + k >= sym.addr && addr + k < sym.addr + code->size())
        (*code)[addr + k - sym.addr] = bytes[k];
  auto g =
      AnalyzeGlobalSpan(*code, sym.addr, sym.addr + s.start, sym.addr + end, SIE_CONS_MAX_EXITS);
  if (!g.ok()) return WithContext(g.status(), where);
  plan.global_spans.push_back(std::move(*g));
  return absl::OkStatus();
}

// Safe spans (whole CS functions when synth gave none). Mode 1: guards at their entries.
// Mode 2: sie_consistency's spans, with exits from the live code.
absl::Status PlanSafeSpans(LoadPlan& plan, const Kallsyms& ksyms, SetResult& res) {
  const int mode = plan.opts->mode;
  if (mode != 1 && mode != 2) return absl::OkStatus();
  const std::vector<artifact::SafeSpan> ss = SafeSpansOf(plan.c());
  if (auto st = CheckSafeSpanCount(plan.c().name, ss.size(), mode); !st.ok()) return st;
  std::vector<KprobeEntry> foreign;  // mode 2: kprobes that patch code we disassemble
  if (mode == 2) {
    auto list = ReadKprobeList();
    if (!list.ok()) return list.status();
    for (const auto& e : *list)
      if (!e.ftrace && !e.disabled) foreign.push_back(e);
  }
  for (size_t j = 0; j < ss.size(); ++j) {
    auto sym = ksyms.Find(ss[j].function, plan.binary());
    if (!sym.ok()) return WithContext(sym.status(), absl::StrCat("safe span ", j));
    uint64_t end = ss[j].how == artifact::SafeSpanHow::kWholeFunction || ss[j].end == 0 ? sym->size
                                                                                        : ss[j].end;
    if (!ss[j].code.empty()) {
      std::vector<KprobeEntry> kprobes;
      if (auto list = ReadKprobeList(); list.ok()) kprobes = std::move(*list);
      RETURN_IF_ERROR(VerifyCode(plan, ksyms, kprobes, absl::StrCat("safe span ", j),
                                 ss[j].function, sym->addr, ss[j].code, res));
    }
    plan.safe_ranges.push_back({sym->addr + ss[j].start, sym->addr + end});
    if (mode == 2) {
      if (auto st = AddGlobalSpan(plan, ss[j], j, *sym, end, foreign); !st.ok()) return st;
      continue;
    }
    Attached g;
    g.info = MakeProbe("guard", static_cast<int>(j), ss[j].function, ss[j].start, sym->addr);
    g.run_rank = RunRank::kGuard;
    g.func_addr = sym->addr;
    plan.probes.push_back(std::move(g));
  }
  return absl::OkStatus();
}

// True when another probe (this load's, or any armed kprobe) sits inside the bytes
// [addr + 1, addr + len) an optimized probe at addr would replace: the kernel then keeps it an
// int3 (arch_check_optimized_kprobe).
bool WindowTaken(const LoadPlan& plan, const Attached& self, uint64_t addr, int len,
                 const std::vector<KprobeEntry>& kprobes) {
  auto inside = [&](uint64_t a) { return a > addr && a < addr + len; };
  for (const Attached& p : plan.probes)
    if (&p != &self && inside(p.info.address)) return true;
  for (const KprobeEntry& e : kprobes)
    if (!e.disabled && inside(e.addr)) return true;
  return false;
}

// The bytes an optimized probe at `off` of `a`'s function would replace, or why the live kernel
// keeps it an int3 there (`limit`: synth's bound on those bytes).
absl::StatusOr<int> LiveJumpPlace(const LoadPlan& plan, const Attached& a, uint64_t off, int limit,
                                  const std::vector<KprobeEntry>& kprobes) {
  ASSIGN_OR_RETURN(code, ReadKernelBytes(a.func_addr + off, limit));
  ASSIGN_OR_RETURN(len, LiveJumpWindow(code));
  if (WindowTaken(plan, a, a.func_addr + off, len, kprobes))
    return absl::FailedPreconditionError("another kprobe sits in the bytes the jump replaces");
  return len;
}

// Each apply probe with synth's prediction (jump_windows) goes to the first of its places the
// kernel will jump-optimize, before anything is attached: no waiting to see. Without a
// predicted place it stays where it is, as an int3.
void PlaceForJumps(LoadPlan& plan, const std::vector<KprobeEntry>& kprobes, SetResult& res) {
  // With the optimizer switched off nothing is optimized: no place to look for, nothing to wait.
  auto sysctl = ReadFile("/proc/sys/debug/kprobes-optimization");
  const bool optimizer_off = sysctl.ok() && absl::StripAsciiWhitespace(*sysctl) == "0";
  int predicted = 0, jumps = 0;
  for (Attached& a : plan.probes) {
    if (a.info.role != "apply") continue;
    const artifact::CriticalSpan& s = plan.c().spans[a.info.span];
    if (!s.jump_windows) continue;
    ++predicted;
    std::vector<uint64_t> places = {s.probe_offset};
    places.insert(places.end(), a.candidates.begin(), a.candidates.end());
    a.candidates.clear();  // placed once here: nothing to try after attaching
    if (optimizer_off) continue;
    for (uint64_t at : places) {
      auto w = std::find_if(s.jump_windows->begin(), s.jump_windows->end(),
                            [&](const auto& x) { return x.offset == at; });
      if (w == s.jump_windows->end()) continue;
      if (auto len = LiveJumpPlace(plan, a, at, w->limit, kprobes); !len.ok()) {
        res.notes.push_back(
            absl::StrCat("span ", a.info.span, ": ", s.function, "+0x", absl::Hex(at),
                         " is no jump place in the live kernel: ", len.status().message()));
        continue;
      }
      if (at != a.info.offset)
        res.notes.push_back(absl::StrCat("span ", a.info.span, ": probe placed at ", s.function,
                                         "+0x", absl::Hex(at), " (jump-optimizable)"));
      a.info.offset = at;
      a.info.address = a.func_addr + at;
      a.info.jump_placed = true;
      ++jumps;
      break;
    }
  }
  if (predicted && optimizer_off)
    res.notes.push_back("jump optimization is off (sysctl debug.kprobes-optimization = 0)");
  else if (predicted)
    res.notes.push_back(absl::StrCat("jump optimization: ", jumps, " of ", predicted,
                                     " apply probe(s) placed where the kernel optimizes them "
                                     "(in the background: sie status shows [OPTIMIZED])"));
}

// Everything checked before anything is attached; the engine may still fall back to BPF.
absl::Status Verify(LoadPlan& plan, EngineChoice& ch, SetResult& res, json& journal) {
  auto ksyms = VerifyKernel(plan, res);
  if (!ksyms.ok()) return ksyms.status();
  if (auto st = SettleEngine(plan, ch, res); !st.ok()) return st;
  journal["engine"] = res.engine;
  if (auto st = LoadEngineModules(plan, ch, res); !st.ok()) return st;
  if (auto st = ResolveProbes(plan, *ksyms, res); !st.ok()) return st;
  if (!ch.native)
    if (auto st = AssignCells(plan.c(), plan.probes); !st.ok()) return st;
  if (auto st = PlanSafeSpans(plan, *ksyms, res); !st.ok()) return st;
  if (auto st = CheckExitUses(plan.c().name, plan.global_spans, plan.probes); !st.ok()) return st;
  std::vector<KprobeEntry> kprobes;
  if (auto list = ReadKprobeList(); list.ok()) kprobes = std::move(*list);
  NoteOtherKprobes(kprobes, plan.probes, res.warnings);
  if (plan.opts->optimize) PlaceForJumps(plan, kprobes, res);
  if (auto w = UnboundedSafeSpans(plan.c(), plan.opts->mode)) res.warnings.push_back(*w);
  res.verify_ms = MsSince(plan.t0);
  plan.Mark("verified");
  return absl::OkStatus();
}

// ---- load, attach all, optimize, activate ----

void SleepS(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

// One round of moves: each unoptimized apply probe with candidates left goes to the next one
// (the engine detaches and reattaches it); a candidate that cannot be probed puts it back.
absl::StatusOr<bool> MoveProbesOnce(LoadPlan& plan, Engine& engine) {
  bool moved = false;
  for (size_t i = 0; i < plan.probes.size(); ++i) {
    Attached& a = plan.probes[i];
    if (a.info.role != "apply" || a.info.optimized || a.next_candidate >= a.candidates.size())
      continue;
    const ProbeInfo before = a.info;
    if (auto st = engine.Unplace(i); !st.ok()) return st;
    a.info.offset = a.candidates[a.next_candidate++];
    a.info.address = a.func_addr + a.info.offset;
    const uint64_t cand_addr = a.info.address;
    if (auto st = engine.PlaceMoved(i); !st.ok()) {  // back to the previous offset
      engine.AbandonMove(i);
      a.info = before;
      if (auto st2 = engine.PlaceBack(i); !st2.ok()) return st2;
      engine.Left(cand_addr);
      continue;
    }
    // The old offset is no probe of this constant any more.
    engine.Left(before.address);
    moved = true;
  }
  return moved;
}

// Jump optimization: while the probes have no effect yet, move unoptimized apply probes of
// kind reg to other equivalent offsets. The kernel optimizes probes from delayed work.
absl::Status OptimizeProbes(LoadPlan& plan, Engine& engine, SetResult& res) {
  const SetOptions& opts = *plan.opts;
  if (!opts.optimize) {
    RefreshProbeStates(plan.probes);
    return absl::OkStatus();
  }
  // Placed by prediction: the kernel optimizes them from delayed work in the background
  // (`sie status` shows [OPTIMIZED] once it has).
  const bool all_predicted =
      std::all_of(plan.probes.begin(), plan.probes.end(), [&](const auto& a) {
        return a.info.role != "apply" || plan.c().spans[a.info.span].jump_windows.has_value();
      });
  if (all_predicted) {
    RefreshProbeStates(plan.probes);
    return absl::OkStatus();
  }
  SleepS(opts.opt_wait_s);
  RefreshProbeStates(plan.probes);
  for (int round = 0; round < 3; ++round) {
    auto moved = MoveProbesOnce(plan, engine);
    if (!moved.ok()) return moved.status();
    if (!*moved) break;
    SleepS(opts.opt_wait_s);
    RefreshProbeStates(plan.probes);
  }
  const artifact::SynthesizedConst& c = plan.c();
  for (auto& a : plan.probes)
    if (a.info.role == "apply" && a.info.offset != c.spans[a.info.span].probe_offset)
      res.notes.push_back(absl::StrCat("span ", a.info.span, ": probe moved to ", a.info.function,
                                       "+0x", absl::Hex(a.info.offset),
                                       a.info.optimized ? " (jump-optimized)" : ""));
  return absl::OkStatus();
}

// Load -> attach all -> optimize -> activate with one engine. On an error the transaction has
// undone every step when this returns.
absl::Status RunEngine(LoadPlan& plan, Engine& engine, SetResult& res) {
  if (auto st = engine.Load(res); !st.ok()) return st;
  Transaction txn;
  auto ta = Clock::now();
  if (auto st = engine.AttachAll(txn); !st.ok()) return st;
  res.attach_ms = MsSince(ta);
  auto to = Clock::now();
  if (auto st = OptimizeProbes(plan, engine, res); !st.ok()) return st;
  res.optimize_ms = MsSince(to);
  if (auto st = engine.Activate(res); !st.ok()) return st;
  txn.Commit();
  engine.Commit();
  return absl::OkStatus();
}

// A constant that is not loaded: verify, then load with the chosen engine (native, falling back
// to BPF when sie_native refused a place another probe took meanwhile).
absl::Status LoadNew(LoadPlan& plan, EngineChoice ch, SetResult& res, json& journal) {
  if (auto st = Verify(plan, ch, res, journal); !st.ok()) return st;
  if (ch.native) {
    auto native = MakeNativeEngine(plan, plan.opts->engine == "auto");
    absl::Status st = RunEngine(plan, *native, res);
    if (!native->place_taken()) return st;
    // A race: BPF shares places with any kprobe.
    res.engine = "bpf";
    journal["engine"] = "bpf";
    const absl::string_view msg = st.message();
    res.engine_reason =
        absl::StrCat("sie_native refused a place taken meanwhile (", msg.substr(0, msg.find('\n')),
                     "); its probes of this load were removed");
    if (auto st2 = LoadModuleIfNeeded("sie_kfuncs", &res.notes); !st2.ok()) return st2;
    if (auto st2 = AssignCells(plan.c(), plan.probes); !st2.ok()) return st2;
    plan.Mark("native place taken: bpf");
  }
  auto bpf = MakeBpfEngine(plan);
  return RunEngine(plan, *bpf, res);
}

}  // namespace

absl::Status LoadStubModules(int mode, std::vector<std::string>* notes) {
  if (auto st = LoadModuleIfNeeded("sie_kfuncs", notes); !st.ok()) return st;
  if (mode == 2) return LoadModuleIfNeeded("sie_consistency", notes);
  return absl::OkStatus();
}

absl::StatusOr<SetResult> SetConst(const SetOptions& opts) {
  LoadPlan plan;
  plan.t0 = Clock::now();
  plan.opts = &opts;
  RouteLibbpfLog();
  auto entry = artifact::FindConst(opts.consts_dir, opts.name);
  if (!entry.ok()) return entry.status();
  plan.entry = &*entry;
  plan.Mark("const.json read");
  const artifact::SynthesizedConst& c = entry->c;
  SetResult res;
  res.name = c.name;
  res.value = opts.value;
  res.mode = opts.mode;
  json journal{{"const", c.name}, {"new_value", opts.value}, {"mode", opts.mode}};
  // Refusals that need nothing from the kernel come first: nothing is touched.
  if (auto st = ValidateRequest(c, opts); !st.ok()) return JournalRefusal(journal, st);
  if (geteuid() != 0)
    return JournalRefusal(
        journal, FailedWithHint("sie set changes the running kernel and needs root",
                                "run it as root (or in the guest: sie vm -- sie set ...)"));
  auto lock = RunLock::Take();
  if (!lock.ok()) return JournalRefusal(journal, lock.status());
  plan.Mark("locked");
  if (auto st = ValidateEngineName(opts.engine); !st.ok()) return JournalRefusal(journal, st);
  if (auto old = ReadState(StatePath(c.name)); old.ok()) {
    auto r = UpdateLoaded(c, opts, std::move(*old), res, journal, plan.t0);
    if (!r.ok()) return JournalRefusal(journal, r.status());
    return r;
  }
  if (!c.values.empty()) res.old_value = c.values[0];
  if (res.old_value) journal["old_value"] = *res.old_value;
  auto ch = ChooseEngine(c.name, opts.engine, NativeWhyNot(c, opts));
  if (!ch.ok()) return JournalRefusal(journal, ch.status());
  res.engine_reason = ch->reason;
  if (auto st = LoadNew(plan, *ch, res, journal); !st.ok()) return JournalRefusal(journal, st);
  res.latency_ms = MsSince(plan.t0);
  journal["outcome"] = "loaded";
  journal["latency_ms"] = res.latency_ms;
  if (opts.mode == 2) journal["transition_ms"] = res.transition_ms;
  Journal(journal);
  return res;
}

}  // namespace sie::loader
