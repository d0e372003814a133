// `sie vm [--add DIR] [--out DIR] [--kernel VER] [--icount SHIFT] [-v] -- CMD ARGS...`
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "runtime/cli/commands.h"
#include "runtime/vm/guest_runner.h"

namespace sie::cli {

int VmCommand(const std::vector<std::string>& args) {
  vm::GuestOptions o;
  o.kernel_release = SIE_DEFAULT_KERNEL_RELEASE;
  long timeout = o.timeout_seconds, memory = o.memory_mb, cpus = o.cpus;
  ArgParser q(
      "sie vm [--add DIR] [--out DIR] [--kernel VER] [--timeout S] [--icount SHIFT] [-v] -- CMD "
      "ARGS...",
      "Boots the guest kernel under QEMU (TCG, or KVM where the CPU has vmx/svm) with the host "
      "root\n"
      "shared read-only, runs CMD as root in it and exits with CMD's exit code. sie's build is on\n"
      "PATH. --add DIR is visible read-only at /mnt/add; /mnt/out ($SIE_OUT) is writable and is\n"
      "--out DIR on the host. After CMD the guest's dmesg is scanned: a WARN, BUG, Oops, KASAN,\n"
      "lockdep, RCU stall or hung-task report fails the run.\n\n"
      "exit codes: CMD's own; 120 kernel error report after a successful CMD; 124 timeout;\n"
      "125 the guest failed to boot or crashed.");
  q.String("--add", "DIR", &o.add_dir, "folder shown read-only at /mnt/add");
  q.String("--out", "DIR", &o.out_dir, "host folder behind the guest's writable /mnt/out");
  q.String("--kernel", "VER", &o.kernel_release,
           absl::StrCat("guest kernel release (default ", SIE_DEFAULT_KERNEL_RELEASE, ")"));
  q.Int("--timeout", "S", &timeout, "hard limit for the whole run, in seconds (default 900)");
  q.Int("--memory", "MB", &memory, "guest memory (default 2048)");
  q.Int("--cpus", "N", &cpus, "guest CPUs (default 1 under TCG, 2 under KVM)");
  q.String("--icount", "SHIFT[,sleep=off]", &o.icount,
           "TCG: the guest's clock counts instructions (2^SHIFT ns each; QEMU -icount), so its "
           "timing is steady on a slow host (network tests); sleep=off skips idle time (guest-side "
           "timeouts then expire fast: use --timeout)");
  q.Flag("-v,--verbose", &o.verbose, "show the boot, the QEMU command, and timings");
  q.Rest(&o.command);
  if (auto s = q.Parse(args); !s.ok()) return ReportError("sie vm", s);
  if (q.help_requested()) return 0;
  o.timeout_seconds = static_cast<int>(timeout);
  o.memory_mb = static_cast<int>(memory);
  o.cpus = static_cast<int>(cpus);

  auto r = vm::RunInGuest(o);
  if (!r.ok()) return ReportError("sie vm", r.status());
  for (const auto& s : r->splats)
    std::fprintf(stderr, "sie vm: kernel %s report (dmesg line %d): %s\n", s.kind.c_str(), s.line,
                 s.text.c_str());
  if (!r->failure.empty()) std::fprintf(stderr, "sie vm: error: %s\n", r->failure.c_str());
  if (o.verbose) {
    std::string initramfs =
        r->initramfs_seconds > 0 ? absl::StrCat("built in ", r->initramfs_seconds, " s") : "cached";
    std::fprintf(stderr, "sie vm: accel %s; initramfs %s; boot to poweroff %.2f s; exit %d\n",
                 r->accel.c_str(), initramfs.c_str(), r->boot_to_poweroff_seconds, r->exit_code);
  }
  return r->exit_code;
}

}  // namespace sie::cli
