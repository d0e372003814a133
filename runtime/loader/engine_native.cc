// The native engine (native.h): every probe is registered INERT first (writing the shipped
// value's result, which the Critical Span has just computed, changes nothing), its address is
// checked in the kprobe list, jump-optimizable candidates are tried while still inert, and only
// then each probe gets the new value. Any failure removes every probe (they were inert), so the
// kernel is left as it was.
#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "common/base/fault.h"
#include "common/base/status_macros.h"
#include "runtime/loader/engine.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/native.h"

namespace sie::loader {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class NativeEngine : public Engine {
 public:
  NativeEngine(LoadPlan& plan, bool allow_place_taken)
      : plan_(plan), c_(plan.c()), allow_place_taken_(allow_place_taken) {}

  // Each probe's inert value (the shipped value's) and new value.
  absl::Status Load(SetResult&) override {
    auto np = NativeProbes(c_, plan_.binary());
    if (!np.ok()) return np.status();
    np_ = std::move(*np);
    for (const NativeProbe& p : np_) {
      auto o = NativeValue(*p.cs, c_.values[0]);
      auto v = NativeValue(*p.cs, plan_.opts->value);
      if (!o.ok()) return o.status();
      if (!v.ok()) return v.status();
      inert_.push_back(*o);
      vals_.push_back(*v);
    }
    // Mode 0, kinds reg/mem: each span has its apply probe, a path-token span also its mark
    // (sie_native registers it with the apply); no save or guard probes.
    np_of_.assign(plan_.probes.size(), -1);
    apply_of_.assign(np_.size(), -1);
    mark_of_.assign(np_.size(), -1);
    for (size_t k = 0; k < plan_.probes.size(); ++k) {
      const ProbeInfo& in = plan_.probes[k].info;
      if (in.span < 0 || static_cast<size_t>(in.span) >= np_.size())
        return absl::InternalError("native: probe of no span");
      if (in.role == "apply") {
        apply_of_[in.span] = static_cast<int>(k);
        np_of_[k] = in.span;
      } else if (in.role == "mark") {
        mark_of_[in.span] = static_cast<int>(k);
      } else {
        return absl::InternalError(absl::StrCat("native: a ", in.role, " probe"));
      }
    }
    for (size_t n = 0; n < np_.size(); ++n)
      if (apply_of_[n] < 0 || np_[n].mark.has_value() != (mark_of_[n] >= 0))
        return absl::InternalError("native: probes do not match the spans");
    return absl::OkStatus();
  }

  absl::Status AttachAll(Transaction& txn) override {
    state_ = plan_.BaseState();
    state_["engine"] = "native";
    state_["mode"] = 0;
    state_["native"] = json::array();
    state_["attached_addresses"] = json::array();
    if (auto st = WriteState(c_.name, state_); !st.ok()) return st;
    txn.OnRollback([name = c_.name] { RemoveState(name); });
    txn.OnRollback([this] {
      for (const auto& [sym, off] : mine_) (void)NativeCommand(NativeRemoveCommand(sym, off));
    });
    auto before = ReadKprobeList();
    if (!before.ok()) return before.status();
    before_ = std::move(*before);
    // Every place goes into the state first (an unload after a kill -9 finds them all), then
    // each probe is registered disarmed and one `arm` enables them back to back: registering
    // armed kicks the kernel's optimizer, which holds kprobe_mutex across a tasks-RCU grace
    // period, and each next registration waited for it (15 probes: ~1 s instead of ~0.2 s).
    for (size_t i = 0; i < np_.size(); ++i) RecordPlace(i);
    if (auto st = WriteState(c_.name, state_); !st.ok()) return st;
    for (size_t i = 0; i < np_.size(); ++i) {
      if (auto st = Add(i, /*disarmed=*/true); !st.ok()) {
        if (add_err_ != EEXIST || !allow_place_taken_) return st;
        return PlaceTaken(st);
      }
    }
    RETURN_IF_ERROR(KernelStep("sie_native arm"));
    return NativeCommand(kNativeArmCommand);
  }

  // The driver moves apply probes (plan indices); a mark moves with its apply.
  absl::Status Unplace(size_t i) override {
    NativeProbe& p = np_[np_of_[i]];
    absl::Status st = NativeCommand(NativeRemoveCommand(p.symbol, p.offset));
    if (st.ok()) mine_.erase({p.symbol, p.offset});
    return st;
  }

  absl::Status PlaceMoved(size_t i) override {
    if (auto st = Record(np_of_[i]); !st.ok()) return st;
    return Add(np_of_[i]);
  }

  void AbandonMove(size_t) override {}  // a failed add left nothing
  absl::Status PlaceBack(size_t i) override { return Add(np_of_[i]); }

