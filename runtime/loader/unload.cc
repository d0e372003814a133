// `sie unload`: the reverse transition (mode 1: tasks move back at their next clean guard;
// mode 2: one global switch back, refused when it does not happen in time), then the probes
// leave the kernel (pins, sie_native probes, the sie_consistency instance), the constant's
// sie_kfuncs sites go, and the state file last. Each unload is one journal entry.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "common/base/fault.h"
#include "runtime/loader/attach.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/engine.h"
#include "runtime/loader/global_transition.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/native.h"
#include "runtime/loader/state.h"
#include "runtime/loader/stub_maps.h"

namespace sie::loader {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What a constant did while it was loaded (the journal entry of its unload and the summary
// `sie unload` prints): how long, and its probes' counters summed over spans.
void AddLifetimeSummary(const LoadedConst& lc, json& journal) {
  const json& s = lc.state;
  journal["engine"] = lc.engine;
  if (s.contains("loaded_at"))
    journal["loaded_s"] = static_cast<int64_t>(time(nullptr)) - s.value("loaded_at", int64_t{0});
  SpanCounters sum;
  for (const auto& c : lc.spans) {
    sum.hits += c.hits;
    sum.applied += c.applied;
    sum.rejected += c.rejected;
    sum.failed += c.failed;
    sum.gated += c.gated;
  }
  journal["probes"] = lc.probes.size();
  journal["hits"] = sum.hits;
  journal["applied"] = sum.applied;
  journal["rejected"] = sum.rejected;
  journal["failed"] = sum.failed;
  journal["gated"] = sum.gated;
}

// Mode 2: the constant's sie_consistency instance (from the pinned control words, else from the
// state file of a load that died before pinning them); -1 when there is none.
int GlobalInstanceOf(const absl::StatusOr<UniqueFd>& ctl, const absl::StatusOr<json>& state) {
  int id = -1;
  if (ctl.ok() && CtlGet(ctl->get(), SIE_CTL_MODE) == 2)
    id = static_cast<int>(CtlGet(ctl->get(), SIE_CTL_INSTANCE));
  else if (!ctl.ok() && state.ok())
    id = GlobalInstanceIn(*state);
  if (id >= 0 && !ModuleLoaded("sie_consistency")) id = -1;
  return id;
}

// Mode 2: back to the original value at one instant with no task inside a span. If that does
// not happen in time the new value stays active (the module never switches mid-span), so
// everything stays loaded: detaching now would switch mid-span, like mode 0.
absl::Status ReverseGlobal(const std::string& n, int id, double timeout_s, json& journal) {
  auto rv = RunGlobal(id, false, timeout_s);
  if (!rv.ok() || StatusValue(*rv, "state") != "off") {
    const std::string why = rv.ok() ? DescribeBlockers(*rv) : std::string(rv.status().message());
    journal["outcome"] = "refused";
    journal["error"] = absl::StrCat("reverse transition did not finish: ", why);
    return FailedWithHint(
        absl::StrCat("the reverse transition of ", n, " did not finish within ", timeout_s,
                     " s: ", why, "; it stays loaded with its new value"),
        absl::StrCat("retry with a larger --timeout (sie unload ", n,
                     " --timeout S); see 'sie status' for the tasks inside"));
  }
  journal["reverse_transition"] = StatusValue(*rv, "result");
  journal["transition_ms"] = ElapsedMs(*rv);
  return absl::OkStatus();
}

// "123 (comm), 456 (comm)": tasks for a message.
std::string TaskList(const std::vector<Holder>& hs) {
  std::vector<std::string> parts;
  for (const Holder& h : hs) parts.push_back(absl::StrCat(h.tid, " (", h.comm, ")"));
  return absl::StrJoin(parts, ", ");
}

// Mode 1: the target back to 0, so tasks move back at their next guard with a clean stack.
// The stub's task iterator lists the tasks still holding the new value; once none of them may
// be inside a safe span, the kill switch (the caller's) ends the transition exactly: a holder
// outside every safe span takes the original value at its next span, as a consistent pass.
// At the timeout the blockers are named and the constant stays loaded (target 0, tasks still
// moving back), unless `force`. A stub without the iterator (loaded by an older sie) falls
// back to "no apply hit of the new value for 200 ms".
absl::Status ReversePerTask(const std::string& n, int ctl, uint32_t nspans, double timeout_s,
                            bool force, json& journal) {
  auto stats = OpenPinned(n, SIE_MAP_STATS);
  if (stats.ok()) (void)BeginEpoch(ctl, stats->get());
  (void)CtlSet(ctl, SIE_CTL_TARGET, 0);
  auto applied = [&]() {
    uint64_t sum = 0;
    if (!stats.ok()) return sum;
    auto v = ReadStats(stats->get(), nspans * SIE_STAT_NR);
    for (uint32_t i = 0; i < nspans; ++i) sum += v[i * SIE_STAT_NR + SIE_STAT_APPLIED];
    return sum;
  };
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  uint64_t last = applied();
  auto quiet_since = Clock::now();
  bool converged = false, exact = true;
  std::vector<Holder> holders, blocking;
  for (;;) {
    auto hs = ListHolders(n);
    exact = hs.ok() || !absl::IsNotFound(hs.status());
    if (hs.ok()) {
      holders = std::move(*hs);
      blocking.clear();
      for (const Holder& h : holders)
        if (h.blocking) blocking.push_back(h);
      converged = blocking.empty();
    } else if (!exact) {
      const uint64_t now = applied();
      if (now != last) last = now, quiet_since = Clock::now();
      converged = MsSince(quiet_since) >= 200;
    }
    if (converged || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  journal["reverse_transition"] = converged ? "converged" : "timed out";
  if (stats.ok()) {
    // The tasks that moved back, and the slowest one's time from the request (kernel clock).
    const EpochStats e = ReadEpoch(stats->get());
    journal["reverse_tasks"] = e.tasks;
    journal["reverse_max_ms"] = e.max_ms;
  }
  if (exact) journal["reverse_idle_holders"] = holders.size() - blocking.size();
  if (converged || force || !exact) return absl::OkStatus();
  json b = json::array();
  for (const Holder& h : blocking) b.push_back({{"tid", h.tid}, {"comm", h.comm}});
  journal["reverse_blocking"] = b;
  return FailedWithHint(
      absl::StrCat("the reverse transition of ", n, " did not finish within ", timeout_s,
                   " s: ", blocking.size(),
                   " task(s) still hold the new value inside a safe span: ", TaskList(blocking),
                   "; ", n,
                   " stays loaded, its tasks moving back to the original value at their next "
                   "guard"),
      absl::StrCat("run 'sie unload ", n,
                   "' again once they leave (or give them longer: --timeout S); --force ends it "
                   "now, and those tasks may then see the old and the new value mixed"));
}

std::vector<uint64_t> AddressList(const json& s, const char* key) {
  std::vector<uint64_t> out;
  for (const auto& a : s.value(key, json::array()))
    if (a.is_number_unsigned()) out.push_back(a.get<uint64_t>());
  return out;
}

// What the state file says is in the kernel: every address a kprobe of the constant may be
// at, how many kprobes at each are its own (so that other tools' kprobes there stay), and the
// sie_kfuncs sites (apply probes, and every address a candidate move left).
struct Footprint {
  std::vector<uint64_t> addrs, sites;
  std::map<uint64_t, int> own;
};

Footprint FootprintOf(const json& s) {
  Footprint f;
  f.addrs = AddressList(s, "attached_addresses");
  for (const auto& p : s.value("probes", json::array()))
    f.addrs.push_back(p.value("address", uint64_t{0}));
  if (s.contains("probes"))
    for (const auto& p : s["probes"]) f.own[p.value("address", uint64_t{0})]++;
  else
    for (uint64_t a : AddressList(s, "attached_addresses")) f.own[a]++;
  for (uint64_t a : AddressList(s, "consistency_addresses")) f.own[a]++;
  for (const auto& p : s.value("probes", json::array()))
    if (p.value("role", "") == "apply") f.sites.push_back(p.value("address", uint64_t{0}));
  for (uint64_t a : AddressList(s, "attached_addresses")) f.sites.push_back(a);
  return f;
}

// unregister_kprobe is synchronous: once removed, no handler of it runs any more.
absl::Status RemoveNativeProbes(const json& s) {
  absl::Status st = absl::OkStatus();
  for (const auto& np : s.value("native", json::array())) {
    int err = 0;
    auto rm = NativeCommand(
        NativeRemoveCommand(np.value("symbol", ""), np.value("offset", uint64_t{0})), &err);
    if (!rm.ok() && err != ENOENT && st.ok()) st = rm;
  }
  return st;
}

// Takes the constant's probes out of the kernel and forgets it.
// `touched` turns true just before the first removal: a failure before it changed nothing.
absl::Status RemoveFromKernel(const std::string& n, const absl::StatusOr<json>& state,
                              int global_id, double timeout_s, bool* touched) {
  // A policy's shared instance stays while another of its constants is loaded: its counting
  // probes are then not this constant's to wait for.
  bool shared = false;
  if (global_id >= 0)
    for (const json& s : StatesExcept(n)) shared |= GlobalInstanceIn(s) == global_id;
  json own = state.ok() ? *state : json::object();
  if (shared) {
    own.erase("consistency_addresses");
    global_id = -1;
  }
  const Footprint f = state.ok() ? FootprintOf(own) : Footprint{};
  // Kprobes of other tools at our addresses stay: count them before anything is removed.
  const std::map<uint64_t, int> keep = ForeignKprobes(f.addrs, f.own);
  absl::Status st = absl::OkStatus();
  if (state.ok() && state->value("engine", "bpf") == "native" && ModuleLoaded("sie_native")) {
    st = KernelStep(absl::StrCat("remove the sie_native probes of ", n));
    if (st.ok()) *touched = true, st = RemoveNativeProbes(*state);
  }
  if (st.ok()) st = KernelStep(absl::StrCat("remove the pins of ", n));
  if (st.ok()) *touched = true, st = RemovePins(PinDir(n));
  // The instance after the stub: its gate is off already; removing it unregisters the counting
  // probes, which may share an address with a CS probe (a use on a span exit), so before the
  // wait for those addresses to leave the kprobe list.
  if (st.ok() && global_id >= 0) st = KernelStep("remove the sie_consistency instance");
  if (st.ok() && global_id >= 0) {
    int err = 0;
    if (auto rm = ConsistencyCommand(absl::StrCat("remove ", global_id), &err);
        !rm.ok() && err != ENOENT)
      st = rm;
  }
  if (st.ok()) st = WaitKprobesGone(f.addrs, std::max(timeout_s, 2.0), keep);
  // Per-site unregistration: once the probes are gone, the constant's sites and cells leave
  // sie_kfuncs, so nothing attached there later (a leftover, another tool) can write.
  if (st.ok()) UnregisterSites(n, f.sites);
  if (st.ok()) RemoveState(n);
  return st;
}

}  // namespace

absl::Status UnloadOne(const std::string& n, double timeout_s, const LoadedConst* before,
                       json* summary, bool force) {
  auto state = ReadState(StatePath(n));
  json journal{{"const", n}, {"new_value", nullptr}, {"outcome", "unloaded"}};
  if (state.ok()) {
    journal["old_value"] = state->value("value", int64_t{0});
    journal["mode"] = state->value("mode", 0);
  }
  if (before) AddLifetimeSummary(*before, journal);
  auto finish = [&](absl::Status st) {
    Journal(journal);
    if (summary) *summary = journal;
    return st;
  };
  auto ctl = OpenPinned(n, SIE_MAP_CTL);
  const int global_id = GlobalInstanceOf(ctl, state);
  if (global_id >= 0 && !ConsistencyStatus(global_id).empty())
    if (auto st = ReverseGlobal(n, global_id, timeout_s, journal); !st.ok()) return finish(st);
  uint64_t was_active = 0, was_target = 0;
  if (ctl.ok()) {
    was_active = CtlGet(ctl->get(), SIE_CTL_ACTIVE);
    was_target = CtlGet(ctl->get(), SIE_CTL_TARGET);
    if (CtlGet(ctl->get(), SIE_CTL_MODE) == 1 && was_active)
      if (auto st = ReversePerTask(n, ctl->get(), state.ok() ? state->value("nspans", 0) : 0,
                                   timeout_s, force, journal);
          !st.ok()) {
        journal["outcome"] = "failed";
        return finish(st);
      }
    (void)CtlSet(ctl->get(), SIE_CTL_ACTIVE, 0);
  }
  bool touched = false;
  absl::Status st = RemoveFromKernel(n, state, global_id, timeout_s, &touched);
  if (!st.ok()) {
    journal["outcome"] = "failed";
    // Nothing was removed yet: the constant goes back to its value (mode 0 and 1; a mode-2
    // constant already switched back globally stays at its shipped value, still loaded).
    if (!touched && ctl.ok() && global_id < 0) {
      (void)CtlSet(ctl->get(), SIE_CTL_TARGET, was_target);
      (void)CtlSet(ctl->get(), SIE_CTL_ACTIVE, was_active);
      st = WithContext(st, absl::StrCat("nothing removed, ", n, " keeps its value"));
    }
  }
  return finish(st);
}

absl::StatusOr<std::string> LoadedName(const std::string& name_or_id,
                                       const std::string& consts_dir) {
  return ResolveLoaded(name_or_id, StatesExcept(""), consts_dir);
}

absl::Status Unload(const std::string& name_in, bool all, double timeout_s,
                    std::vector<json>* summaries, const std::string& consts_dir, bool force) {
  if (geteuid() != 0)
    return FailedWithHint("sie unload changes the running kernel and needs root", "run as root");
  auto lock = RunLock::Take();
  if (!lock.ok()) return lock.status();
  std::vector<std::string> names;
  std::error_code ec;
  if (all) {
    std::set<std::string> s;
    for (const auto& e : fs::directory_iterator(RunDir(), ec))
      if (e.path().extension() == ".json") s.insert(e.path().stem().string());
    for (const auto& e : fs::directory_iterator(kPinRoot, ec))
      if (e.is_directory()) s.insert(e.path().filename().string());
    names.assign(s.begin(), s.end());
  } else if (auto n = LoadedName(name_in, consts_dir); n.ok()) {
    names.push_back(*n);
  } else if (fs::exists(PinDir(name_in), ec)) {
    names.push_back(name_in);  // pins without a state file: a load killed early
  } else {
    return n.status();
  }
  // Counters and lifetimes before anything is removed, for the summaries.
  std::map<std::string, LoadedConst> before;
  if (auto loaded = Status(); loaded.ok())
    for (auto& lc : *loaded) before[lc.state.value("name", "")] = std::move(lc);
  absl::Status first = absl::OkStatus();
  for (const auto& n : names) {
    auto it = before.find(n);
    json summary;
    absl::Status st =
        UnloadOne(n, timeout_s, it == before.end() ? nullptr : &it->second, &summary, force);
    if (summaries && summary.is_object()) summaries->push_back(std::move(summary));
    if (first.ok() && !st.ok()) first = st;
  }
  // With nothing loaded any more, forget every registered site and cell (also those of a load
  // killed before its state file listed them).
  bool any_left = false;
  for (const auto& e : fs::directory_iterator(kPinRoot, ec)) any_left |= e.is_directory();
  if (!any_left && ModuleLoaded("sie_kfuncs")) (void)KfuncsCommand("clear");
  // Same for sie_native once no constant's state is left (the state lists a probe before it
  // is registered).
  bool any_state = false;
  for (const auto& e : fs::directory_iterator(RunDir(), ec))
    any_state |= e.path().extension() == ".json" && e.path().filename() != "journal.json";
  if (!any_state && all && ModuleLoaded("sie_native")) (void)NativeCommand("clear");
  return first;
}

}  // namespace sie::loader
