// `sie status`: every constant with a state file or a pin directory, with its counters (the
// stub's pinned maps or sie_native's listing), its probes as the kernel lists them now, and
// what is worth a look (other kprobes, livepatches enabled after `sie set`).
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/files.h"
#include "runtime/loader/attach.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/native.h"
#include "runtime/loader/state.h"
#include "runtime/loader/stub_maps.h"

namespace sie::loader {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// sie_native's own counters: a fixed value has no range rejections and no gate, so
// applied = hits - faults - bypass (path token), failed = faults. pins_present: every native probe
// is registered.
void ReadNativeCounters(LoadedConst& lc, uint32_t nspans) {
  auto listing = ReadFile(kNativeControl);
  const auto counters =
      listing.ok() ? ParseNativeListing(*listing) : std::map<std::string, NativeCounters>{};
  lc.spans.assign(nspans, SpanCounters{});
  bool all = true;
  for (const auto& np : lc.state.value("native", json::array())) {
    const int span = np.value("span", -1);
    auto it = counters.find(NativeKey(np.value("symbol", ""), np.value("offset", uint64_t{0})));
    if (it == counters.end() || span < 0 || span >= static_cast<int>(nspans)) {
      all = false;
      continue;
    }
    const NativeCounters& n = it->second;
    SpanCounters& sc = lc.spans[span];
    sc.hits = n.hits;
    sc.applied = n.hits - n.faults - n.bypass;  // a bypassing frame gets no write
    sc.failed = n.faults;
    sc.bypass = n.bypass;
  }
  lc.pins_present = all;
}

// The stub's counters and control words, from the pins.
void ReadBpfCounters(LoadedConst& lc, const std::string& n, uint32_t nspans) {
  if (auto fd = OpenPinned(n, SIE_MAP_STATS); fd.ok()) {
    auto v = ReadStats(fd->get(), nspans * SIE_STAT_NR);
    for (uint32_t i = 0; i < nspans; ++i) {
      const uint64_t* s = &v[i * SIE_STAT_NR];
      lc.spans.push_back({s[SIE_STAT_HITS], s[SIE_STAT_APPLIED], s[SIE_STAT_REJECTED],
                          s[SIE_STAT_FAILED], s[SIE_STAT_GATED], s[SIE_STAT_NOSAVE],
                          s[SIE_STAT_BYPASS], s[SIE_STAT_MARKFAIL]});
    }
    lc.transitions = v[SIE_STAT_TRANSITIONS];
    lc.unsafe = v[SIE_STAT_UNSAFE];
    lc.epoch = ReadEpoch(fd->get());
  }
  auto ctl = OpenPinned(n, SIE_MAP_CTL);
  auto blocked = OpenPinned(n, SIE_MAP_BLOCKED);
  if (ctl.ok() && blocked.ok() && CtlGet(ctl->get(), SIE_CTL_MODE) == 1)
    lc.blocked = ReadBlocked(blocked->get(), CtlGet(ctl->get(), SIE_CTL_EPOCH_NS));
  if (!ctl.ok()) return;
  lc.state["value"] = static_cast<int64_t>(CtlGet(ctl->get(), SIE_CTL_VALUE));
  lc.state["active"] = CtlGet(ctl->get(), SIE_CTL_ACTIVE);
  if (CtlGet(ctl->get(), SIE_CTL_MODE) == 2)
    lc.global = ConsistencyStatus(static_cast<int>(CtlGet(ctl->get(), SIE_CTL_INSTANCE)));
}

// A probe of the state file as the kernel lists it now; `own` kprobes at its address are the
// constant's (the list cannot tell whose probe is whose: the count beyond is reported).
ProbeInfo ProbeNow(const json& p, const absl::StatusOr<std::vector<KprobeEntry>>& list,
                   const std::map<uint64_t, int>& own) {
  ProbeInfo pi = ProbeFromJson(p);
  pi.optimized = false;
  pi.kprobe_flags = "(not attached)";
  if (!list.ok()) return pi;
  std::vector<std::string> here;
  for (const auto& e : *list)
    if (e.addr == pi.address) {
      pi.optimized = e.optimized;
      pi.kprobe_flags = e.gone        ? "[GONE]"
                        : e.optimized ? "[OPTIMIZED]"
                        : e.ftrace    ? "[FTRACE]"
                                      : "";
      here.push_back(DescribeKprobe(e));
    }
  auto o = own.find(pi.address);
  const int extra = static_cast<int>(here.size()) - (o == own.end() ? 0 : o->second);
  if (extra > 0) {
    pi.others.assign(here.begin(), here.end());
    pi.others_count = extra;
  }
  return pi;
}

// One warning per livepatch, naming the functions it takes away from this constant.
void WarnLivepatched(LoadedConst& lc, const std::string& n, const std::string& object) {
  std::map<std::string, std::set<std::string>> by_patch;
  for (const ProbeInfo& pi : lc.probes)
    if (!pi.livepatched_by.empty()) by_patch[pi.livepatched_by].insert(pi.function);
  for (const auto& [patch, fns] : by_patch)
    lc.warnings.push_back(
        {absl::StrCat("livepatch '", patch, "' replaces ", absl::StrJoin(fns, ", "), " (", object,
                      "): its callers run the patch's copy, so the probes there never fire "
                      "and the value does not apply there"),
         absl::StrCat("sie unload ", n, ", or disable the patch (echo 0 > /sys/kernel/livepatch/",
                      patch, "/enabled)")});
}

// The constant's probes now: kprobe flags, other kprobes there, livepatches bypassing them.
void ReadProbes(LoadedConst& lc, const std::string& n,
                const absl::StatusOr<std::vector<KprobeEntry>>& list,
                const absl::StatusOr<std::vector<LivepatchedFunction>>& lps) {
  const std::string binary = lc.state.value("binary", "");
  const std::string object = binary.empty() ? "vmlinux" : binary;
  // How many of the kprobes at an address are this constant's own: its probes there and the
  // counting probes of its sie_consistency instance (mode 2).
  std::map<uint64_t, int> own;
  for (const auto& p : lc.state["probes"]) own[p.value("address", uint64_t{0})]++;
  for (const auto& a : lc.state.value("consistency_addresses", json::array()))
    if (a.is_number_unsigned()) own[a.get<uint64_t>()]++;
  for (const auto& p : lc.state["probes"]) {
    ProbeInfo pi = ProbeNow(p, list, own);
    if (lps.ok())
      if (const LivepatchedFunction* lf = ActiveLivepatch(*lps, pi.function, object)) {
        pi.livepatched_by = lf->patch;
        pi.livepatch_transition = lf->transition;
      }
    lc.probes.push_back(pi);
  }
  WarnLivepatched(lc, n, object);
}

}  // namespace

