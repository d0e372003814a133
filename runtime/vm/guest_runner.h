// `sie vm`: boots the guest kernel under QEMU with the host root shared read-only, runs one
// command as root inside it, streams its output, scans dmesg, and always powers the guest off.
#pragma once
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/vm/dmesg_scan.h"

namespace sie::vm {

struct GuestOptions {
  std::string kernel_release;           // e.g. 6.12.117+deb12-amd64
  std::string add_dir;                  // shown read-only at /mnt/add (optional)
  std::string out_dir;                  // writable, at /mnt/out; empty: a temporary folder
  std::vector<std::string> command;     // run as root in the guest
  std::string cwd;                      // guest working directory (default: the host's)
  std::vector<std::string> extra_path;  // prepended to the guest's PATH
  int timeout_seconds = 900;
  int memory_mb = 2048;
  // 0: 1 under TCG, 2 under KVM. Multi-threaded TCG has shown stale int3 bytes after the
  // kernel patched its text (kprobe unregister/unoptimize) while another vCPU ran that code,
  // an emulator artefact that crashes the guest; one vCPU avoids it.
  int cpus = 0;
  // TCG only: "SHIFT[,sleep=on|off][,align=on|off]" -> QEMU -icount shift=SHIFT,...; the guest's
  // clock then follows executed instructions (2^SHIFT ns each) instead of the host's, so a slow
  // emulated CPU looks like a fast one with a steady clock (network timing tests). Empty: off.
  std::string icount;
  bool verbose = false;
};

// Exit codes beyond the command's own.
inline constexpr int kExitKernelSplat = 120;  // the command succeeded but the kernel complained
inline constexpr int kExitTimeout = 124;
inline constexpr int kExitGuestFailed = 125;  // the guest did not boot or crashed

struct GuestResult {
  int exit_code = 0;           // the command's, or one of the codes above
  int command_exit_code = -1;  // -1: the command never finished
  std::vector<KernelSplat> splats;
  std::string dmesg;
  std::string accel;             // "tcg" or "kvm"
  double initramfs_seconds = 0;  // 0 when served from the cache
  double boot_to_poweroff_seconds = 0;
  std::string failure;  // why the guest failed (exit codes 124/125)
};

absl::StatusOr<GuestResult> RunInGuest(const GuestOptions& opts);

// QEMU's accelerator, CPU and SMP arguments for `accel` ("tcg"/"kvm"). With `icount` (see
// GuestOptions) TCG runs single-threaded on one vCPU (QEMU's icount needs both; more CPUs or a
// bad SHIFT is an error with a hint); KVM ignores `icount`.
absl::StatusOr<std::vector<std::string>> AccelArgs(const std::string& accel, int cpus,
                                                   const std::string& icount);

// "kvm" only where the CPU has vmx/svm and /dev/kvm opens; SIE_VM_ACCEL overrides.
std::string ChooseAccel();

}  // namespace sie::vm
