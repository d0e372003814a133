#include "runtime/policy/policy.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bpf/include/sie/abi.h"
#include "common/base/diag.h"
#include "common/base/fault.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/base/process.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "common/stubgen/stub_build.h"
#include "common/stubgen/stubgen.h"
#include "runtime/loader/libbpf_log.h"
#include "runtime/loader/loader.h"
#include "runtime/policy/consts_header.h"
#include "runtime/policy/decisions.h"
#include "runtime/policy/knobs.h"
#include "runtime/policy/object_cache.h"
#include "runtime/policy/verifier_log.h"

namespace sie::policy {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The SDK's shared maps (sdk/include/sie/policy.bpf.h), pinned by name under the default root;
// names and record layouts are in bpf/include/sie/abi.h.
constexpr char kPinRoot[] = "/sys/fs/bpf";
constexpr char kTxnMap[] = SIE_RUN_MAP_TXN;
constexpr char kLogMap[] = SIE_RUN_MAP_LOG;
constexpr char kCounterMap[] = SIE_RUN_MAP_COUNTERS;
constexpr char kDecisionsMap[] = SIE_RUN_MAP_DECISIONS;
constexpr char kCgroupMap[] = SIE_RUN_MAP_CGROUP;
constexpr int kCounterName = SIE_COUNTER_NAME;
using TxnVal = sie_run_txn_val;
using LogRec = sie_log_rec;

struct ObjDeleter {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
struct RbDeleter {
  void operator()(ring_buffer* r) const { ring_buffer__free(r); }
};
using ObjPtr = std::unique_ptr<bpf_object, ObjDeleter>;
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

bool IsInternalMap(const bpf_map* m) {
  const char* n = bpf_map__name(m);
  return n[0] == '.' || absl::StrContains(n, ".rodata") || absl::StrContains(n, ".bss") ||
         absl::StrContains(n, ".data") || absl::StrContains(n, ".kconfig");
}

std::string Explain(const VerifierError& v, const fs::path& source, const std::string& prog) {
  std::string where;
  if (v.line > 0) {
    // The log names the file as clang saw it; show the user's path when it is the policy.
    std::string file = fs::path(v.file).filename() == source.filename() ? source.string() : v.file;
    where = absl::StrCat(file, ":", v.line, ": ");
  }
  std::string msg =
      absl::StrCat(where, "the kernel's verifier rejected ",
                   prog.empty() ? "the policy" : absl::StrCat("'", prog, "'"), ": ", v.message);
  if (!v.source.empty()) absl::StrAppend(&msg, "\n    ", v.source);
  if (!v.raw_error.empty() && v.raw_error != v.message)
    absl::StrAppend(&msg, "\n  verifier: ", v.raw_error);
  if (v.truncated) absl::StrAppend(&msg, "\n  (the verifier log was truncated)");
  return absl::StrCat(msg, "\nhint: ", v.hint, " (-v shows the verifier's full log)");
}

// Why a name used with sie_arg() does not exist, from the constants' variable lists.
std::string ExplainVar(const std::string& var, const std::vector<artifact::ConstEntry>& consts,
                       const std::set<std::string>& known) {
  std::vector<std::string> reasons, live;
  for (const auto& e : consts) {
    bool found = false;
    for (const VarAccess& a : AnalyzeVars(e.c, known)) {
      if (a.accessible) live.push_back(absl::StrCat(a.name, " (", e.c.name, ")"));
      if (a.name == var) {
        found = true;
        reasons.push_back(a.accessible ? absl::StrCat("live at ", e.c.name,
                                                      " but not at the "
                                                      "other constant this SIE_POLICY is for")
                                       : absl::StrCat(e.c.name, ": ", a.why_not));
      }
    }
    if (!found) reasons.push_back(absl::StrCat("not live at ", e.c.name, "'s critical span(s)"));
  }
  return absl::StrCat(
      "variable '", var, "' cannot be read with sie_arg(): ", absl::StrJoin(reasons, "; "),
      "\nhint: variables readable here: ", live.empty() ? "none" : absl::StrJoin(live, ", "));
}

// Adds sie's explanation after clang's diagnostics when it recognizes the cause.
std::string ExplainCompileErrors(const std::string& diag,
                                 const std::vector<artifact::ConstEntry>& consts,
                                 const std::set<std::string>& known) {
  static const std::regex kLoc(R"(^([^:\n]+):(\d+):\d+: error: )");
  static const std::regex kUndeclaredArg(R"(function 'sie_arg__(\w+)')");
  static const std::regex kUnknownConst(R"(identifier 'sie_const_known__(\w+)')");
  static const std::regex kGeneric(R"(controlling expression type 'struct sie_ctx_(\w+) \*')");
  static const std::regex kArgMacro(R"(macro 'sie_arg__(\w+)')");
  std::vector<std::string> out;
  std::vector<std::string> lines = absl::StrSplit(diag, '\n');
  std::set<std::string> seen;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch loc, m;
    if (!std::regex_search(lines[i], loc, kLoc)) continue;
    const std::string where = absl::StrCat(loc[1].str(), ":", loc[2].str(), ": ");
    std::string msg;
    if (std::regex_search(lines[i], m, kUndeclaredArg)) {
      msg = ExplainVar(m[1], consts, known);
    } else if (std::regex_search(lines[i], m, kUnknownConst)) {
      std::vector<std::string> names;
      for (const auto& e : consts) names.push_back(stubgen::LowerIdent(e.c.name));
      msg = absl::StrCat("SIE_POLICY(", m[1].str(), "): '", m[1].str(),
                         "' is not a constant of this run\nhint: the constants given with "
                         "--const are: ",
                         absl::StrJoin(names, ", "),
                         " (lower case); add the constant to --const or fix the name");
    } else if (std::regex_search(lines[i], m, kGeneric)) {
      std::string var = "?";
      for (size_t j = i + 1; j < lines.size() && j < i + 12; ++j) {
        std::smatch mm;
        if (std::regex_search(lines[j], mm, kArgMacro)) {
          var = mm[1];
          break;
        }
      }
      std::vector<artifact::ConstEntry> one;
      for (const auto& e : consts)
        if (stubgen::LowerIdent(e.c.name) == m[1].str()) one.push_back(e);
      msg = ExplainVar(var, one.empty() ? consts : one, known);
    }
    if (!msg.empty() && seen.insert(where + msg).second) out.push_back(where + msg);
  }
  return absl::StrJoin(out, "\n");
}

}  // namespace

