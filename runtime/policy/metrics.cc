#include "runtime/policy/metrics.h"

#include <bpf/bpf.h>
#include <errno.h>

#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "bpf/include/sie/abi.h"
#include "common/base/diag.h"
#include "common/base/unique_fd.h"

namespace sie::policy {
namespace {

// A label value with \ " and newlines escaped, as the format requires.
std::string Label(const std::string& v) {
  return absl::StrReplaceAll(v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

// One metric family: HELP, TYPE and its samples, written only when it has samples.
class Family {
 public:
  Family(std::string name, std::string type, std::string help)
      : name_(std::move(name)), type_(std::move(type)), help_(std::move(help)) {}
  // Integers exactly (counters pass 2^53), other values with every significant digit.
  void Add(const std::string& labels, int64_t v) { Sample(labels, absl::StrCat(v)); }
  void Add(const std::string& labels, uint64_t v) { Sample(labels, absl::StrCat(v)); }
  void Add(const std::string& labels, int v) { Sample(labels, absl::StrCat(v)); }
  void Add(const std::string& labels, double v) { Sample(labels, absl::StrFormat("%.17g", v)); }
  void Sample(const std::string& labels, const std::string& v) {
    absl::StrAppend(&samples_, name_, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ", v,
                    "\n");
  }
  void AppendTo(std::string* out) const {
    if (samples_.empty()) return;
    absl::StrAppend(out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " ", type_, "\n",
                    samples_);
  }

 private:
  std::string name_, type_, help_, samples_;
};

std::string ConstLabels(const loader::LoadedConst& lc) {
  return absl::StrCat("const=\"", Label(lc.state.value("name", "?")), "\",id=\"",
                      lc.state.value("id", 0), "\"");
}

// Decisions by value, labelled with their constant's name (by id, from the loaded states), and
// per constant the shadow decisions that differ from its shipped value.
void AddDecisions(const std::vector<loader::LoadedConst>& consts,
                  const std::map<std::string, int64_t>& shipped, const std::vector<Decision>& all,
                  Family* dec, Family* diff) {
  std::map<uint32_t, std::string> names;
  for (const loader::LoadedConst& lc : consts)
    names[lc.state.value("id", 0u)] = lc.state.value("name", "");
  std::map<uint32_t, uint64_t> differ;
  for (const Decision& d : all) {
    const std::string& name = names[d.cid];
    const std::string l = absl::StrCat("const=\"", Label(name), "\",id=\"", d.cid, "\"");
    dec->Add(absl::StrCat(l, ",kind=\"", DecisionKindName(d.kind), "\",value=\"", d.value, "\""),
             d.count);
    if (d.kind != SIE_DECISION_SHADOW) continue;
    auto it = shipped.find(name);
    differ[d.cid] += (it == shipped.end() || it->second != d.value) ? d.count : 0;
  }
  for (const auto& [cid, n] : differ)
    diff->Add(absl::StrCat("const=\"", Label(names[cid]), "\",id=\"", cid, "\""), n);
}

}  // namespace

absl::StatusOr<PolicyMetrics> ReadPolicyMetrics() {
  PolicyMetrics m;
  UniqueFd txn(bpf_obj_get(absl::StrCat("/sys/fs/bpf/", SIE_RUN_MAP_TXN).c_str()));
  if (!txn.valid()) {
    if (errno == ENOENT) return m;
    return FailedWithHint(
        absl::StrCat("cannot open /sys/fs/bpf/", SIE_RUN_MAP_TXN, ": ", strerror(errno)),
        "run as root (the policy's maps are pinned by sie-run)");
  }
  m.running = true;
  uint32_t zero = 0;
  sie_run_txn_val v{};
  if (bpf_map_lookup_elem(txn.get(), &zero, &v) == 0) {
    m.active = v.active != 0;
    m.flags = v.flags;
    m.log_dropped = v.log_dropped;
    m.decisions_dropped = v.decisions_dropped;
  }
  UniqueFd dec(bpf_obj_get(absl::StrCat("/sys/fs/bpf/", SIE_RUN_MAP_DECISIONS).c_str()));
  if (dec.valid()) {
    auto d = ReadDecisions(dec.get());
    if (!d.ok()) return d.status();
    m.decisions = std::move(*d);
  }
  UniqueFd cnt(bpf_obj_get(absl::StrCat("/sys/fs/bpf/", SIE_RUN_MAP_COUNTERS).c_str()));
  if (!cnt.valid()) return m;
  char key[SIE_COUNTER_NAME] = {}, next[SIE_COUNTER_NAME];
  void* prev = nullptr;
  while (bpf_map_get_next_key(cnt.get(), prev, next) == 0) {
    uint64_t n = 0;
    if (bpf_map_lookup_elem(cnt.get(), next, &n) == 0)
      m.counters[std::string(next, strnlen(next, sizeof(next)))] = n;
    memcpy(key, next, sizeof(key));
    prev = key;
  }
  return m;
}

std::string MetricsText(const std::vector<loader::LoadedConst>& consts,
                        const std::map<std::string, int64_t>& shipped, const PolicyMetrics& pol) {
  Family value("sie_const_value", "gauge", "Value sie gives the constant now.");
  Family ship("sie_const_shipped_value", "gauge", "Value the running kernel was compiled with.");
  Family mode("sie_const_mode", "gauge", "Consistency mode: 0 immediate, 1 per-task, 2 global.");
  Family engine("sie_const_engine_info", "gauge", "The engine that applies the value (1).");
  Family probes("sie_const_probes", "gauge", "Kprobes the constant uses.");
  Family opt("sie_const_probes_optimized", "gauge", "Of those, jump-optimized ([OPTIMIZED]).");
  Family loaded("sie_const_loaded", "gauge",
                "1 when every probe is in place (pins or native probes present).");
  Family since("sie_const_loaded_timestamp_seconds", "gauge", "When the constant was set.");
  Family hits("sie_const_hits_total", "counter", "Probe hits at the constant's spans.");
  Family applied("sie_const_applied_total", "counter", "Hits that wrote the new value.");
  Family rejected("sie_const_rejected_total", "counter",
                  "Hits that kept the code's value (undefined formula, out of range).");
  Family failed("sie_const_failed_total", "counter", "Hits whose write failed.");
  Family trans("sie_const_transition_seconds", "gauge",
               "Mode 1: mean and max time for a task to switch since the last request; mode 2: "
               "the last global transition.");
  for (const loader::LoadedConst& lc : consts) {
    const std::string l = ConstLabels(lc);
    const std::string name = lc.state.value("name", "");
    value.Add(l, lc.state.value("value", int64_t{0}));
    if (auto it = shipped.find(name); it != shipped.end()) ship.Add(l, it->second);
    mode.Add(l, lc.state.value("mode", 0));
    engine.Add(absl::StrCat(l, ",engine=\"", Label(lc.engine), "\""), 1);
    int n_opt = 0;
    for (const auto& p : lc.probes) n_opt += p.optimized;
    probes.Add(l, static_cast<uint64_t>(lc.probes.size()));
    opt.Add(l, n_opt);
    loaded.Add(l, lc.pins_present ? 1 : 0);
    since.Add(l, lc.state.value("loaded_at", int64_t{0}));
    loader::SpanCounters sum;
    for (const auto& s : lc.spans) {
      sum.hits += s.hits;
      sum.applied += s.applied;
      sum.rejected += s.rejected;
      sum.failed += s.failed;
    }
    hits.Add(l, sum.hits);
    applied.Add(l, sum.applied);
    rejected.Add(l, sum.rejected);
    failed.Add(l, sum.failed);
    if (lc.epoch.tasks) {
      trans.Add(absl::StrCat(l, ",stat=\"mean\""), lc.epoch.mean_ms / 1e3);
      trans.Add(absl::StrCat(l, ",stat=\"max\""), lc.epoch.max_ms / 1e3);
    }
    if (auto it = lc.global.find("elapsed_ns"); it != lc.global.end())
      trans.Add(absl::StrCat(l, ",stat=\"global\""), std::stod(it->second) / 1e9);
  }
  Family prun("sie_policy_running", "gauge", "1 while a sie-run policy is loaded.");
  Family pact("sie_policy_active", "gauge",
              "1 when its decisions apply, 0 when every constant keeps its default.");
  Family pdrop("sie_policy_log_dropped_total", "counter",
               "Policy log records lost to a full ring buffer.");
  Family pcnt("sie_policy_events_total", "counter", "The policy's named counters (sie_count).");
  Family pshadow("sie_policy_shadow", "gauge",
                 "1 in a shadow run (decisions counted, the defaults apply).");
  Family pcanary("sie_policy_canary", "gauge",
                 "1 when decisions apply only to the tasks of one cgroup.");
  Family pdec("sie_policy_decisions_total", "counter",
              "Decisions by constant, value and kind: applied, shadow (counted only), outside "
              "(a task outside the canary cgroup, given the default).");
  Family pdiff("sie_policy_shadow_differences_total", "counter",
               "Shadow decisions whose value differs from the constant's shipped value.");
  Family pdecdrop("sie_policy_decisions_dropped_total", "counter",
                  "Decisions not counted (more distinct values than the map holds).");
  prun.Add("", pol.running ? 1 : 0);
  if (pol.running) {
    pact.Add("", pol.active ? 1 : 0);
    pdrop.Add("", pol.log_dropped);
    pshadow.Add("", (pol.flags & SIE_RUN_SHADOW) ? 1 : 0);
    pcanary.Add("", (pol.flags & SIE_RUN_CANARY) ? 1 : 0);
    pdecdrop.Add("", pol.decisions_dropped);
    for (const auto& [k, n] : pol.counters) pcnt.Add(absl::StrCat("name=\"", Label(k), "\""), n);
    AddDecisions(consts, shipped, pol.decisions, &pdec, &pdiff);
  }
  std::string out;
  for (const Family* f :
       {&value,   &ship,    &mode,     &engine, &probes, &opt,     &loaded, &since,
        &hits,    &applied, &rejected, &failed, &trans,  &prun,    &pact,   &pshadow,
        &pcanary, &pdrop,   &pcnt,     &pdec,   &pdiff,  &pdecdrop})
    f->AppendTo(&out);
  return out;
}

}  // namespace sie::policy
