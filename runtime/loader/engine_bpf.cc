// The BPF engine: the constant's stub (synth/stubgen), loaded with its control words set and
// the gate closed, one kprobe link per probe pinned under /sys/fs/bpf/sie/<name>/, opened by
// one control-word write (modes 0, 1) or by sie_consistency's global switch (mode 2).
#include <bpf/bpf.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "common/base/fault.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"
#include "common/stubgen/stub_build.h"
#include "kmod/include/sie/consistency.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/engine.h"
#include "runtime/loader/global_transition.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/stub_maps.h"

namespace sie::loader {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Modes 1 and 2 both write their safe spans into sie_safe.
static_assert(SIE_MAX_SAFE_CHECKED <= SIE_MAX_SAFE && SIE_CONS_MAX_SPANS <= SIE_MAX_SAFE,
              "sie_safe holds every safe span the loader writes");

// The maps a loaded stub pins (bpf/include/sie/abi.h).
constexpr const char* kPinnedMaps[] = {SIE_MAP_CTL, SIE_MAP_STATS, SIE_MAP_TASK, SIE_MAP_SAFE,
                                       SIE_MAP_BLOCKED};

class BpfEngine : public Engine {
 public:
  explicit BpfEngine(LoadPlan& plan)
      : plan_(plan),
        c_(plan.c()),
        opts_(*plan.opts),
        pin_dir_(PinDir(plan.c().name)),
        sfx_(opts_.shared_object ? stubgen::StubSuffix(c_.id) : "") {}

  absl::Status Load(SetResult& res) override {
    auto tl = Clock::now();
    if (!opts_.shared_object) {  // else the caller built and loaded the policy's one object
      auto tb = Clock::now();
      auto obj_path = Build(res);
      if (!obj_path.ok()) return obj_path.status();
      res.build_ms = MsSince(tb);
      plan_.Mark("stub ready");
      tl = Clock::now();
      if (auto st = Open(*obj_path); !st.ok()) return st;
    }
    if (auto st = InitMaps(); !st.ok()) return st;
    for (auto& a : plan_.probes) {
      std::string pname = a.info.role == "guard" ? "sie_guard"
                          : a.info.role == "save"
                              ? artifact::SaveProgramName(a.info.span, a.info.point)
                              : absl::StrCat("sie_", a.info.role, "_", a.info.span);
      pname += sfx_;
      a.prog = bpf_object__find_program_by_name(obj(), pname.c_str());
      if (!a.prog) return absl::InternalError("stub has no program " + pname);
    }
    res.load_ms = MsSince(tl);
    plan_.Mark("loaded");
    return absl::OkStatus();
  }

  absl::Status AttachAll(Transaction& txn) override {
    state_ = plan_.BaseState();
    state_["mode"] = opts_.mode;
    state_["pin_dir"] = pin_dir_;
    // The state file first: a kill -9 from here on leaves something `sie unload --all` finds.
    if (auto st = WriteState(c_.name, state_); !st.ok()) return st;
    txn.OnRollback([name = c_.name] { RemoveState(name); });
    // Runs after the probes are detached and the instance removed (whose counting probes may
    // share addresses with the CS probes): their kprobes gone, their sites are forgotten.
    txn.OnRollback([this] {
      (void)WaitKprobesGone(detached_, 5, keep_);
      UnregisterSites(c_.name, registered_sites_);
    });
    if (opts_.mode == 2)
      if (auto st = CreateInstance(txn); !st.ok()) return st;
    txn.OnRollback([this] { (void)RemovePins(pin_dir_); });
    if (auto st = PinMaps(); !st.ok()) return st;
    txn.OnRollback([this] { DetachAll(); });
    // Every address ever attached is recorded before the next step, so `sie unload --all`
    // after a kill -9 knows which kprobes must disappear (link release is asynchronous).
    state_["attached_addresses"] = json::array();
    // All kprobes registered at once (no program linked yet: a hit runs nothing), so the
    // kernel's optimizer makes one pass after them instead of one between each two. The bytes
    // they patch are recorded first: once armed, an address reads as int3, and a later mode-2
    // load of a policy's other constant in this function restores the code from this record.
    std::vector<Attached*> all;
    for (auto& a : plan_.probes) {
      RecordOriginalBytes(c_.name, a.info.address, state_);
      all.push_back(&a);
    }
    if (auto st = WriteState(c_.name, state_); !st.ok()) return st;
    if (auto st = OpenKprobes(all); !st.ok()) return st;
    for (size_t i = 0; i < plan_.probes.size(); ++i)
      if (auto st = PlaceMoved(i); !st.ok()) return st;
    plan_.Mark("attached");
    return absl::OkStatus();
  }