Toolchain Toolchain::FromBuild() {
  Toolchain t;
#ifdef SIE_BPF_CLANG
  t.clang = fs::exists(SIE_BPF_CLANG) ? SIE_BPF_CLANG : "clang";
#else
  t.clang = "clang";
#endif
  const stubgen::HeaderDirs dirs = stubgen::FindHeaderDirs();
  t.sdk_include = dirs.root / "sdk" / "include";
  t.abi_include = dirs.root / "bpf" / "include";
  t.vmlinux_dir = dirs.vmlinux;
#ifdef SIE_BPF_SYS_INCLUDES
  t.sys_includes = absl::StrSplit(SIE_BPF_SYS_INCLUDES, ' ', absl::SkipEmpty());
#endif
  return t;
}

absl::StatusOr<std::vector<artifact::ConstEntry>> ResolveConsts(
    const fs::path& consts_dir, const std::vector<std::string>& names) {
  if (names.empty())
    return InvalidWithHint("no constant given", "name the constants with --const NAME[,NAME]");
  std::vector<artifact::ConstEntry> out;
  std::set<std::string> seen;
  for (const std::string& n : names) {
    auto e = artifact::FindConst(consts_dir, n);
    if (!e.ok()) {
      std::vector<std::string> known;
      if (auto all = artifact::ListConsts(consts_dir); all.ok())
        for (const auto& k : *all) known.push_back(absl::StrCat(k.c.name, " (", k.c.id, ")"));
      return ErrorWithHint(absl::StatusCode::kNotFound,
                           absl::StrCat("unknown constant '", n, "' in ", consts_dir.string()),
                           known.empty()
                               ? absl::StrCat("no constants there: run 'sie synth SPEC --out ",
                                              consts_dir.string(), "' or pass --consts DIR")
                               : absl::StrCat("known constants: ", absl::StrJoin(known, ", ")));
    }
    if (!seen.insert(e->c.name).second)
      return InvalidWithHint(absl::StrCat("constant ", e->c.name, " is given twice"),
                             "name each constant once");
    out.push_back(std::move(*e));
  }
  return out;
}

absl::StatusOr<CompileResult> CompilePolicy(const Toolchain& tc, const fs::path& source,
                                            const std::vector<artifact::ConstEntry>& consts,
                                            const fs::path& include_dir, const fs::path& out_obj,
                                            const CacheOptions* cache) {
  std::error_code ec;
  if (!fs::exists(source, ec))
    return ErrorWithHint(absl::StatusCode::kNotFound,
                         absl::StrCat("policy ", source.string(), " does not exist"),
                         "give the path of a .bpf.c file");
  if (auto st = WritePolicyHeaders(consts, tc.vmlinux_dir / "vmlinux.h", include_dir); !st.ok())
    return st;
  // The flags CMake's sie_policy() compiles with too (cmake/Policy.cmake): one list.
  std::vector<std::string> flags = absl::StrSplit(SIE_POLICY_CFLAGS, ' ', absl::SkipEmpty());
  flags.insert(flags.end(), {"-I", include_dir.string(), "-I", tc.sdk_include.string(), "-I",
                             tc.vmlinux_dir.string()});
  // The SDK header includes sie/abi.h, the records it shares with sie-run.
  flags.insert(flags.end(), {"-I", tc.abi_include.string()});
  flags.insert(flags.end(), tc.sys_includes.begin(), tc.sys_includes.end());
  CompileResult cr;
  cr.object = out_obj;

  // The cache: a hit copies the object and skips clang.
  std::string key;
  const CacheKeyInputs key_in{tc.clang, flags, source, include_dir};
  if (cache) {
    auto k = PolicyCacheKey(key_in);
    if (k.ok()) {
      key = *k;
      if (auto hit = LookupPolicyObject(cache->lookup, key)) {
        std::error_code ec;
        fs::copy_file(hit->object, out_obj, fs::copy_options::overwrite_existing, ec);
        if (!ec) {
          cr.cache_hit = true;
          cr.diagnostics = hit->diagnostics;
          cr.cache_note = absl::StrCat("compiled object from the cache: ", hit->object.string());
          return cr;
        }
        cr.cache_note = absl::StrCat("cache entry ", hit->object.string(), " unreadable (",
                                     ec.message(), "); compiling");
      } else {
        cr.cache_note = absl::StrCat("not in the policy cache (key ", key, "); compiling");
      }
    } else {
      cr.cache_note = absl::StrCat("no cache key: ", k.status().message());
    }
  }

  std::vector<std::string> argv = {tc.clang};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.push_back(isatty(2) ? "-fcolor-diagnostics" : "-fno-color-diagnostics");
  const fs::path depfile = fs::path(out_obj.string() + ".d");
  if (!key.empty()) argv.insert(argv.end(), {"-MD", "-MF", depfile.string()});
  argv.insert(argv.end(), {"-c", fs::absolute(source).string(), "-o", out_obj.string()});
  auto r = Run(argv);
  if (!r.ok()) return r.status();
  cr.diagnostics = r->err;
  if (r->ok() && !key.empty() && !cache->store.empty()) {
    static const std::regex kColor("\x1b\\[[0-9;]*m");
    auto stored = StorePolicyObject(cache->store, key, out_obj, depfile, key_in,
                                    std::regex_replace(r->err, kColor, ""));
    cr.cache_note = stored.ok() ? absl::StrCat("compiled; cached as ", stored->string())
                                : absl::StrCat("compiled; not cached: ", stored.status().message());
  }
  if (!r->ok()) {
    std::string plain = r->err;
    // Strip colors for matching (clang's escapes sit between the location and "error:").
    static const std::regex kAnsi("\x1b\\[[0-9;]*m");
    plain = std::regex_replace(plain, kAnsi, "");
    auto text = ReadFile(tc.vmlinux_dir / "vmlinux.h");
    std::string why = ExplainCompileErrors(
        plain, consts, text.ok() ? KnownStructs(*text) : std::set<std::string>{});
    return InvalidWithHint(
        absl::StrCat("the policy does not compile:\n", r->err, why.empty() ? "" : "\n", why),
        why.empty() ? "fix the errors clang reports above" : "see the explanation above");
  }
  return cr;
}

