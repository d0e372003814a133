#include "runtime/apply/apply.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/base/status_macros.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/loader.h"
#include "runtime/loader/state.h"
#include "runtime/loader/transaction.h"
#include "runtime/policy/policy.h"

namespace sie::apply {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The directory's kernel release is checked once for all (CheckConstsFor, in Resolve).
absl::StatusOr<Resolved> ResolveConst(const DesiredConst& w, const fs::path& dir) {
  auto e = artifact::FindConst(dir, w.name);
  if (!e.ok()) return WithContext(e.status(), w.where);
  loader::SetOptions so;
  so.value = w.value;
  so.mode = w.mode;
  RETURN_IF_ERROR(WithContext(loader::ValidateRequest(e->c, so), w.where));
  return Resolved{w, e->c.name, dir};
}

absl::StatusOr<ResolvedPolicy> ResolvePolicy(const DesiredPolicy& w, const fs::path& dir) {
  auto text = ReadFile(w.file);
  if (!text.ok())
    return WithHint(WithContext(text.status(), w.where), "give the policy's .bpf.c file");
  ResolvedPolicy r{w, ContentHash(*text), {}, {}, {}};
  std::vector<std::string> names = w.consts;
  if (names.empty()) {
    auto from_file = policy::PolicyConstNames(w.file, dir);
    if (!from_file.ok()) return WithContext(from_file.status(), w.where);
    names = *from_file;
  }
  auto entries = policy::ResolveConsts(dir, names);
  if (!entries.ok()) return WithContext(entries.status(), w.where);
  for (const auto& e : *entries) r.consts.push_back(e.c.name);
  std::sort(r.consts.begin(), r.consts.end());
  for (const auto& [k, v] : w.knobs) r.sets.push_back(absl::StrCat(k, "=", v));
  return r;
}

loader::SetOptions SetOf(const std::string& name, int64_t value, int mode,
                         const std::string& engine, const fs::path& dir) {
  loader::SetOptions so;
  so.consts_dir = dir;
  so.name = name;
  so.value = value;
  so.mode = mode;
  so.engine = engine;
  return so;
}

absl::Status Set(const loader::SetOptions& so) { return loader::SetConst(so).status(); }

// While a policy starts inside `sie apply --json`, its messages go to stderr: stdout carries
// only the one JSON answer.
class StdoutToStderr {
 public:
  StdoutToStderr() {
    std::fflush(stdout);
    saved_ = dup(STDOUT_FILENO);
    dup2(STDERR_FILENO, STDOUT_FILENO);
  }
  ~StdoutToStderr() {
    std::fflush(stdout);
    if (saved_ >= 0) dup2(saved_, STDOUT_FILENO), close(saved_);
  }
  StdoutToStderr(const StdoutToStderr&) = delete;
  StdoutToStderr& operator=(const StdoutToStderr&) = delete;

 private:
  int saved_ = -1;
};

// The desired policy in the form a pinned one is recorded (what StartPolicy runs).
PinnedPolicy AsPinned(const ResolvedPolicy& r) {
  return {r.want.file, r.hash,       r.consts,      r.want.mode,
          r.sets,      r.consts_dir, r.want.shadow, r.want.cgroup};
}

absl::Status StartPolicy(const PinnedPolicy& p, double timeout_s) {
  policy::RunOptions ro;
  ro.source = p.file;
  ro.consts = p.consts;
  ro.consts_dir = p.consts_dir;
  ro.mode = p.mode;
  ro.sets = p.sets;
  ro.shadow = p.shadow;
  ro.cgroup = p.cgroup;
  ro.pin = true;
  ro.reverse_timeout_s = timeout_s;
  std::atomic<bool> stop{false};
  StdoutToStderr quiet;
  return policy::RunPolicy(ro, stop);
}

// Carries out plan actions, each recording its undo in `txn`; failed undos are collected.
class Runner {
 public:
  Runner(const ApplyOptions& o, loader::Transaction& txn) : o_(o), txn_(txn) {}

  absl::Status Run(const Action& a) {
    const auto t0 = loader::Clock::now();
    absl::Status st = Do(a);
    if (st.ok() && o_.progress) o_.progress(a, "done", loader::MsSince(t0));
    return st;
  }
  const std::vector<std::string>& undo_failures() const { return undo_failures_; }
  int undone() const { return undone_; }

