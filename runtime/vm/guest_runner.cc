#include "runtime/vm/guest_runner.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "runtime/vm/initramfs.h"

namespace sie::vm {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kBegin = "@@SIE-BEGIN@@";
constexpr std::string_view kEnd = "@@SIE-END rc=";
constexpr std::string_view kInitFailed = "@@SIE-INIT-FAILED@@";

fs::path CacheDir() {
  if (const char* c = getenv("SIE_CACHE")) return c;
  if (const char* x = getenv("XDG_CACHE_HOME")) return fs::path(x) / "sie";
  if (const char* h = getenv("HOME")) return fs::path(h) / ".cache/sie";
  return "/var/tmp/sie-cache";
}

std::string ShellQuote(const std::string& s) { return ShellJoin({s}); }

// Paths the guest hides behind its own tmpfs mounts; a host folder under one of them must be
// shared separately to stay visible at the same path.
bool HiddenInGuest(const fs::path& p) {
  for (const char* prefix : {"/tmp/", "/run/", "/var/tmp/", "/mnt/", "/dev/", "/proc/", "/sys/"})
    if (absl::StartsWith(p.string() + "/", prefix)) return true;
  return false;
}

// Streams the guest console: before the begin marker the text is init's own (shown with -v);
// between the markers it is the command's output; the end marker carries the exit code.
class ConsoleFilter {
 public:
  explicit ConsoleFilter(bool verbose) : verbose_(verbose) {}
  void Feed(absl::string_view chunk) {
    buf_.append(chunk.data(), chunk.size());
    size_t nl;
    while ((nl = buf_.find('\n')) != std::string::npos) {
      Line(buf_.substr(0, nl));
      buf_.erase(0, nl + 1);
    }
  }
  void Flush() {
    if (!buf_.empty()) Line(buf_);
    buf_.clear();
  }
  std::optional<int> rc() const { return rc_; }
  bool init_failed() const { return init_failed_; }
  const std::string& tail() const { return tail_; }

 private:
  void Line(std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    absl::StrAppend(&tail_, line, "\n");
    if (tail_.size() > 8192) tail_.erase(0, tail_.size() - 8192);
    if (line.find(kInitFailed) != std::string::npos) {
      init_failed_ = true;
      return;
    }
    if (auto p = line.find(kBegin); p != std::string::npos) {
      in_command_ = true;
      return;
    }
    if (auto p = line.find(kEnd); p != std::string::npos) {
      int rc;
      std::string_view v = std::string_view(line).substr(p + kEnd.size());
      v = v.substr(0, v.find('@'));
      if (absl::SimpleAtoi(absl::string_view(v.data(), v.size()), &rc)) rc_ = rc;
      in_command_ = false;
      return;
    }
    if (in_command_ || verbose_) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    }
  }
  bool verbose_;
  bool in_command_ = false;
  bool init_failed_ = false;
  std::optional<int> rc_;
  std::string buf_, tail_;
};

}  // namespace

std::string ChooseAccel() {
  if (const char* a = getenv("SIE_VM_ACCEL"); a && *a) return a;
  auto cpuinfo = ReadFile("/proc/cpuinfo");
  bool hw =
      cpuinfo.ok() && (absl::StrContains(*cpuinfo, " vmx") || absl::StrContains(*cpuinfo, " svm"));
  if (hw) {
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
      close(fd);
      return "kvm";
    }
  }
  return "tcg";
}

absl::StatusOr<std::vector<std::string>> AccelArgs(const std::string& accel, int cpus,
                                                   const std::string& icount) {
  if (accel == "kvm")  // a real CPU and the host's clock: nothing for icount to fix
    return std::vector<std::string>{"-accel", "kvm",  "-cpu",
                                    "host",   "-smp", std::to_string(cpus > 0 ? cpus : 2)};
  if (icount.empty())
    return std::vector<std::string>{
        "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", std::to_string(cpus > 0 ? cpus : 1)};
  // SHIFT[,sleep=on|off][,align=on|off]
  std::vector<std::string> parts = absl::StrSplit(icount, ',');
  int shift;
  if (!absl::SimpleAtoi(parts[0], &shift) || shift < 0 || shift > 10)
    return InvalidWithHint(absl::StrCat("--icount ", icount, ": SHIFT must be 0..10"),
                           "each guest instruction then counts 2^SHIFT ns, e.g. --icount 1 or "
                           "--icount 1,sleep=off");
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p != "sleep=on" && p != "sleep=off" && p != "align=on" && p != "align=off")
      return InvalidWithHint(absl::StrCat("--icount ", icount, ": unknown option '", p, "'"),
                             "options: sleep=on|off, align=on|off");
  }
  if (cpus > 1)
    return InvalidWithHint("--icount runs the guest on one vCPU", "drop --cpus or use --cpus 1");
  return std::vector<std::string>{
      "-accel",  "tcg,thread=single",           "-cpu", "max", "-smp", "1",
      "-icount", absl::StrCat("shift=", icount)};
}