absl::Status VerifyObject(const fs::path& obj_path, const fs::path& source, std::string* raw_log) {
  loader::RouteLibbpfLog();
  loader::ClearLibbpfLog();
  ObjPtr obj(bpf_object__open_file(obj_path.c_str(), nullptr));
  if (!obj)
    return absl::InternalError(absl::StrCat("opening ", obj_path.string(), ": ", strerror(errno),
                                            "\n", loader::LibbpfLogText()));
  bpf_map* m;
  bpf_object__for_each_map(m, obj.get()) bpf_map__set_pin_path(m, nullptr);
  struct Log {
    bpf_program* prog;
    std::unique_ptr<char[]> buf;
  };
  constexpr size_t kLogSize = 4 << 20;
  std::vector<Log> logs;
  bpf_program* p;
  bpf_object__for_each_program(p, obj.get()) {
    Log l{p, std::make_unique<char[]>(kLogSize)};
    l.buf[0] = 0;
    bpf_program__set_log_buf(p, l.buf.get(), kLogSize);
    bpf_program__set_log_level(p, 1);
    logs.push_back(std::move(l));
  }
  if (bpf_object__load(obj.get()) == 0) return absl::OkStatus();
  const int err = errno;
  // libbpf stops at the first program the kernel refused and names it in its own log.
  static const std::regex kFailed(R"(prog '(\w+)': failed to load)");
  std::smatch fm;
  const std::string lbl = loader::LibbpfLogText();
  if (std::regex_search(lbl, fm, kFailed))
    for (const Log& l : logs) {
      if (fm[1].str() != bpf_program__name(l.prog)) continue;
      absl::string_view log(l.buf.get());
      if (log.empty()) break;
      VerifierError v = TranslateVerifierLog(log);
      if (raw_log) *raw_log = std::string(log);
      return absl::InvalidArgumentError(Explain(v, source, bpf_program__name(l.prog)));
    }
  // No verifier log: a libbpf-side failure (CO-RE relocation, missing kfunc, map creation).
  std::string lb = loader::LibbpfLogText();
  std::string hint = "run with -v for libbpf's messages";
  static const std::regex kCore(R"(failed to resolve CO-RE relocation ([^\n]*))");
  std::smatch m2;
  if (std::regex_search(lb, m2, kCore))
    hint = absl::StrCat("a BPF_CORE_READ names a type or field this kernel lacks: ", m2[1].str());
  else if (absl::StrContains(lb, "extern (func ksym)"))
    hint = "a kfunc is missing: load sie_kfuncs (sie-run does it in the guest)";
  if (raw_log) *raw_log = lb;
  return InvalidWithHint(absl::StrCat("loading the policy failed: ", strerror(err), "\n",
                                      lb.substr(lb.size() > 1500 ? lb.size() - 1500 : 0)),
                         hint);
}

