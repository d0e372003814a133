#include "synth/variants/builder.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/base/process.h"
#include "synth/progress.h"
#include "synth/refusal.h"
#include "synth/variants/edit.h"
#include "synth/variants/object_cache.h"

namespace sie::synth {
namespace fs = std::filesystem;
namespace {

// Marks the compile error of a check value (CompileFailed), which fails no tunable (Fail).
constexpr char kCheckValueNote[] =
    " is a check value inside the spec's range, built to test the formulas";

constexpr auto kCompileTimeout = std::chrono::minutes(10);

std::string Tail(const std::string& s, size_t n = 6000) {
  return s.size() > n ? absl::StrCat("...", s.substr(s.size() - n)) : s;
}

std::string ShellQuote(const std::string& s) { return ShellJoin({s}); }

absl::Status CopyFile(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("copying ", from.string(), " to ", to.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// Copies a directory tree except `exclude` paths, .git, and (for modules) build products, so a
// copy never inherits stale objects whose commands name the original directory.
absl::Status CopyTree(const fs::path& from, const fs::path& to,
                      const std::vector<fs::path>& exclude, bool skip_build_products) {
  std::error_code ec;
  fs::create_directories(to, ec);
  for (auto it = fs::recursive_directory_iterator(from, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    bool skip = name == ".git";
    for (const auto& x : exclude) skip |= fs::equivalent(p, x, ec) && !ec;
    ec.clear();
    if (skip_build_products && !it->is_directory()) {
      for (absl::string_view ext : {".o", ".ko", ".mod", ".mod.c", ".cmd", ".symvers", ".order"})
        skip |= absl::EndsWith(name, ext);
    }
    if (skip) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    fs::path dst = to / fs::relative(p, from);
    if (it->is_symlink()) {
      fs::copy_symlink(p, dst, ec);
    } else if (it->is_directory()) {
      fs::create_directories(dst, ec);
    } else if (it->is_regular_file()) {
      fs::copy_file(p, dst, fs::copy_options::overwrite_existing, ec);
    }
    if (ec) return absl::InternalError(absl::StrCat("copying ", p.string(), ": ", ec.message()));
  }
  if (ec) return absl::InternalError(absl::StrCat("copying ", from.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// One compile of one variant of one object (kernel, generic) or of one variant of the module.
struct Job {
  size_t tunable = 0;  // index into tunables
  size_t object = 0;   // index into objects[tunable] (kModule: all objects at once)
  int variant = 0;     // index into the tunable's values (0..kMaxBuilds-1)
};

const KernelConfig* Config(const BuildContext& ctx) { return ctx.config ? &*ctx.config : nullptr; }

std::string VariantLabel(const TunableSpec& t, int v) {
  return absl::StrCat("V", v + 1, "=", t.values[v]);
}

}  // namespace

fs::path BuildRoot(const BuildContext& ctx) {
  return ctx.kind == TargetKind::kKernel ? ctx.tree->root() : ctx.source_root;
}

std::string KbuildSource(const std::string& savedcmd) {
  std::string src;
  for (absl::string_view tok : absl::StrSplit(savedcmd, ' ', absl::SkipWhitespace()))
    if (absl::EndsWith(tok, ".c") || absl::EndsWith(tok, ".S")) src = std::string(tok);
  return src;
}

absl::StatusOr<std::string> RewriteKbuildCommand(const std::string& savedcmd, const fs::path& tree,
                                                 const fs::path& overlay, const fs::path& out,
                                                 std::string* source_rel, bool debug_info) {
  std::vector<std::string> toks = absl::StrSplit(savedcmd, ' ', absl::SkipWhitespace());
  std::string src = KbuildSource(savedcmd);
  if (src.empty() || toks.empty())
    return absl::InvalidArgumentError(absl::StrCat("no source file in kbuild command: ", savedcmd));
  fs::path src_rel = fs::path(src).lexically_normal();
  *source_rel = src_rel.string();
  std::vector<std::string> res;
  bool saw_o = false;
  for (size_t i = 0; i < toks.size(); ++i) {
    const std::string& t = toks[i];
    // The dep file would land next to the tree's object: drop it.
    if (absl::StartsWith(t, "-Wp,-MMD") || absl::StartsWith(t, "-Wp,-MD")) continue;
    if (t == "-o" && i + 1 < toks.size()) {
      res.push_back("-o");
      res.push_back(out.string());
      ++i;
      saw_o = true;
      continue;
    }
    if (t == src) {
      res.push_back((overlay / src_rel).string());
      continue;
    }
    if (absl::StartsWith(t, "-I")) {
      std::string dir = t.size() > 2 ? t.substr(2) : (i + 1 < toks.size() ? toks[i + 1] : "");
      fs::path rel = fs::path(dir).lexically_normal();
      if (rel.is_relative() && fs::is_directory(overlay / rel))
        res.push_back(absl::StrCat("-I", (overlay / rel).string()));
    }
    if (t == "-c") {
      // Quoted includes of the copied .c look next to the copy first, then in the original
      // directory; the prefix map keeps __FILE__ and DWARF names as in the tree's own build.
      res.push_back("-iquote");
      res.push_back((tree / src_rel.parent_path()).string());
      res.push_back(absl::StrCat("-ffile-prefix-map=", overlay.string(), "/="));
      if (!debug_info) res.push_back("-g0");  // after the kernel's -g: the last one wins
    }
    res.push_back(t);
  }
  if (!saw_o) return absl::InvalidArgumentError("kbuild command has no -o");
  return absl::StrJoin(res, " ");
}

absl::StatusOr<std::vector<std::string>> CheckEdit(const BuildContext& ctx, const Spec& spec,
                                                   const TunableSpec& t) {
  std::vector<std::string> warnings;
  fs::path file = BuildRoot(ctx) / t.file;
  auto text = ReadFile(file);
  if (!text.ok())
    return InvalidWithHint(absl::StrCat(spec.Where(t.file_line), ": 'file' ", t.file,
                                        " not found in ", BuildRoot(ctx).string()),
                           "write the path relative to the source tree");
  std::string where = absl::StrCat(spec.Where(t.line), ": ", t.name);
  for (int v = 0; v < 3; ++v) {
    auto edited = ApplyTunableEdit(*text, t, t.values[v], file.string(), Config(ctx));
    if (!edited.ok()) return Classified(WithContext(edited.status(), where), Refusal::kSpec);
  }
  if (!t.macro.empty()) {
    auto value_text = MacroValueText(*text, t.macro, file.string(), Config(ctx));
    if (!value_text.ok())
      warnings.push_back(absl::StrCat(value_text.status().message(),
                                      "; V1 is assumed to be the value the kernel compiles (the "
                                      "V1 build is compared with the shipped binary)"));
    if (value_text.ok()) {
      auto v = MacroLiteralValue(*value_text);
      if (v.ok() && *v != t.values[0])
        return InvalidWithHint(
            absl::StrCat(where, ": values[0] is ", t.values[0], " but ", t.file, " defines ",
                         t.macro, " as ", *value_text),
            absl::StrCat("the first value must be the shipped one: write values: [", *v, ", ...]"));
      if (!v.ok())
        warnings.push_back(absl::StrCat(t.macro, " is defined as '", *value_text,
                                        "', not a plain number: it is replaced by (V) and V1 "
                                        "is assumed to be its value"));
    }
  } else {
    std::string v1 = absl::StrReplaceAll(t.replace, {{"{V}", absl::StrCat(t.values[0])}});
    if (v1 != t.match)
      warnings.push_back(absl::StrCat("'replace' with V1=", t.values[0], " gives \"", v1,
                                      "\", not the shipped text \"", t.match,
                                      "\": is V1 the shipped value?"));
  }
  return warnings;
}

namespace {

class VariantBuilder {
 public:
  VariantBuilder(const BuildContext& ctx, const std::vector<const TunableSpec*>& tunables,
                 const std::vector<std::vector<std::string>>& objects)
      : ctx_(ctx), tunables_(tunables), objects_(objects) {}

  // Every tunable's variants; a tunable whose builds failed carries the first error in
  // `status` and the others are still built.
  std::vector<TunableVariants> Run() {
    result_.resize(tunables_.size());
    std::vector<Job> jobs = AllJobs();
    std::vector<std::pair<Job, size_t>> aliases = ShareIdenticalBuilds(&jobs);
    if (!aliases.empty())
      ctx_.progress(absl::StrCat("  ", jobs.size(), " build(s): ", aliases.size(),
                                 " have the same source as another and are shared"));
    if (ctx_.kind == TargetKind::kKernel) SavedCommands();
    std::vector<absl::Status> status = RunJobs(jobs);
    for (size_t i = 0; i < jobs.size(); ++i) Fail(jobs[i], status[i]);
    for (const auto& [dup, prim] : aliases) {
      if (!status[prim].ok()) {
        Fail(dup, status[prim]);
        continue;
      }
      const Job& p = jobs[prim];
      if (ctx_.kind != TargetKind::kModule) {
        result_[dup.tunable].objects[dup.object].variant[dup.variant] =
            result_[p.tunable].objects[p.object].variant[p.variant];
        continue;
      }
      // The primary's module copy holds every object of the module, this tunable's too.
      Fail(dup.tunable, ModuleResult(dup, VariantDir(p) / "module"));
    }
    return std::move(result_);
  }

 private:
  std::vector<Job> AllJobs() {
    std::vector<Job> jobs;
    for (size_t t = 0; t < tunables_.size(); ++t) {
      result_[t].tunable = tunables_[t];
      for (const auto& o : objects_[t]) result_[t].objects.push_back({o, {}});
      size_t per_variant = ctx_.kind == TargetKind::kModule ? 1 : objects_[t].size();
      for (size_t o = 0; o < per_variant; ++o)
        for (size_t v = 0; v < std::min(tunables_[t]->values.size(), kMaxBuilds); ++v)
          jobs.push_back({t, o, static_cast<int>(v)});
    }
    return jobs;
  }

  // Builds whose sources come out identical are done once: V1 is the shipped source for
  // every tunable, so tunables sharing an object (kernel, generic) or a module share its V1
  // build. A module job builds the whole module, so its key is the module's edited source.
  // Leaves the unique jobs in `jobs`; returns (duplicate, index of its primary in `jobs`).
  std::vector<std::pair<Job, size_t>> ShareIdenticalBuilds(std::vector<Job>* jobs) {
    std::vector<std::pair<Job, size_t>> aliases;
    std::map<std::string, size_t> primary;
    std::vector<Job> unique;
    for (const Job& j : *jobs) {
      const TunableSpec& t = *tunables_[j.tunable];
      auto original = ReadFile(BuildRoot(ctx_) / t.file);
      auto edited = EditedText(t, j.variant);
      if (!original.ok() || !edited.ok()) {
        unique.push_back(j);  // the job itself reports the error
        continue;
      }
      std::string key = absl::StrCat(
          ctx_.kind == TargetKind::kModule ? std::string("module") : objects_[j.tunable][j.object],
          "\n",
          *edited == *original ? "pristine" : absl::StrCat(t.file, "\n", ContentHash(*edited)));
      auto [it, inserted] = primary.emplace(key, unique.size());
      if (inserted)
        unique.push_back(j);
      else
        aliases.push_back({j, it->second});
    }
    *jobs = std::move(unique);
    return aliases;
  }

  // kbuild commands first, serially: the first request for an object runs make in the
  // prepared tree, which must not run twice at once. An object without one fails only the
  // tunables that use it (their jobs then find no command).
  void SavedCommands() {
    for (size_t t = 0; t < tunables_.size(); ++t)
      for (const auto& o : objects_[t]) {
        if (savedcmd_.count(o)) continue;
        auto cmd = ctx_.tree->SavedCommand(o, ctx_.progress);
        if (!cmd.ok()) {
          Fail(t,
               Classified(WithContext(cmd.status(), absl::StrCat("object ", o)), Refusal::kSpec));
          continue;
        }
        savedcmd_[o] = *cmd;
      }
  }

  // Runs `jobs` on ctx_.jobs threads; one status per job.
  std::vector<absl::Status> RunJobs(const std::vector<Job>& jobs) {
    std::vector<absl::Status> status(jobs.size());
    std::atomic<size_t> next{0};
    meter_ = std::make_unique<Meter>(jobs.size());
    auto worker = [&] {
      for (size_t i; (i = next.fetch_add(1)) < jobs.size();) {
        status[i] = RunJob(jobs[i]);
        const TunableSpec& t = *tunables_[jobs[i].tunable];
        if (!status[i].ok())
          Log(absl::StrCat("  ", meter_->Tick(), " failed: ", t.name, " ",
                           VariantLabel(t, jobs[i].variant)));
      }
    };
    std::vector<std::thread> threads;
    int n = std::max(1, std::min<int>(ctx_.jobs, static_cast<int>(jobs.size())));
    for (int i = 0; i < n; ++i) threads.emplace_back(worker);
    for (auto& th : threads) th.join();
    return status;
  }

  // Records the first failure of tunable `t` (a build that did not compile by default).
  void Fail(size_t t, const absl::Status& s) {
    if (!s.ok() && result_[t].status.ok()) result_[t].status = Classified(s, Refusal::kBuild);
  }
  // A check value (V4, V5: chosen by sie, not by the spec) the kernel does not compile with
  // (a BUILD_BUG_ON on the constant) leaves its object unbuilt: the analysis checks elsewhere
  // and keeps the range clear of it.
  void Fail(const Job& j, const absl::Status& s) {
    if (s.ok()) return;
    if (j.variant >= 3 && absl::StrContains(s.message(), kCheckValueNote)) {
      Log(absl::StrCat("  ", tunables_[j.tunable]->name, " ",
                       VariantLabel(*tunables_[j.tunable], j.variant),
                       " does not compile: checked at other values"));
      return;
    }
    Fail(j.tunable, s);
  }

  fs::path VariantDir(const Job& j) const {
    return ctx_.work_dir / tunables_[j.tunable]->name / absl::StrCat("v", j.variant + 1);
  }

  void Log(const std::string& s) {
    std::lock_guard<std::mutex> l(log_mu_);
    ctx_.progress(s);
  }

  absl::StatusOr<std::string> EditedText(const TunableSpec& t, int v) {
    fs::path file = BuildRoot(ctx_) / t.file;
    auto text = ReadFile(file);
    if (!text.ok()) return text.status();
    return ApplyTunableEdit(*text, t, t.values[v], file.string(), Config(ctx_));
  }

  absl::Status CompileFailed(const TunableSpec& t, int v, const std::string& what,
                             const RunResult& r, const std::string& cmd) {
    std::string msg = absl::StrCat("compiling ", what, " with ", t.name, " ", VariantLabel(t, v),
                                   " failed (", r.Describe(), "):\n", Tail(r.err + r.out));
    if (ctx_.verbose) absl::StrAppend(&msg, "\ncommand: ", cmd);
    if (v >= 3)  // a check value synth chose inside the range, not one of the spec's
      return FailedWithHint(
          absl::StrCat(msg, "\n(", VariantLabel(t, v), kCheckValueNote, ")"),
          "the code rejects a value of `range:`: narrow the range to the values it accepts");
    return FailedWithHint(msg,
                          "the compiler's message above says why; check the values "
                          "(does the code accept them?) and the edit");
  }

  absl::Status RunJob(const Job& j) {
    switch (ctx_.kind) {
      case TargetKind::kKernel:
        return KernelJob(j);
      case TargetKind::kModule:
        return ModuleJob(j);
      case TargetKind::kGeneric:
        return GenericJob(j);
    }
    return absl::InternalError("bad target kind");
  }

  absl::Status KernelJob(const Job& j) {
    const TunableSpec& t = *tunables_[j.tunable];
    const std::string& object = objects_[j.tunable][j.object];
    const fs::path tree = ctx_.tree->root();
    fs::path vdir = VariantDir(j);
    fs::path overlay = vdir / "overlay" / fs::path(object).stem();
    fs::path raw = vdir / "raw" / object;
    fs::path final_obj = vdir / "obj" / object;
    std::error_code ec;
    fs::create_directories(raw.parent_path(), ec);
    fs::create_directories(final_obj.parent_path(), ec);

    auto saved = savedcmd_.find(object);
    if (saved == savedcmd_.end())  // already reported by SavedCommands()
      return absl::FailedPreconditionError(absl::StrCat("no kbuild command for ", object));
    const std::string& savedcmd = saved->second;
    fs::path src_rel = fs::path(KbuildSource(savedcmd)).lexically_normal();
    // The overlay mirrors the tree: the object's .c and the headers next to it (so quoted
    // includes between siblings see the edited one), then the edited file on top.
    fs::path src_dir = src_rel.parent_path();
    if (auto s = CopyFile(tree / src_rel, overlay / src_rel); !s.ok()) return s;
    for (const auto& e : fs::directory_iterator(tree / src_dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".h")
        if (auto s = CopyFile(e.path(), overlay / src_dir / e.path().filename()); !s.ok()) return s;
    auto edited = EditedText(t, j.variant);
    if (!edited.ok()) return edited.status();
    const std::optional<std::string> cache_key = PristineKey(t, object, savedcmd, *edited);
    if (cache_key && FetchCachedObject(ctx_.object_cache, *cache_key, final_obj)) {
      Log(absl::StrCat("  ", meter_->Tick(), " reused ", object, " ", t.name, " ",
                       VariantLabel(t, j.variant), " (pristine, from the object cache)"));
      result_[j.tunable].objects[j.object].variant[j.variant] = final_obj;
      return absl::OkStatus();
    }
    if (auto s = WriteFileAtomic(overlay / t.file, *edited); !s.ok()) return s;
    std::string src_check;
    auto cmd = RewriteKbuildCommand(savedcmd, tree, overlay, raw, &src_check,
                                    j.variant < ctx_.debug_info_variants);
    if (!cmd.ok()) return WithContext(cmd.status(), object);

    if (ctx_.verbose && j.variant == 0)  // the variants differ only in their paths
      Log(absl::StrCat("  ", object, " compile command: ", *cmd));
    RunOptions ro;
    ro.cwd = tree.string();
    ro.timeout = kCompileTimeout;
    auto r = sie::Run({"sh", "-c", *cmd}, ro);
    if (!r.ok()) return r.status();
    if (!r->ok()) return CompileFailed(t, j.variant, object, *r, *cmd);

    // IBT configs run objtool once on vmlinux.o, turning static-key jumps into NOPs; doing the
    // same on a copy of the object makes it match the shipped code byte for byte.
    if (auto s = CopyFile(raw, final_obj); !s.ok()) return s;
    auto o = sie::Run(
        {ctx_.tree->objtool().string(), "--hacks=jump_label", "--link", final_obj.string()}, ro);
    if (!o.ok()) return o.status();
    if (!o->ok())
      return FailedWithHint(absl::StrCat("objtool failed on ", final_obj.string(), " (",
                                         o->Describe(), "):\n", Tail(o->err)),
                            "the prepared tree's tools/objtool/objtool must work on this host");
    if (cache_key)
      if (auto s = StoreCachedObject(ctx_.object_cache, *cache_key, final_obj); !s.ok())
        Log(absl::StrCat("  warning: ", s.message()));
    Log(absl::StrCat("  ", meter_->Tick(), " built ", object, " ", t.name, " ",
                     VariantLabel(t, j.variant), " (", r->elapsed.count(), " ms)"));
    result_[j.tunable].objects[j.object].variant[j.variant] = final_obj;
    return absl::OkStatus();
  }

  // The object cache's key when this build is of the pristine source (the file unedited);
  // none without a cache or when the key cannot be computed (then it is simply compiled).
  std::optional<std::string> PristineKey(const TunableSpec& t, const std::string& object,
                                         const std::string& savedcmd, const std::string& edited) {
    if (ctx_.object_cache.empty()) return std::nullopt;
    auto original = ReadFile(BuildRoot(ctx_) / t.file);
    if (!original.ok() || *original != edited) return std::nullopt;
    auto key = PristineObjectKey(ctx_.tree->root(), object, savedcmd, ctx_.tree->objtool());
    if (!key.ok()) return std::nullopt;
    return *key;
  }

  absl::Status GenericJob(const Job& j) {
    const TunableSpec& t = *tunables_[j.tunable];
    const std::string& object = objects_[j.tunable][j.object];
    fs::path vdir = VariantDir(j);
    fs::path copy = vdir / absl::StrCat("src-", j.object);
    fs::path out = vdir / "obj" / object;
    std::error_code ec;
    fs::remove_all(copy, ec);
    if (auto s = CopyTree(ctx_.source_root, copy, ctx_.exclude, false); !s.ok()) return s;
    fs::create_directories(out.parent_path(), ec);
    auto edited = EditedText(t, j.variant);
    if (!edited.ok()) return edited.status();
    if (auto s = WriteFileAtomic(copy / t.file, *edited); !s.ok()) return s;
    std::string src = fs::path(object).replace_extension(".c").string();
    if (!fs::exists(copy / src))
      return InvalidWithHint(absl::StrCat("object ", object, ": its source ", src,
                                          " does not exist in ", ctx_.source_root.string()),
                             "list objects whose .c has the same name, e.g. foo.o for foo.c");
    std::string cmd = absl::StrReplaceAll(
        ctx_.build_command, {{"{src}", ShellQuote(src)}, {"{obj}", ShellQuote(out.string())}});
    if (ctx_.verbose) Log(absl::StrCat("  ", t.name, " ", VariantLabel(t, j.variant), ": ", cmd));
    RunOptions ro;
    ro.cwd = copy.string();
    ro.timeout = kCompileTimeout;
    auto r = sie::Run({"sh", "-c", cmd}, ro);
    if (!r.ok()) return r.status();
    if (!r->ok()) return CompileFailed(t, j.variant, object, *r, cmd);
    if (!fs::exists(out))
      return FailedWithHint(absl::StrCat("the build command did not write ", out.string()),
                            "the command must write the object to {obj}");
    Log(absl::StrCat("  ", meter_->Tick(), " built ", object, " ", t.name, " ",
                     VariantLabel(t, j.variant), " (", r->elapsed.count(), " ms)"));
    result_[j.tunable].objects[j.object].variant[j.variant] = out;
    return absl::OkStatus();
  }

  absl::Status ModuleJob(const Job& j) {
    const TunableSpec& t = *tunables_[j.tunable];
    fs::path copy = VariantDir(j) / "module";
    std::error_code ec;
    fs::remove_all(copy, ec);
    if (auto s = CopyTree(ctx_.source_root, copy, ctx_.exclude, true); !s.ok()) return s;
    auto edited = EditedText(t, j.variant);
    if (!edited.ok()) return edited.status();
    if (auto s = WriteFileAtomic(copy / t.file, *edited); !s.ok()) return s;
    if (!fs::exists(copy / "Kbuild") && !fs::exists(copy / "Makefile")) {
      // A bare source directory (the project's kmod/ dirs get their Kbuild from CMake): build
      // the module named after the directory, or after its only .c file.
      std::string name = ctx_.source_root.filename().string();
      if (!fs::exists(copy / (name + ".c"))) {
        std::vector<std::string> cs;
        for (const auto& e : fs::directory_iterator(copy, ec))
          if (e.path().extension() == ".c") cs.push_back(e.path().stem().string());
        if (cs.size() != 1)
          return InvalidWithHint(
              absl::StrCat(ctx_.source_root.string(), " has no Kbuild or Makefile"),
              "add a Kbuild ('obj-m := NAME.o') to the module directory");
        name = cs[0];
      }
      if (auto s = WriteFileAtomic(copy / "Kbuild", absl::StrCat("obj-m := ", name, ".o\n"));
          !s.ok())
        return s;
    }
    // V1 needs the .ko (the binary the spans map onto); the other values only the objects,
    // which kbuild builds alone without modpost, the link and the module's BTF (about half the
    // time of `modules`). When it does not make them (an object kbuild builds only as part of
    // the module), the whole module is built.
    std::vector<std::string> targets = {"modules"};
    if (j.variant != 0) {
      targets.clear();
      for (const auto& o : result_[j.tunable].objects) targets.push_back(o.object);
    }
    auto r = MakeModule(t, j, copy, targets);
    if (r.ok() && j.variant != 0 && !HasObjects(j, copy)) r = MakeModule(t, j, copy, {"modules"});
    if (!r.ok()) return r.status();
    if (auto s = ModuleResult(j, copy); !s.ok()) return s;
    Log(absl::StrCat("  ", meter_->Tick(), " built module ", t.name, " ",
                     VariantLabel(t, j.variant), " (", r->count(), " ms)"));
    return absl::OkStatus();
  }

  // Runs kbuild on the module copy `copy` for `targets`; how long it took.
  absl::StatusOr<std::chrono::milliseconds> MakeModule(const TunableSpec& t, const Job& j,
                                                       const fs::path& copy,
                                                       const std::vector<std::string>& targets) {
    std::vector<std::string> argv = {"make", "-C", ctx_.headers_dir.string(),
                                     absl::StrCat("M=", copy.string()),
                                     absl::StrCat("CC=", ctx_.cc)};
    argv.insert(argv.end(), targets.begin(), targets.end());
    RunOptions ro;
    ro.timeout = kCompileTimeout;
    auto r = sie::Run(argv, ro);
    if (!r.ok()) return r.status();
    if (!r->ok()) return CompileFailed(t, j.variant, "the module", *r, ShellJoin(argv));
    return r->elapsed;
  }

  bool HasObjects(const Job& j, const fs::path& copy) const {
    for (const auto& o : result_.at(j.tunable).objects)
      if (!fs::exists(copy / o.object)) return false;
    return true;
  }

  // Records the objects (and, for V1, the .ko) of job `j` from the module build in `copy`.
  absl::Status ModuleResult(const Job& j, const fs::path& copy) {
    std::error_code ec;
    auto& tv = result_[j.tunable];
    for (size_t o = 0; o < tv.objects.size(); ++o) {
      fs::path p = copy / tv.objects[o].object;
      if (!fs::exists(p))
        return InvalidWithHint(absl::StrCat("the module build made no ", tv.objects[o].object),
                               "list objects relative to the module directory, e.g. "
                               "'objects: [sie_target.o]'");
      tv.objects[o].variant[j.variant] = p;
    }
    if (j.variant == 0) {
      for (const auto& e : fs::directory_iterator(copy, ec))
        if (e.path().extension() == ".ko") {
          tv.module_ko = e.path();
          tv.module_name = e.path().stem().string();
        }
    }
    return absl::OkStatus();
  }

  const BuildContext& ctx_;
  const std::vector<const TunableSpec*>& tunables_;
  const std::vector<std::vector<std::string>>& objects_;
  std::map<std::string, std::string> savedcmd_;
  std::vector<TunableVariants> result_;  // slots written by distinct jobs only
  std::mutex log_mu_;
  std::unique_ptr<Meter> meter_;  // the builds of RunJobs
};

}  // namespace

std::vector<TunableVariants> BuildVariantsEach(
    const BuildContext& ctx, const std::vector<const TunableSpec*>& tunables,
    const std::vector<std::vector<std::string>>& objects) {
  VariantBuilder b(ctx, tunables, objects);
  return b.Run();
}

absl::StatusOr<std::vector<TunableVariants>> BuildVariants(
    const BuildContext& ctx, const std::vector<const TunableSpec*>& tunables,
    const std::vector<std::vector<std::string>>& objects) {
  std::vector<TunableVariants> r = BuildVariantsEach(ctx, tunables, objects);
  for (const auto& tv : r)
    if (!tv.status.ok()) return tv.status;
  return r;
}

absl::StatusOr<fs::path> BuildOtherValue(const BuildContext& ctx, const TunableSpec& t,
                                         const std::string& object, int64_t value) {
  // One build of its own directory (never a V1..V5 one), with `value` as the only value.
  BuildContext one = ctx;
  one.work_dir = ctx.work_dir / "other" / absl::StrCat(t.name, "=", value);
  one.progress = [](const std::string&) {};
  one.debug_info_variants = 0;  // never V1: only diffed
  TunableSpec tv = t;
  tv.values = {value};
  std::vector<TunableVariants> r = BuildVariantsEach(one, {&tv}, {{object}});
  if (!r[0].status.ok()) return r[0].status;
  if (r[0].objects.empty() || r[0].objects[0].variant[0].empty())
    return absl::NotFoundError(absl::StrCat(object, " was not built with ", t.name, "=", value));
  return r[0].objects[0].variant[0];
}

}  // namespace sie::synth