  absl::Status Unplace(size_t i) override {
    Detach(plan_.probes[i]);
    return absl::OkStatus();
  }

  // Registers the site (apply probes), attaches, records the address.
  absl::Status PlaceMoved(size_t i) override {
    Attached& a = plan_.probes[i];
    const artifact::CriticalSpan& s = c_.spans[a.info.role == "guard" ? 0 : a.info.span];
    if (a.info.role == "apply") registered_sites_.push_back(a.info.address);
    if (auto st = Register(a, s); !st.ok()) return st;
    RecordOriginalBytes(c_.name, a.info.address, state_);
    if (auto st = Attach(a, pin_dir_); !st.ok()) return st;
    state_["attached_addresses"].push_back(a.info.address);
    return WriteState(c_.name, state_);
  }

  void AbandonMove(size_t i) override { Detach(plan_.probes[i]); }
  absl::Status PlaceBack(size_t i) override { return Attach(plan_.probes[i], pin_dir_); }

  // A site this load no longer probes (a candidate left or refused), unless another of its
  // probes sits at the same address.
  void Left(uint64_t addr) override {
    for (const auto& p : plan_.probes)
      if (p.info.address == addr) return;
    UnregisterSites(c_.name, {addr});
  }

  absl::Status Activate(SetResult& res) override {
    if (opts_.mode == 1) {
      bpf_map* stats_map = Map(SIE_MAP_STATS);
      if (!stats_map) return absl::InternalError("stub without sie_stats");
      RETURN_IF_ERROR(KernelStep("new epoch"));
      if (auto st = BeginEpoch(ctl_, bpf_map__fd(stats_map)); !st.ok()) return st;
    }
    RETURN_IF_ERROR(KernelStep(absl::StrCat("activate ", c_.name)));
    if (auto st = CtlSet(ctl_, SIE_CTL_ACTIVE, 1); !st.ok()) return st;
    if (opts_.mode == 2 && !opts_.shared_instance)  // else sie-run switches all at once
      if (auto st = GlobalSwitch(res); !st.ok()) return st;
    RecordLoaded(plan_.probes, state_, res);
    return WriteState(c_.name, state_);
  }

  // The pins own the links now; dropping our references does not detach them.
  void Commit() override {
    for (auto& a : plan_.probes) HandOver(a);
  }

 private:
  // The stub object: compiled or from a cache, linked with the policy objects if any.
  absl::StatusOr<fs::path> Build(SetResult& res) {
    auto stub = stubgen::BuildStub(*plan_.entry);
    if (!stub.ok()) return stub.status();
    res.compiled = stub->compiled_now;
    if (opts_.policy_objects.empty()) return stub->object;
    auto tmp = TempDir::Create(stubgen::CacheDir(), ".link-");
    if (!tmp.ok()) return tmp.status();
    link_tmp_.emplace(std::move(*tmp));
    std::vector<fs::path> objs{stub->object};
    objs.insert(objs.end(), opts_.policy_objects.begin(), opts_.policy_objects.end());
    fs::path out = link_tmp_->path() / "linked.bpf.o";
    if (auto st = stubgen::LinkObjects(objs, out); !st.ok()) return st;
    return out;
  }