namespace {

// The canary's cgroup directory, opened for sie_run_cgroup (a cgroup v2 directory).
absl::StatusOr<UniqueFd> OpenCgroup(const fs::path& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct statfs sf {};
  if (!fd.valid() || fstatfs(fd.get(), &sf) != 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
    return InvalidWithHint(
        absl::StrCat("--cgroup ", path.string(), " is not a cgroup v2 directory",
                     fd.valid() ? "" : absl::StrCat(" (", strerror(errno), ")")),
        "give a directory under /sys/fs/cgroup, e.g. mkdir /sys/fs/cgroup/canary and move the "
        "workload's pid into its cgroup.procs");
  return fd;
}

// What the policy decided for each constant, for the summary at exit: text and JSON.
void DescribeDecisions(const std::vector<artifact::ConstEntry>& consts,
                       const std::vector<Decision>& all, bool shadow, std::string* human,
                       json* out) {
  for (const auto& e : consts) {
    const int64_t def = e.c.values.empty() ? 0 : e.c.values[0];
    const DecisionSummary s = Summarize(all, e.c.id, def);
    json j{{"total", s.total}, {"differ", s.differ}, {"outside", s.outside}, {"default", def}};
    std::vector<std::string> parts;
    for (const auto& [kind, values] : s.by_kind) {
      json& k = j["values"][DecisionKindName(kind)];
      for (const auto& [v, n] : values) {
        k[absl::StrCat(v)] = n;
        if (kind != SIE_DECISION_OUTSIDE)
          parts.push_back(absl::StrCat(v, v == def ? " (default)" : "", " x", n));
      }
    }
    (*out)[e.c.name] = j;
    const uint64_t decided = s.total - s.outside;
    absl::StrAppend(human, "\n  ", e.c.name, ": ", decided, " decision(s)",
                    parts.empty() ? "" : absl::StrCat(": ", absl::StrJoin(parts, ", ")));
    if (decided)
      absl::StrAppendFormat(human, "; %s %d of %d (%.1f %%)",
                            shadow ? "would have changed" : "changed", s.differ, decided,
                            100.0 * s.differ / decided);
    if (s.outside) absl::StrAppend(human, "; ", s.outside, " hit(s) outside the canary cgroup");
  }
}

// Everything one run holds; Teardown() undoes it in reverse (also on every error path).
class Session {
 public:
  Session(const RunOptions& o, const std::atomic<bool>& stop) : o_(o), stop_(stop) {}
  ~Session() { (void)Teardown(); }

  absl::Status Start();
  absl::Status Loop();
  absl::Status Teardown();
  // --pin: pins the policy's own links and records what `sie-run --stop` must undo.
  absl::Status Pin();

 private:
  void Say(const json& event, const std::string& human);
  absl::Status CheckFree();
  absl::Status LoadOwn();
  absl::StatusOr<fs::path> LinkStubs();
  absl::Status SetTxn(uint64_t active);
  absl::Status SetCanary();
  uint64_t Flags() const {
    return (o_.shadow ? SIE_RUN_SHADOW : 0) | (o_.cgroup.empty() ? 0 : SIE_RUN_CANARY);
  }
  int HandleLog(const LogRec& r);
  static int OnLog(void* ctx, void* data, size_t size) {
    if (size < sizeof(LogRec)) return 0;
    return static_cast<Session*>(ctx)->HandleLog(*static_cast<const LogRec*>(data));
  }
  json Counters();
  std::vector<Decision> Decisions();

  const RunOptions& o_;
  const std::atomic<bool>& stop_;
  std::vector<artifact::ConstEntry> consts_;
  std::optional<TempDir> work_;
  fs::path policy_obj_;
  std::vector<KnobSetting> settings_;  // --set, checked against the policy's BTF
  ObjPtr own_;
  std::vector<LinkPtr> own_links_;
  std::set<std::string> stub_progs_;  // the constants' programs in own_ (the loader's to attach)
  std::vector<std::string> shared_pins_;  // pins this run created
  std::vector<std::string> loaded_;       // constants attached through the loader
  std::unique_ptr<ring_buffer, RbDeleter> rb_;
  int txn_fd_ = -1;
  loader::SharedInstance shared_;  // mode 2: the one sie_consistency instance of all constants
  bool switched_ = false;          // mode 2: shared_ switched forward
  bool committed_ = false, torn_down_ = false, pinned_ = false, policy_error_ = false;
  Timings t_;
};

void Session::Say(const json& event, const std::string& human) {
  if (o_.json)
    std::printf("%s\n", event.dump().c_str());
  else if (!human.empty())
    std::printf("%s\n", human.c_str());
  std::fflush(stdout);
}

// Pins left by a --pin run or a killed sie-run would be silently reused by libbpf: refuse.
absl::Status Session::CheckFree() {
  std::vector<std::string> busy;
  bpf_map* m;
  bpf_object__for_each_map(m, own_.get()) {
    if (IsInternalMap(m) || !bpf_map__pin_path(m)) continue;
    if (fs::exists(bpf_map__pin_path(m))) busy.push_back(bpf_map__pin_path(m));
  }
  for (const SharedSection& sh : kSharedSections)
    if (fs::exists(sh.pin)) busy.push_back(sh.pin);
  if (!busy.empty())
    return FailedWithHint(absl::StrCat("another policy holds ", absl::StrJoin(busy, ", "),
                                       " (a run with --pin, or a killed sie-run)"),
                          absl::StrCat("stop it first: sie-run --stop (or: sie unload --all; rm ",
                                       absl::StrJoin(busy, " "), ")"));
  return absl::OkStatus();
}

// The policy file's one object: the stub of every constant (its names suffixed, StubSuffix)
// linked with the policy, so the decisions, globals, maps and the policy's own programs
// (kretprobes...) exist once. Maps marked __sie_shared are pinned by name (sie hint, bpftool).
absl::Status Session::LoadOwn() {
  auto linked = LinkStubs();
  if (!linked.ok()) return linked.status();
  loader::RouteLibbpfLog();
  loader::ClearLibbpfLog();
  own_.reset(bpf_object__open_file(linked->c_str(), nullptr));
  if (!own_)
    return absl::InternalError(absl::StrCat("opening ", linked->string(), ": ", strerror(errno),
                                            "\n", loader::LibbpfLogText()));
  if (auto st = CheckFree(); !st.ok()) return st;
  if (auto st = PrepareKnobs(own_.get(), settings_, true); !st.ok()) return st;
  for (const auto& e : consts_)
    if (auto st = loader::PrepareStub(own_.get(), stubgen::StubSuffix(e.c.id), o_.mode); !st.ok())
      return st;
  // A .text function nothing calls (a decision of a constant not given) is no program.
  bpf_program* p;
  bpf_object__for_each_program(p, own_.get()) {
    if (std::string(bpf_program__section_name(p)) == ".text") bpf_program__set_autoload(p, false);
  }
  std::vector<std::string> notes;  // the stubs' kfuncs must exist before the object loads
  if (auto st = loader::LoadStubModules(o_.mode, &notes); !st.ok()) return st;
  for (const auto& n : notes) Say({{"event", "note"}, {"note", n}}, "sie-run: " + n);
  RETURN_IF_ERROR(KernelStep("load the policy"));
  if (bpf_object__load(own_.get()) != 0) {
    // Explain with a second, unpinned load that keeps each program's log.
    own_.reset();
    std::string raw;
    absl::Status st = VerifyObject(*linked, o_.source, &raw);
    if (o_.verbose) std::fprintf(stderr, "%s\n", raw.c_str());
    return st.ok() ? absl::InternalError("loading the policy failed:\n" + loader::LibbpfLogText())
                   : st;
  }
  bpf_map* m;
  bpf_object__for_each_map(m, own_.get()) {
    if (bpf_map__is_pinned(m)) shared_pins_.push_back(bpf_map__pin_path(m));
  }
  bpf_map* txn = bpf_object__find_map_by_name(own_.get(), kTxnMap);
  bpf_map* log = bpf_object__find_map_by_name(own_.get(), kLogMap);
  if (!txn || !log)
    return InvalidWithHint("the policy does not include the SDK",
                           "#include <sie/policy.bpf.h> and write SIE_POLICY(...)");
  txn_fd_ = bpf_map__fd(txn);
  if (auto st = SetTxn(0); !st.ok()) return st;
  if (auto st = SetCanary(); !st.ok()) return st;
  rb_.reset(ring_buffer__new(bpf_map__fd(log), &Session::OnLog, this, nullptr));
  if (!rb_) return absl::InternalError("ring_buffer__new failed");
  return absl::OkStatus();
}

absl::StatusOr<fs::path> Session::LinkStubs() {
  const auto t = Clock::now();
  fs::path out = work_->path() / "linked.bpf.o";
  CacheOptions cache;  // the stubs object, like the policy's: ahead from the host, or ours
  if (o_.use_cache) {
    cache.lookup = PolicyCacheDirs(o_.consts_dir);
    cache.store = cache.lookup.back();
  }
  if (auto st = LinkPolicyObject(consts_, policy_obj_, out, "", &stub_progs_,
                                 o_.use_cache ? &cache : nullptr);
      !st.ok())
    return st;
  t_.link_ms = MsSince(t);
  return out;
}

absl::Status Session::SetTxn(uint64_t active) {
  uint32_t k = 0;
  TxnVal v{};
  bpf_map_lookup_elem(txn_fd_, &k, &v);
  v.active = active;
  v.flags = Flags();
  if (bpf_map_update_elem(txn_fd_, &k, &v, BPF_ANY) != 0)
    return absl::InternalError(absl::StrCat("updating ", kTxnMap, ": ", strerror(errno)));
  return absl::OkStatus();
}

// --cgroup: the canary's directory into sie_run_cgroup[0] (the kernel keeps its own reference).
absl::Status Session::SetCanary() {
  if (o_.cgroup.empty()) return absl::OkStatus();
  bpf_map* m = bpf_object__find_map_by_name(own_.get(), kCgroupMap);
  if (!m)
    return FailedWithHint(absl::StrCat("the policy has no ", kCgroupMap, " map"),
                          "rebuild it against this sie's SDK (sdk/include/sie/policy.bpf.h)");
  auto cg = OpenCgroup(o_.cgroup);
  if (!cg.ok()) return cg.status();
  uint32_t k = 0, fd = static_cast<uint32_t>(cg->get());
  if (bpf_map_update_elem(bpf_map__fd(m), &k, &fd, BPF_ANY) != 0)
    return absl::InternalError(absl::StrCat("updating ", kCgroupMap, ": ", strerror(errno)));
  return absl::OkStatus();
}

int Session::HandleLog(const LogRec& r) {
  std::string msg(r.msg, strnlen(r.msg, sizeof(r.msg)));
  const bool error = r.level == 1;
  policy_error_ |= error;
  Say({{"event", "log"},
       {"level", error ? "error" : "info"},
       {"tid", r.tid},
       {"ts_ns", r.ts_ns},
       {"msg", msg}},
      absl::StrCat(error ? "policy error: " : "policy: ", msg));
  return 0;
}

json Session::Counters() {
  json c = json::object();
  if (!own_) return c;
  bpf_map* m = bpf_object__find_map_by_name(own_.get(), kCounterMap);
  if (!m) return c;
  int fd = bpf_map__fd(m);
  char key[kCounterName] = {}, next[kCounterName];
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next) == 0) {
    uint64_t v = 0;
    if (bpf_map_lookup_elem(fd, next, &v) == 0)
      c[std::string(next, strnlen(next, kCounterName))] = v;
    memcpy(key, next, kCounterName);
    prev = key;
  }
  return c;
}