namespace {

// The output share: the caller's folder, or a temporary one removed with the holder.
struct OutShare {
  std::optional<TempDir> tmp;
  fs::path dir;
};

absl::StatusOr<OutShare> MakeOutShare(const GuestOptions& opts, const fs::path& cache) {
  OutShare o;
  if (opts.out_dir.empty()) {
    auto t = TempDir::Create(cache / "runs", "out-");
    if (!t.ok()) return t.status();
    o.tmp.emplace(std::move(*t));
    o.dir = o.tmp->path();
    return o;
  }
  o.dir = fs::absolute(opts.out_dir);
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot create --out ", o.dir.string(), ": ", ec.message()));
  return o;
}

// Host folders under tmpfs-shadowed paths (a clone in /tmp) get their own shares.
absl::StatusOr<std::vector<fs::path>> HiddenBinds(const std::string& cwd) {
  std::vector<fs::path> binds;
  for (const fs::path& p : {fs::path(cwd), SelfDir().parent_path(), fs::path(SIE_SOURCE_DIR)}) {
    fs::path c = fs::weakly_canonical(p);
    if (!HiddenInGuest(c) || !fs::is_directory(c)) continue;
    if (c.string().find_first_of(" ,\t\n'\"") != std::string::npos)
      return InvalidWithHint(absl::StrCat("cannot share ", c.string(), " with the guest"),
                             "use a path without spaces or commas");
    bool covered = false;
    for (const auto& b : binds)
      if (absl::StartsWith(c.string() + "/", b.string() + "/")) covered = true;
    if (!covered) binds.push_back(c);
  }
  return binds;
}

// The guest kernel's command line: console, PATH and the shares guest_init.sh mounts.
std::string KernelCommandLine(const GuestOptions& opts, const std::vector<fs::path>& binds) {
  std::vector<std::string> path = opts.extra_path;
  path.push_back((SelfDir()).string());
  for (const char* p :
       {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"})
    path.push_back(p);
  std::vector<std::string> append = {"console=ttyS0", "panic=-1", "quiet", "loglevel=1",
                                     "SIE_PATH=" + absl::StrJoin(path, ":")};
  if (opts.verbose) append.push_back("SIE_VERBOSE=1");
  if (!opts.add_dir.empty()) append.push_back("SIE_ADD=1");
  if (!binds.empty()) {
    std::vector<std::string> b;
    for (const auto& p : binds) b.push_back(p.string());
    append.push_back("SIE_BINDS=" + absl::StrJoin(b, ","));
  }
  return absl::StrJoin(append, " ");
}

std::vector<std::string> QemuArgv(const GuestOptions& opts, const std::vector<std::string>& accel,
                                  const std::string& kernel, const fs::path& initrd,
                                  const fs::path& out_dir, const std::vector<fs::path>& binds) {
  std::vector<std::string> argv = {"qemu-system-x86_64"};
  argv.insert(argv.end(), accel.begin(), accel.end());
  argv.insert(argv.end(),
              {"-m", absl::StrCat(opts.memory_mb, "M"), "-display", "none", "-serial", "stdio",
               "-monitor", "none", "-no-reboot", "-nic", "none", "-kernel", kernel, "-initrd",
               initrd.string(), "-append", KernelCommandLine(opts, binds)});
  argv.insert(
      argv.end(),
      {"-virtfs",
       "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap,id=root",
       "-virtfs",
       absl::StrCat("local,path=", out_dir.string(), ",mount_tag=out,security_model=none,id=out")});
  if (!opts.add_dir.empty())
    argv.insert(argv.end(),
                {"-virtfs", absl::StrCat("local,path=", fs::absolute(opts.add_dir).string(),
                                         ",mount_tag=add,security_model=none,readonly=on,id=add")});
  for (size_t i = 0; i < binds.size(); ++i)
    argv.insert(argv.end(),
                {"-virtfs", absl::StrCat("local,path=", binds[i].string(), ",mount_tag=bind", i,
                                         ",security_model=none,multidevs=remap,id=bind", i)});
  return argv;
}

// The command's exit code, the dmesg scan, and what the runner's own exit code is.
void Conclude(const GuestOptions& opts, const fs::path& ctl, const RunResult& run,
              const ConsoleFilter& console, GuestResult& result) {
  auto rc_file = ReadFile(ctl / "rc");
  int rc;
  if (rc_file.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*rc_file), &rc)) {
    result.command_exit_code = rc;
  } else if (console.rc()) {
    result.command_exit_code = *console.rc();
  }
  if (auto d = ReadFile(ctl / "dmesg"); d.ok()) {
    result.dmesg = *d;
    result.splats = ScanDmesg(result.dmesg);
  } else {
    // No saved dmesg (the guest died): scan what the console showed.
    result.splats = ScanDmesg(console.tail());
  }
  if (run.timed_out) {
    result.exit_code = kExitTimeout;
    result.failure = absl::StrCat("the guest did not finish within ", opts.timeout_seconds,
                                  " s (raise --timeout); last console lines:\n", console.tail());
  } else if (result.command_exit_code < 0) {
    result.exit_code = kExitGuestFailed;
    result.failure =
        absl::StrCat(console.init_failed() ? "the guest's init failed"
                                           : "the guest stopped before the command finished",
                     " (qemu ", run.Describe(), "); last console lines:\n", console.tail());
  } else if (!result.splats.empty() && result.command_exit_code == 0) {
    result.exit_code = kExitKernelSplat;
  } else {
    result.exit_code = result.command_exit_code;
  }
}

}  // namespace