  absl::Status Activate(SetResult& res) override {
    if (auto st = CheckLanded(); !st.ok()) return st;
    for (size_t i = 0; i < np_.size(); ++i) {
      RETURN_IF_ERROR(KernelStep(absl::StrCat("sie_native value of ", np_[i].symbol)));
      if (auto st = NativeCommand(NativeValueCommand(np_[i], vals_[i])); !st.ok()) return st;
    }
    RecordLoaded(plan_.probes, state_, res);
    json places = json::array();  // where the probes are now (status, value changes, unload)
    for (const NativeProbe& p : np_)
      places.push_back({{"span", p.span}, {"symbol", p.symbol}, {"offset", p.offset}});
    state_["native"] = places;
    return WriteState(c_.name, state_);
  }

  bool place_taken() const override { return place_taken_; }

 private:
  // Probe i's place (the driver may have moved it to a candidate) goes into the state before
  // it is registered, so an unload after a kill -9 finds it.
  absl::Status Record(size_t i) {
    RecordPlace(i);
    return WriteState(c_.name, state_);
  }
  void RecordPlace(size_t i) {
    np_[i].offset = plan_.probes[apply_of_[i]].info.offset;
    state_["native"].push_back(
        {{"span", np_[i].span}, {"symbol", np_[i].symbol}, {"offset", np_[i].offset}});
    state_["attached_addresses"].push_back(plan_.probes[apply_of_[i]].info.address);
    if (mark_of_[i] >= 0)
      state_["attached_addresses"].push_back(plan_.probes[mark_of_[i]].info.address);
  }

  // Registers span i's probe (and its mark), inert. The places registered now are this
  // load's (never another constant's: a place whose add failed, e.g. EEXIST, is not ours).
  absl::Status Add(size_t i, bool disarmed = false) {
    NativeProbe& p = np_[i];
    p.offset = plan_.probes[apply_of_[i]].info.offset;
    if (mark_of_[i] >= 0) p.mark = plan_.probes[mark_of_[i]].info.offset;
    RETURN_IF_ERROR(KernelStep(absl::StrCat("sie_native add at ", p.symbol)));
    absl::Status st = NativeCommand(NativeAddCommand(p, inert_[i], disarmed), &add_err_);
    if (st.ok()) mine_.insert({p.symbol, p.offset});
    return st;
  }

  // Taken meanwhile: remove what this load added (inert, so nothing changed), then let the
  // driver use BPF. A probe that cannot be removed is an error, not a fallback.
  absl::Status PlaceTaken(absl::Status refusal) {
    absl::Status undo = absl::OkStatus();
    for (const auto& [sym, off] : std::set(mine_))
      if (auto rm = NativeCommand(NativeRemoveCommand(sym, off)); rm.ok())
        mine_.erase({sym, off});
      else if (undo.ok())
        undo = rm;
    if (!undo.ok()) return undo;
    place_taken_ = true;
    return refusal;
  }

  // sie_native resolved each probe by name: it must sit at the address whose bytes were
  // verified (one more kprobe there than before), else it probes something else.
  absl::Status CheckLanded() {
    auto after = ReadKprobeList();
    if (!after.ok()) return after.status();
    std::map<uint64_t, int> want;
    for (const auto& a : plan_.probes) want[a.info.address]++;
    for (const auto& [addr, n] : want) {
      auto count = [&](const std::vector<KprobeEntry>& l) {
        return static_cast<int>(std::count_if(
            l.begin(), l.end(), [&](const KprobeEntry& e) { return e.addr == addr; }));
      };
      if (count(*after) - count(before_) != n)
        return FailedWithHint(
            absl::StrCat("sie_native's probe did not land at 0x", absl::Hex(addr),
                         ", the verified address (the symbol name resolves elsewhere?)"),
            "use --engine bpf (it attaches at the exact address)");
    }
    return absl::OkStatus();
  }

  LoadPlan& plan_;
  const artifact::SynthesizedConst& c_;
  const bool allow_place_taken_;
  std::vector<NativeProbe> np_;
  std::vector<uint64_t> inert_, vals_;
  // Plan probe index -> span (-1: a mark); span -> its apply's and its mark's plan index.
  std::vector<int> np_of_, apply_of_, mark_of_;
  json state_;
  std::vector<KprobeEntry> before_;  // the kprobe list before this load's adds
  std::set<std::pair<std::string, uint64_t>> mine_;
  int add_err_ = 0;
  bool place_taken_ = false;
};

}  // namespace

std::unique_ptr<Engine> MakeNativeEngine(LoadPlan& plan, bool allow_place_taken) {
  return std::make_unique<NativeEngine>(plan, allow_place_taken);
}

}  // namespace sie::loader