std::vector<Decision> Session::Decisions() {
  bpf_map* m = own_ ? bpf_object__find_map_by_name(own_.get(), kDecisionsMap) : nullptr;
  if (!m) return {};
  auto d = ReadDecisions(bpf_map__fd(m));
  return d.ok() ? std::move(*d) : std::vector<Decision>{};
}

absl::Status Session::Start() {
  const auto t0 = Clock::now();
  auto consts = ResolveConsts(o_.consts_dir, o_.consts);
  if (!consts.ok()) return consts.status();
  consts_ = std::move(*consts);
  if (geteuid() != 0)
    return FailedWithHint("sie-run attaches to the running kernel and needs root",
                          "run it as root (or in the guest: sie vm -- sie-run ...)");
  if (!o_.cgroup.empty())  // checked before anything is loaded
    if (auto cg = OpenCgroup(o_.cgroup); !cg.ok()) return cg.status();
  // A constant already loaded (sie set, another policy) would only get a new value.
  if (auto st = loader::Status(); st.ok())
    for (const auto& lc : *st)
      for (const auto& e : consts_)
        if (absl::EqualsIgnoreCase(lc.state.value("name", ""), e.c.name))
          return FailedWithHint(absl::StrCat(e.c.name,
                                             " is already loaded (by sie set or "
                                             "another policy)"),
                                absl::StrCat("a constant belongs to one policy at a time: "
                                             "sie unload ",
                                             e.c.name));
  auto work = TempDir::Create(stubgen::CacheDir(), ".run-");
  if (!work.ok()) return work.status();
  work_.emplace(std::move(*work));
  policy_obj_ = work_->path() / "policy.bpf.o";

  // --- compile ---
  auto tc = Clock::now();
  CacheOptions cache;
  if (o_.use_cache) {
    cache.lookup = PolicyCacheDirs(o_.consts_dir);
    cache.store = cache.lookup.back();  // the runtime's own cache (writable as root)
  }
  auto cr = CompilePolicy(Toolchain::FromBuild(), o_.source, consts_, work_->path() / "include",
                          policy_obj_, o_.use_cache ? &cache : nullptr);
  if (!cr.ok()) return cr.status();
  if (!cr->diagnostics.empty()) std::fputs(cr->diagnostics.c_str(), stderr);
  t_.compile_ms = MsSince(tc);
  if (o_.verbose && !cr->cache_note.empty())
    std::fprintf(stderr, "sie-run: %s\n", cr->cache_note.c_str());
  // --set is checked against the policy's BTF before anything is loaded.
  auto settings = ResolveSettings(policy_obj_, o_.sets, o_.source.filename().string());
  if (!settings.ok()) return settings.status();
  settings_ = std::move(*settings);

  // --- the policy's own object: shared maps, own programs ---
  auto tl = Clock::now();
  if (auto st = LoadOwn(); !st.ok()) return st;
  const double own_load_ms = MsSince(tl) - t_.link_ms;  // LoadOwn links first

  // --- mode 2: one instance for all constants, so they switch at one instant ---
  if (o_.mode == 2) {
    std::vector<std::string> notes;
    auto id = loader::NewSharedInstance(&notes);
    if (!id.ok()) return id.status();
    shared_.id = *id;
    for (const auto& n : notes) Say({{"event", "note"}, {"note", n}}, "sie-run: " + n);
  }

  // --- every constant through the runtime, decisions held at the shipped value ---
  for (const auto& e : consts_) {
    loader::SetOptions so;
    so.consts_dir = o_.consts_dir;
    so.name = e.c.name;
    so.value = e.c.values.empty() ? 0 : e.c.values[0];
    so.mode = o_.mode;
    so.timeout_s = o_.reverse_timeout_s;
    so.optimize = o_.optimize;
    so.shared_object = own_.get();
    if (o_.mode == 2) so.shared_instance = &shared_;
    auto r = loader::SetConst(so);
    loader::RouteLibbpfLog();
    if (!r.ok()) return WithContext(r.status(), absl::StrCat("attaching ", e.c.name));
    loaded_.push_back(e.c.name);
    t_.verify_ms += r->verify_ms;  // the live kernel's bytes, per constant
    t_.load_ms += r->load_ms;
    t_.attach_ms += r->attach_ms + r->optimize_ms;
    for (const auto& n : r->notes)
      Say({{"event", "note"}, {"const", e.c.name}, {"note", n}},
          absl::StrCat("sie-run: ", e.c.name, ": ", n));
    if (o_.verbose)
      std::fprintf(stderr,
                   "sie-run: %s: %zu probe(s), verify %.1f ms, maps %.1f ms, attach %.1f ms, "
                   "optimize %.1f ms\n",
                   e.c.name.c_str(), r->probes.size(), r->verify_ms, r->load_ms, r->attach_ms,
                   r->optimize_ms);
  }
  t_.load_ms += own_load_ms;

  // --- the policy's own programs ---
  auto ta = Clock::now();
  bpf_program* p;
  bpf_object__for_each_program(p, own_.get()) {
    if (!bpf_program__autoload(p) || stub_progs_.count(bpf_program__name(p))) continue;
    RETURN_IF_ERROR(KernelStep(absl::StrCat("attach the policy's ", bpf_program__name(p))));
    bpf_link* l = bpf_program__attach(p);
    if (!l)
      return FailedWithHint(
          absl::StrCat("attaching the policy's program '", bpf_program__name(p), "' (SEC \"",
                       bpf_program__section_name(p), "\") failed: ", strerror(errno)),
          "the section must name an attach point, e.g. "
          "SEC(\"kretprobe/blk_attempt_plug_merge\")");
    own_links_.emplace_back(l);
  }
  t_.attach_ms += MsSince(ta);

  // --- commit: one map write switches every constant of the file; in mode 2 their shared
  // gate then opens at an instant with no task inside any of their safe spans ---
  auto tt = Clock::now();
  if (auto st = SetTxn(1); !st.ok()) return st;
  committed_ = true;
  if (o_.mode == 2) {
    if (auto st = loader::SwitchSharedInstance(shared_.id, true, o_.reverse_timeout_s, nullptr);
        !st.ok())
      return st;
    switched_ = true;
  }
  t_.transition_ms = MsSince(tt);
  json timings{{"compile_ms", t_.compile_ms},
               {"compile_cached", cr->cache_hit},
               {"link_ms", t_.link_ms},
               {"verify_ms", t_.verify_ms},
               {"load_ms", t_.load_ms},
               {"attach_ms", t_.attach_ms},
               {"transition_ms", t_.transition_ms},
               {"total_ms", MsSince(t0)}};
  std::vector<std::string> names;
  for (const auto& e : consts_) names.push_back(e.c.name);
  std::string how;
  if (o_.shadow) how = "; shadow: decisions are counted, the defaults apply";
  if (!o_.cgroup.empty())
    absl::StrAppend(&how, "; canary: only tasks in ", o_.cgroup.string(), " are decided");
  Say({{"event", "active"},
       {"policy", o_.source.string()},
       {"consts", names},
       {"mode", o_.mode},
       {"shadow", o_.shadow},
       {"cgroup", o_.cgroup.string()},
       {"timings", timings}},
      absl::StrCat("sie-run: ", o_.source.filename().string(), " active on ",
                   absl::StrJoin(names, ", "), " (mode ", o_.mode, ")", how,
                   o_.pin ? "" : "; Ctrl-C restores the defaults"));
  if (o_.verbose)
    std::fprintf(stderr,
                 "sie-run: timings: compile %.1f ms%s, link %.1f ms, verify %.1f ms, load %.1f ms, "
                 "attach %.1f ms, transition %.3f ms, total %.1f ms\n",
                 t_.compile_ms, cr->cache_hit ? " (cached)" : "", t_.link_ms, t_.verify_ms,
                 t_.load_ms, t_.attach_ms, t_.transition_ms, MsSince(t0));
  return absl::OkStatus();
}