  absl::Status Open(const fs::path& obj_path) {
    ClearLibbpfLog();
    obj_.reset(bpf_object__open_file(obj_path.c_str(), nullptr));
    if (!obj_)
      return absl::InternalError(absl::StrCat("opening ", obj_path.string(), ": ", strerror(errno),
                                              "\n", LibbpfLogTail()));
    if (auto st = PrepareStub(obj_.get(), "", opts_.mode); !st.ok()) return st;
    if (opts_.prepare_object)
      if (auto st = opts_.prepare_object(obj_.get()); !st.ok()) return st;
    RETURN_IF_ERROR(KernelStep(absl::StrCat("load the stub of ", c_.name)));
    if (bpf_object__load(obj_.get()) != 0)
      return FailedWithHint(
          absl::StrCat("the kernel refused the stub of ", c_.name, ":\n", LibbpfLogTail()),
          "sie_kfuncs.ko must be loaded (kfuncs) and the kernel needs BTF");
    return absl::OkStatus();
  }

  // The safe ranges and the control words, with the gate closed (active 0).
  absl::Status InitMaps() {
    bpf_map* ctl_map = Map(SIE_MAP_CTL);
    bpf_map* safe_map = Map(SIE_MAP_SAFE);
    if (!ctl_map || !safe_map) return absl::InternalError("stub without sie_ctl/sie_safe");
    ctl_ = bpf_map__fd(ctl_map);
    for (size_t j = 0; j < plan_.safe_ranges.size(); ++j) {
      uint32_t k = j;
      const sie_range r = {plan_.safe_ranges[j].first, plan_.safe_ranges[j].second};
      RETURN_IF_ERROR(KernelStep(absl::StrCat("safe range ", j)));
      if (bpf_map_update_elem(bpf_map__fd(safe_map), &k, &r, BPF_ANY) != 0)
        return absl::InternalError(absl::StrCat("writing safe range ", j, ": ", strerror(errno)));
    }
    for (auto [k, v] : {std::pair<uint32_t, uint64_t>{SIE_CTL_VALUE, opts_.value},
                        {SIE_CTL_MODE, opts_.mode},
                        {SIE_CTL_TARGET, 1},
                        {SIE_CTL_NSAFE, plan_.safe_ranges.size()},
                        {SIE_CTL_INSTANCE, static_cast<uint64_t>(std::max(plan_.instance, 0))},
                        {SIE_CTL_ACTIVE, 0}}) {
      RETURN_IF_ERROR(KernelStep(absl::StrCat("control word ", k)));
      if (auto st = CtlSet(ctl_, k, v); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  // Mode 2: the instance before any probe, so the gate exists (closed) when the first CS runs;
  // removed again unless the load succeeds.
  absl::Status CreateInstance(Transaction& txn) {
    json ca = json::array();
    for (const GlobalSpan& g : plan_.global_spans) {
      ca.push_back(g.entry);
      for (uint64_t e : g.exits) ca.push_back(e);
    }
    state_["consistency_addresses"] = ca;
    if (auto st = WriteState(c_.name, state_); !st.ok()) return st;
    if (opts_.shared_instance) return JoinInstance(*opts_.shared_instance);
    txn.OnRollback(
        [id = plan_.instance] { (void)ConsistencyCommand(absl::StrCat("remove ", id)); });
    for (const GlobalSpan& g : plan_.global_spans) {
      RETURN_IF_ERROR(KernelStep("sie_consistency span"));
      if (auto st = ConsistencyCommand(SpanCommand(plan_.instance, g)); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  // A policy's shared instance: this constant's spans join the others' (the policy removes
  // the instance if the load fails). The module needs disjoint spans: one equal to a span
  // already there (two constants used in one function) is there once, an overlap is refused.
  absl::Status JoinInstance(SharedInstance& shared) {
    for (const GlobalSpan& g : plan_.global_spans) {
      auto add = JoinsSharedSpans(c_.name, shared.spans, g);
      if (!add.ok()) return add.status();
      if (!*add) continue;
      RETURN_IF_ERROR(KernelStep("sie_consistency span"));
      if (auto st = ConsistencyCommand(SpanCommand(plan_.instance, g)); !st.ok()) return st;
      shared.spans.emplace_back(g.start, g.end);
    }
    return absl::OkStatus();
  }

  absl::Status PinMaps() {
    if (mkdir(pin_dir_.c_str(), 0700) != 0 && errno != EEXIST)
      return absl::InternalError(absl::StrCat("mkdir ", pin_dir_, ": ", strerror(errno)));
    for (const char* m : kPinnedMaps) {
      bpf_map* map = Map(m);
      if (!map) continue;
      RETURN_IF_ERROR(KernelStep(absl::StrCat("pin map ", m)));
      if (int err = bpf_map__pin(map, (fs::path(pin_dir_) / m).c_str()); err)
        return absl::InternalError(absl::StrCat("pinning ", m, ": ", strerror(-err)));
    }
    bpf_program* check =
        bpf_object__find_program_by_name(obj(), (SIE_PROG_REVERSE_CHECK + sfx_).c_str());
    if (opts_.mode == 1 && check) {
      RETURN_IF_ERROR(KernelStep("pin the reverse check"));
      if (int err = bpf_program__pin(check, (fs::path(pin_dir_) / SIE_PROG_REVERSE_CHECK).c_str()))
        return absl::InternalError(absl::StrCat("pinning the reverse check: ", strerror(-err)));
    }
    return absl::OkStatus();
  }

  // Rollback: every probe detached; what was attached (and the other tools' kprobes found
  // there before ours) is kept for the wait that follows.
  void DetachAll() {
    for (auto& a : plan_.probes) {
      if (a.attached()) detached_.push_back(a.info.address);
      keep_[a.info.address] = std::max(keep_[a.info.address], a.info.others_count);
      Detach(a);
    }
  }

  // Mode 2: the gate stays closed until sie_consistency flips it at an instant with no task
  // inside a span. On timeout the module rolled back (never active): detach everything.
  absl::Status GlobalSwitch(SetResult& res) {
    auto tt = Clock::now();
    auto fw = RunGlobal(plan_.instance, true, opts_.timeout_s);
    if (!fw.ok()) return fw.status();
    if (StatusValue(*fw, "state") != "active")
      return FailedWithHint(
          absl::StrCat("the global transition of ", c_.name, " did not finish within ",
                       opts_.timeout_s, " s: ", DescribeBlockers(*fw),
                       "; nothing was applied and nothing is left attached"),
          "use --mode 1 (per-task), or give the tasks more time: --timeout S");
    res.transition_ms = ElapsedMs(*fw);
    res.transition_result = StatusValue(*fw, "result");
    state_["global"] = {{"result", res.transition_result},
                        {"transition_ms", res.transition_ms},
                        {"wait_ms", MsSince(tt)}};
    plan_.Mark("global transition done");
    return absl::OkStatus();
  }

  // The stub's object: its own, or the policy's one object its names are suffixed in.
  bpf_object* obj() const { return obj_ ? obj_.get() : opts_.shared_object; }
  // A map of this stub by its ABI name (abi.h); pinned under that name either way.
  bpf_map* Map(const char* abi_name) const {
    return bpf_object__find_map_by_name(obj(), (abi_name + sfx_).c_str());
  }

  LoadPlan& plan_;
  const artifact::SynthesizedConst& c_;
  const SetOptions& opts_;
  const std::string pin_dir_;
  const std::string sfx_;  // the stub's name suffix in a policy's object (StubSuffix)
  std::optional<TempDir> link_tmp_;
  ObjPtr obj_;
  int ctl_ = -1;
  json state_;
  std::vector<uint64_t> registered_sites_;  // sie_kfuncs sites of this load (apply probes)
  std::vector<uint64_t> detached_;          // rollback: addresses that were attached
  std::map<uint64_t, int> keep_;            // rollback: other tools' kprobes found there
};

}  // namespace

std::unique_ptr<Engine> MakeBpfEngine(LoadPlan& plan) { return std::make_unique<BpfEngine>(plan); }

}  // namespace sie::loader