absl::StatusOr<GuestResult> RunInGuest(const GuestOptions& opts) {
  if (opts.command.empty())
    return InvalidWithHint("no command to run in the guest", "write: sie vm -- CMD ARGS...");
  const std::string& rel = opts.kernel_release;
  std::string kernel = absl::StrCat("/boot/vmlinuz-", rel);
  if (!fs::exists(kernel))
    return FailedWithHint(absl::StrCat("guest kernel ", kernel, " is not installed"),
                          "run scripts/setup, or pass --kernel with an installed 6.12 release");
  if (!opts.add_dir.empty() && !fs::is_directory(opts.add_dir))
    return InvalidWithHint(absl::StrCat("--add ", opts.add_dir, " is not a directory"),
                           "pass an existing folder; it appears read-only at /mnt/add");

  GuestResult result;
  fs::path cache = CacheDir();
  auto initrd = EnsureInitramfs(rel, cache);
  if (!initrd.ok()) return initrd.status();
  result.initramfs_seconds = initrd->build_seconds;
  auto out = MakeOutShare(opts, cache);
  if (!out.ok()) return out.status();
  fs::path ctl = out->dir / ".sie";
  std::error_code ec;
  fs::remove_all(ctl, ec);
  fs::create_directories(ctl);

  // The command, as a script: exact argv, the caller's working directory when visible.
  std::string cwd = opts.cwd.empty() ? fs::current_path().string() : opts.cwd;
  std::string script = absl::StrCat("cd ", ShellQuote(cwd), " 2>/dev/null || cd /\n", "exec ",
                                    ShellJoin(opts.command), "\n");
  if (auto s = WriteFileAtomic(ctl / "cmd.sh", script, 0755); !s.ok()) return s;
  auto binds = HiddenBinds(cwd);
  if (!binds.ok()) return binds.status();

  result.accel = ChooseAccel();
  if (!opts.icount.empty() && result.accel == "kvm")
    std::fprintf(stderr, "sie vm: --icount ignored under KVM (the guest runs on the real CPU)\n");
  auto accel_args = AccelArgs(result.accel, opts.cpus, opts.icount);
  if (!accel_args.ok()) return accel_args.status();
  const auto argv = QemuArgv(opts, *accel_args, kernel, initrd->path, out->dir, *binds);
  if (opts.verbose) std::fprintf(stderr, "sie vm: %s\n", ShellJoin(argv).c_str());

  ConsoleFilter console(opts.verbose);
  RunOptions ro;
  ro.timeout = std::chrono::seconds(opts.timeout_seconds);
  ro.capture = false;
  ro.on_stdout = [&](absl::string_view c) { console.Feed(c); };
  ro.on_stderr = [&](absl::string_view c) {
    if (opts.verbose) std::fwrite(c.data(), 1, c.size(), stderr);
  };
  auto run = Run(argv, ro);
  if (!run.ok()) return WithContext(run.status(), "cannot start qemu (run scripts/setup)");
  console.Flush();
  result.boot_to_poweroff_seconds = run->elapsed.count() / 1000.0;
  Conclude(opts, ctl, *run, console, result);
  return result;
}

}  // namespace sie::vm