absl::Status Session::Loop() {
  const auto t0 = Clock::now();
  while (!stop_.load() && !policy_error_) {
    if (o_.duration_s > 0 && MsSince(t0) >= o_.duration_s * 1000) break;
    int n = ring_buffer__poll(rb_.get(), 100);
    if (n < 0 && n != -EINTR)
      return absl::InternalError(absl::StrCat("polling the policy's log: ", strerror(-n)));
  }
  ring_buffer__consume(rb_.get());
  if (policy_error_)
    return FailedWithHint("the policy reported an error (sie_error); its defaults are restored",
                          "see the 'policy error:' line above");
  return absl::OkStatus();
}

absl::Status Session::Teardown() {
  if (torn_down_ || pinned_) return absl::OkStatus();
  torn_down_ = true;
  absl::Status first = absl::OkStatus();
  auto tr = Clock::now();
  // Reverse transition of the whole file first: every constant back to its default at once
  // (mode 2: when no task is inside any of their safe spans).
  if (switched_)
    if (auto st = loader::SwitchSharedInstance(shared_.id, false, o_.reverse_timeout_s, nullptr);
        !st.ok())
      first = st;
  if (txn_fd_ >= 0) (void)SetTxn(0);
  for (auto it = loaded_.rbegin(); it != loaded_.rend(); ++it)
    if (auto st = loader::Unload(*it, false, o_.reverse_timeout_s); !st.ok() && first.ok())
      first = st;
  loader::RemoveSharedInstance(shared_.id);
  own_links_.clear();
  t_.reverse_ms = MsSince(tr);
  if (rb_) ring_buffer__consume(rb_.get());
  json counters = Counters();
  const std::vector<Decision> decisions = Decisions();
  uint64_t dropped = 0, dec_dropped = 0;
  if (txn_fd_ >= 0) {
    uint32_t k = 0;
    TxnVal v{};
    if (bpf_map_lookup_elem(txn_fd_, &k, &v) == 0) {
      dropped = v.log_dropped;
      dec_dropped = v.decisions_dropped;
    }
  }
  rb_.reset();
  own_.reset();
  for (const auto& p : shared_pins_) unlink(p.c_str());
  if (committed_) {
    std::string human =
        absl::StrFormat("sie-run: stopped; defaults restored in %.1f ms", t_.reverse_ms);
    json dec = json::object();
    DescribeDecisions(consts_, decisions, o_.shadow, &human, &dec);
    for (auto& [k, v] : counters.items()) absl::StrAppend(&human, "\n  ", k, ": ", v.dump());
    if (dropped) absl::StrAppend(&human, "\n  log lines dropped: ", dropped);
    if (dec_dropped) absl::StrAppend(&human, "\n  decisions not counted (map full): ", dec_dropped);
    Say({{"event", "stopped"},
         {"reverse_ms", t_.reverse_ms},
         {"shadow", o_.shadow},
         {"decisions", dec},
         {"decisions_dropped", dec_dropped},
         {"counters", counters},
         {"log_dropped", dropped}},
        human);
  }
  return first;
}

