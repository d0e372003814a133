#include "runtime/apply/plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"

namespace sie::apply {
namespace fs = std::filesystem;
using nlohmann::json;

const char* OpName(Op op) {
  switch (op) {
    case Op::kStopPolicy:
      return "stop-policy";
    case Op::kUnload:
      return "unload";
    case Op::kReload:
      return "reload";
    case Op::kUpdate:
      return "update";
    case Op::kLoad:
      return "load";
    case Op::kStartPolicy:
      return "start-policy";
  }
  return "?";
}

namespace {

bool SameDir(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

// Why the loaded constant must be reloaded to match `r` ("" when a value update does).
std::string ReloadWhy(const Loaded& l, const Resolved& r) {
  if (!l.complete) return "left half-loaded by a killed sie set";
  if (r.want.engine != "auto" && r.want.engine != l.engine)
    return absl::StrCat("engine ", l.engine, " -> ", r.want.engine);
  if (l.mode != r.want.mode) return absl::StrCat("mode ", l.mode, " -> ", r.want.mode);
  if (!SameDir(l.consts_dir, r.consts_dir))
    return absl::StrCat("constants directory ", l.consts_dir.string(), " -> ",
                        r.consts_dir.string());
  return "";
}

// Why the pinned policy differs from the desired one ("" when it does not).
std::string PolicyWhy(const std::optional<PinnedPolicy>& p,
                      const std::optional<ResolvedPolicy>& w) {
  if (!p && !w) return "";
  if (!w) return "not in the desired state";
  if (!p) return "not running";
  if (!SameDir(p->file, w->want.file))
    return absl::StrCat("file ", p->file.string(), " -> ", w->want.file.string());
  if (p->hash != w->hash) return "the file's content changed";
  if (p->consts != w->consts)
    return absl::StrCat("constants ", absl::StrJoin(p->consts, ","), " -> ",
                        absl::StrJoin(w->consts, ","));
  if (p->mode != w->want.mode) return absl::StrCat("mode ", p->mode, " -> ", w->want.mode);
  if (p->sets != w->sets)
    return absl::StrCat("knobs [", absl::StrJoin(p->sets, " "), "] -> [",
                        absl::StrJoin(w->sets, " "), "]");
  if (p->shadow != w->want.shadow)
    return absl::StrCat("shadow ", p->shadow ? "on" : "off", " -> ", w->want.shadow ? "on" : "off");
  if (p->cgroup != w->want.cgroup)
    return absl::StrCat("canary cgroup '", p->cgroup.string(), "' -> '", w->want.cgroup.string(),
                        "'");
  return "";
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

absl::StatusOr<Plan> MakePlan(const std::vector<Resolved>& want,
                              const std::optional<ResolvedPolicy>& want_policy,
                              const std::vector<Loaded>& loaded,
                              const std::optional<PinnedPolicy>& pinned) {
  Plan plan;
  const std::string policy_why = PolicyWhy(pinned, want_policy);
  const bool policy_stops = pinned && !policy_why.empty();
  std::map<std::string, const Loaded*> by_name;  // loaded by value, or by a policy that stays
  std::set<std::string> foreground;              // decided by a policy sie apply does not own
  for (const Loaded& l : loaded) {
    const bool pinned_const = pinned && Contains(pinned->consts, l.name);
    if (l.by_policy && !pinned_const) foreground.insert(l.name);
    if (pinned_const && policy_stops) continue;  // the policy's stop unloads it
    if (!l.by_policy) by_name[l.name] = &l;
  }
  for (const Resolved& r : want) {
    if (want_policy && Contains(want_policy->consts, r.name))
      return InvalidWithHint(
          absl::StrCat(r.want.where, ": ", r.name, " is also decided by the policy ",
                       want_policy->want.file.string()),
          "a constant has a fixed value or a policy, not both: remove one");
    if (foreground.count(r.name))
      return FailedWithHint(absl::StrCat(r.name, " is decided by a running sie-run"),
                            "stop that policy first (Ctrl-C, or sie-run --stop)");
  }
  if (want_policy)
    for (const std::string& c : want_policy->consts)
      if (foreground.count(c))
        return FailedWithHint(absl::StrCat(c, " is decided by a running sie-run"),
                              "stop that policy first (Ctrl-C, or sie-run --stop)");

  if (policy_stops)
    plan.actions.push_back({.op = Op::kStopPolicy,
                            .name = pinned->file.string(),
                            .policy_before = pinned,
                            .why = policy_why});
  std::set<std::string> wanted;
  for (const Resolved& r : want) wanted.insert(r.name);
  for (const auto& [name, l] : by_name)
    if (!wanted.count(name))
      plan.actions.push_back(
          {.op = Op::kUnload, .name = name, .before = *l, .why = "not in the desired state"});
  for (const Resolved& r : want) {
    auto it = by_name.find(r.name);
    if (it == by_name.end()) {
      plan.actions.push_back({.op = Op::kLoad, .name = r.name, .after = r, .why = "not loaded"});
      continue;
    }
    const Loaded& l = *it->second;
    if (std::string why = ReloadWhy(l, r); !why.empty())
      plan.actions.push_back(
          {.op = Op::kReload, .name = r.name, .before = l, .after = r, .why = why});
    else if (l.value != r.want.value)
      plan.actions.push_back({.op = Op::kUpdate,
                              .name = r.name,
                              .before = l,
                              .after = r,
                              .why = absl::StrCat("value ", l.value, " -> ", r.want.value)});
  }
  if (want_policy && !policy_why.empty())
    plan.actions.push_back({.op = Op::kStartPolicy,
                            .name = want_policy->want.file.string(),
                            .policy_after = want_policy,
                            .why = policy_why});
  std::stable_sort(plan.actions.begin(), plan.actions.end(),
                   [](const Action& a, const Action& b) { return a.op < b.op; });
  return plan;
}

std::string Describe(const Action& a) {
  switch (a.op) {
    case Op::kStopPolicy:
      return absl::StrCat("- stop policy ", a.name, " (", a.why, ")");
    case Op::kUnload:
      return absl::StrCat("- unload ", a.name, " (now ", a.before->value, "; ", a.why, ")");
    case Op::kReload:
      return absl::StrCat("~ reload ", a.name, " = ", a.after->want.value, " (", a.why, ")");
    case Op::kUpdate:
      return absl::StrCat("~ update ", a.name, " ", a.why);
    case Op::kLoad:
      return absl::StrCat("+ load ", a.name, " = ", a.after->want.value, " (mode ",
                          a.after->want.mode, ", engine ", a.after->want.engine, ")");
    case Op::kStartPolicy:
      return absl::StrCat("+ start policy ", a.name, " (", a.why, ")");
  }
  return "";
}

json ToJson(const Action& a) {
  json j{{"op", OpName(a.op)}, {"name", a.name}, {"why", a.why}};
  if (a.before) {
    j["from"] = a.before->value;
    j["from_mode"] = a.before->mode;
    j["from_engine"] = a.before->engine;
  }
  if (a.after) {
    j["to"] = a.after->want.value;
    j["mode"] = a.after->want.mode;
    j["engine"] = a.after->want.engine;
  }
  if (a.policy_after) {
    j["consts"] = a.policy_after->consts;
    j["mode"] = a.policy_after->want.mode;
    j["knobs"] = a.policy_after->sets;
    j["shadow"] = a.policy_after->want.shadow;
    j["cgroup"] = a.policy_after->want.cgroup.string();
  }
  return j;
}

}  // namespace sie::apply