 private:
  absl::Status Do(const Action& a) {
    switch (a.op) {
      case Op::kStopPolicy: {
        RETURN_IF_ERROR(policy::StopPinned(o_.timeout_s));
        const PinnedPolicy p = *a.policy_before;
        Undo(a, [p, this] { return StartPolicy(p, o_.timeout_s); });
        return absl::OkStatus();
      }
      case Op::kUnload:
        return Unload(a);
      case Op::kReload:
        RETURN_IF_ERROR(Unload(a));
        return Load(a);
      case Op::kUpdate: {
        const Resolved& r = *a.after;
        RETURN_IF_ERROR(Set(SetOf(r.name, r.want.value, r.want.mode, "auto", r.consts_dir)));
        Undo(a,
             [l = *a.before] { return Set(SetOf(l.name, l.value, l.mode, "auto", l.consts_dir)); });
        return absl::OkStatus();
      }
      case Op::kLoad:
        return Load(a);
      case Op::kStartPolicy: {
        RETURN_IF_ERROR(StartPolicy(AsPinned(*a.policy_after), o_.timeout_s));
        Undo(a, [this] { return policy::StopPinned(o_.timeout_s); });
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unknown action");
  }

  // The undo is recorded first: an unload that fails halfway (the value already back at the
  // shipped one, the pins not yet removed) is undone too, by setting the old value again.
  absl::Status Unload(const Action& a) {
    Undo(a,
         [l = *a.before] { return Set(SetOf(l.name, l.value, l.mode, l.engine, l.consts_dir)); });
    return loader::Unload(a.name, false, o_.timeout_s);
  }

  absl::Status Load(const Action& a) {
    const Resolved& r = *a.after;
    RETURN_IF_ERROR(Set(SetOf(r.name, r.want.value, r.want.mode, r.want.engine, r.consts_dir)));
    Undo(a, [this, name = r.name] { return loader::Unload(name, false, o_.timeout_s); });
    return absl::OkStatus();
  }

  void Undo(const Action& a, std::function<absl::Status()> undo) {
    txn_.OnRollback([this, a, undo = std::move(undo)] {
      const auto t0 = loader::Clock::now();
      ++undone_;
      if (absl::Status st = undo(); !st.ok())
        undo_failures_.push_back(absl::StrCat(Describe(a), ": ", st.message()));
      else if (o_.progress)
        o_.progress(a, "undone", loader::MsSince(t0));
    });
  }

  const ApplyOptions& o_;
  loader::Transaction& txn_;
  std::vector<std::string> undo_failures_;
  int undone_ = 0;
};

}  // namespace

absl::StatusOr<Target> Resolve(const DesiredState& d, const ApplyOptions& o,
                               const std::string& release) {
  Target t;
  t.consts_dir = d.consts_dir.empty() ? o.consts_dir : d.consts_dir;
  if (d.constants.empty() && !d.policy) return t;  // nothing wanted: the directory is not needed
  RETURN_IF_ERROR(loader::CheckConstsFor(t.consts_dir, release));
  for (const DesiredConst& w : d.constants) {
    auto r = ResolveConst(w, t.consts_dir);
    if (!r.ok()) return r.status();
    t.consts.push_back(std::move(*r));
  }
  if (d.policy) {
    auto p = ResolvePolicy(*d.policy, t.consts_dir);
    if (!p.ok()) return p.status();
    p->consts_dir = t.consts_dir;
    t.policy = std::move(*p);
  }
  return t;
}

std::vector<Loaded> ReadLoaded() {
  std::vector<Loaded> out;
  for (const json& s : loader::StatesExcept("")) {
    Loaded l;
    l.name = s.value("name", "");
    l.value = s.value("value", int64_t{0});
    l.mode = s.value("mode", 0);
    l.engine = s.value("engine", "bpf");
    l.consts_dir = fs::path(s.value("const_path", "")).parent_path().parent_path();
    l.complete = s.value("state", "") == "loaded";
    l.by_policy = s.contains("policy") && s["policy"] == true;
    out.push_back(std::move(l));
  }
  return out;
}

std::optional<PinnedPolicy> ReadPinned() {
  auto text = ReadFile(policy::StatePath());
  if (!text.ok()) return std::nullopt;
  json s = json::parse(*text, nullptr, false);
  if (s.is_discarded()) return std::nullopt;
  PinnedPolicy p;
  p.file = s.value("policy", "");
  p.hash = s.value("policy_hash", "");
  p.consts = s.value("consts", std::vector<std::string>{});
  std::sort(p.consts.begin(), p.consts.end());
  p.consts_dir = s.value("consts_dir", "");
  p.mode = s.value("mode", 0);
  p.sets = s.value("sets", std::vector<std::string>{});
  p.shadow = s.value("shadow", false);
  p.cgroup = s.value("cgroup", "");
  return p;
}

absl::StatusOr<ApplyResult> Apply(const DesiredState& d, const ApplyOptions& o) {
  auto target = Resolve(d, o, loader::KernelRelease());
  if (!target.ok()) return target.status();
  ApplyResult res;
  auto plan = MakePlan(target->consts, target->policy, ReadLoaded(), ReadPinned());
  if (!plan.ok()) return plan.status();
  res.plan = std::move(*plan);
  if (o.dry_run || !res.plan.changes()) return res;
  if (geteuid() != 0)
    return FailedWithHint("sie apply changes the running kernel and needs root",
                          "run it as root, or look first with --dry-run");
  loader::Transaction txn;
  Runner runner(o, txn);
  for (const Action& a : res.plan.actions) {
    if (absl::Status st = runner.Run(a); !st.ok()) {
      txn.Rollback();
      std::string msg =
          absl::StrCat(Describe(a), ": ", st.message(), "; ", runner.undone(), " step(s) undone");
      if (!runner.undo_failures().empty())
        absl::StrAppend(&msg, "; NOT undone: ", absl::StrJoin(runner.undo_failures(), "; "));
      return ErrorWithHint(st.code(), msg,
                           Hint(st).empty() ? "see 'sie status' and 'sie log'" : Hint(st));
    }
    ++res.done;
  }
  txn.Commit();
  return res;
}

}  // namespace sie::apply