absl::Status Session::Pin() {
  json links = json::array();
  for (auto& l : own_links_) {
    std::string path = absl::StrCat(kPinRoot, "/sie_run_link_", links.size());
    RETURN_IF_ERROR(KernelStep(absl::StrCat("pin ", path)));
    if (int err = bpf_link__pin(l.get(), path.c_str()); err)
      return absl::InternalError(absl::StrCat("pinning ", path, ": ", strerror(-err)));
    links.push_back(path);
  }
  // The file's content hash and the --set values let `sie apply` tell whether a desired policy
  // is the one running.
  auto text = ReadFile(o_.source);
  std::vector<std::string> sets = o_.sets;
  std::sort(sets.begin(), sets.end());
  json state{{"policy", fs::absolute(o_.source).string()},
             {"policy_hash", text.ok() ? ContentHash(*text) : ""},
             {"consts", loaded_},
             {"consts_dir", fs::absolute(o_.consts_dir).string()},
             {"sets", sets},
             {"shadow", o_.shadow},
             {"cgroup", o_.cgroup.empty() ? "" : fs::absolute(o_.cgroup).string()},
             {"map_pins", shared_pins_},
             {"link_pins", links},
             {"instance", shared_.id},
             {"mode", o_.mode}};
  if (auto st = WriteFileAtomic(StatePath(), state.dump(2) + "\n", 0600); !st.ok()) return st;
  pinned_ = true;
  return absl::OkStatus();
}

}  // namespace