std::optional<TargetGone> TargetGoneNow(const std::string& name, const json& state,
                                        const absl::StatusOr<std::vector<KprobeEntry>>& list) {
  const std::string binary = state.value("binary", "");
  if (binary.empty() || binary == "vmlinux") return std::nullopt;
  std::set<uint64_t> gone;
  if (list.ok())
    for (const auto& e : *list)
      if (e.gone) gone.insert(e.addr);
  int probes = 0, probes_gone = 0;
  for (const auto& p : state.value("probes", json::array())) {
    ++probes;
    probes_gone += gone.count(p.value("address", uint64_t{0}));
  }
  return ModuleTargetGone(name, binary, ModuleLoaded(binary), probes, probes_gone);
}

absl::StatusOr<std::vector<LoadedConst>> Status() {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(RunDir(), ec))
    if (e.path().extension() == ".json" && e.path().filename() != "journal.json")
      names.insert(e.path().stem().string());
  for (const auto& e : fs::directory_iterator(kPinRoot, ec))
    if (e.is_directory()) names.insert(e.path().filename().string());
  auto list = ReadKprobeList();
  // A livepatch enabled after `sie set` bypasses probes inside the functions it replaces.
  auto lps = ReadLivepatches();
  std::vector<LoadedConst> out;
  for (const auto& n : names) {
    LoadedConst lc;
    auto st = ReadState(StatePath(n));
    lc.state = st.ok() ? *st : json{{"name", n}, {"state", "orphaned pins"}};
    lc.pins_present = fs::exists(PinDir(n) / SIE_MAP_CTL, ec);
    lc.engine = lc.state.value("engine", "bpf");
    const uint32_t nspans = lc.state.value("nspans", 0);
    if (lc.engine == "native") ReadNativeCounters(lc, nspans);
    if (lc.engine == "bpf" && lc.pins_present && nspans > 0) ReadBpfCounters(lc, n, nspans);
    if (lc.state.contains("probes")) ReadProbes(lc, n, list, lps);
    // A module unloaded since `sie set` took the probes with it: say so, not "loaded".
    if (auto gone = TargetGoneNow(n, lc.state, list)) {
      lc.state["state"] = gone->state;
      lc.warnings.push_back({gone->message, gone->hint});
    }
    out.push_back(std::move(lc));
  }
  return out;
}

}  // namespace sie::loader