absl::Status LinkPolicyObject(const std::vector<artifact::ConstEntry>& consts,
                              const fs::path& policy_obj, const fs::path& out,
                              const std::string& stub_cflags, std::set<std::string>* stub_programs,
                              const CacheOptions* cache) {
  auto stubs = cache ? stubgen::BuildStubs(consts, stub_cflags, cache->lookup, cache->store)
                     : stubgen::BuildStubs(consts, stub_cflags);
  if (!stubs.ok()) return stubs.status();
  if (stub_programs) {
    ObjPtr o(bpf_object__open_file(stubs->object.c_str(), nullptr));
    if (!o) return absl::InternalError(absl::StrCat("opening ", stubs->object.string()));
    bpf_program* p;
    bpf_object__for_each_program(p, o.get()) stub_programs->insert(bpf_program__name(p));
  }
  return stubgen::LinkObjects({stubs->object, policy_obj}, out);
}

fs::path StatePath() { return loader::RunDir() / "sie-run.json"; }

absl::Status StopPinned(double reverse_timeout_s) {
  auto text = ReadFile(StatePath());
  if (!text.ok())
    return ErrorWithHint(
        absl::StatusCode::kNotFound,
        absl::StrCat("no policy is pinned (", StatePath().string(), " does not exist)"),
        "see 'sie status'");
  json s = json::parse(*text, nullptr, false);
  if (s.is_discarded()) return absl::DataLossError(StatePath().string() + " is corrupt");
  // Defaults first, for every constant at once (mode 2: their shared gate closes at an instant
  // with no task inside their spans; if that does not happen in time everything stays); then
  // detach.
  if (const int id = s.value("instance", -1); id >= 0)
    if (auto st = loader::SwitchSharedInstance(id, false, reverse_timeout_s, nullptr); !st.ok())
      return st;
  int fd = bpf_obj_get(absl::StrCat(kPinRoot, "/", kTxnMap).c_str());
  if (fd >= 0) {
    uint32_t k = 0;
    TxnVal v{};
    bpf_map_lookup_elem(fd, &k, &v);
    v.active = 0;
    bpf_map_update_elem(fd, &k, &v, BPF_ANY);
    close(fd);
  }
  absl::Status first = absl::OkStatus();
  for (const auto& c : s.value("consts", json::array()))
    if (auto st = loader::Unload(c.get<std::string>(), false, reverse_timeout_s);
        !st.ok() && first.ok())
      first = st;
  for (const char* key : {"link_pins", "map_pins"})
    for (const auto& p : s.value(key, json::array())) unlink(p.get<std::string>().c_str());
  std::error_code ec;
  fs::remove(StatePath(), ec);
  std::printf("sie-run: stopped %s; defaults restored\n", s.value("policy", "").c_str());
  return first;
}

absl::Status CompileOnly(const RunOptions& opts) {
  auto consts = ResolveConsts(opts.consts_dir, opts.consts);
  if (!consts.ok()) return consts.status();
  // Only the folder a later run reads counts as a hit: an entry in this machine's own runtime
  // cache would not reach the guest.
  CacheOptions cache;
  cache.store = PolicyCacheDirs(opts.consts_dir).front();
  cache.lookup = {cache.store};
  std::error_code ec;
  fs::create_directories(cache.store, ec);
  auto work = TempDir::Create(ec ? fs::temp_directory_path() : cache.store, ".compile-");
  if (!work.ok()) return work.status();
  const auto t0 = Clock::now();
  auto cr = CompilePolicy(Toolchain::FromBuild(), opts.source, *consts, work->path() / "include",
                          work->path() / "policy.bpf.o", &cache);
  if (!cr.ok()) return cr.status();
  if (!cr->diagnostics.empty()) std::fputs(cr->diagnostics.c_str(), stderr);
  if (!cr->cache_hit && !absl::StrContains(cr->cache_note, "cached as"))
    return FailedWithHint(absl::StrCat("compiled ", opts.source.string(), " but ", cr->cache_note),
                          "set SIE_POLICY_CACHE to a writable folder the later run can read");
  // The constants' stubs as the run links them (one object), into the same folder.
  auto stubs = stubgen::BuildStubs(*consts, "", cache.lookup, cache.store);
  if (!stubs.ok()) return stubs.status();
  std::printf("sie-run: %s: %s (%.1f ms)\n", opts.source.filename().string().c_str(),
              cr->cache_hit && !stubs->compiled_now ? "already in the policy cache"
                                                    : "compiled into the policy cache",
              MsSince(t0));
  if (opts.verbose) std::printf("sie-run: %s\n", cr->cache_note.c_str());
  return absl::OkStatus();
}

absl::Status RunPolicy(const RunOptions& opts, const std::atomic<bool>& stop) {
  Session s(opts, stop);
  if (auto st = s.Start(); !st.ok()) {
    (void)s.Teardown();
    return st;
  }
  if (opts.pin) {
    if (auto st = s.Pin(); !st.ok()) {
      (void)s.Teardown();
      return st;
    }
    std::printf("sie-run: left loaded (--pin); stop it with: sie-run --stop\n");
    return absl::OkStatus();
  }
  absl::Status st = s.Loop();
  absl::Status td = s.Teardown();
  return st.ok() ? td : st;
}

}  // namespace sie::policy
