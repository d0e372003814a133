// The loader's hold on the kernel: kprobe perf events and BPF links (pinned under
// /sys/fs/bpf/sie/<name>/), sie_kfuncs site and cell registration, the kprobe list as it
// changes, and the modules a load needs.
#pragma once
#include <bpf/libbpf.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/artifact/model.h"
#include "common/base/unique_fd.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/loader.h"

namespace sie::loader {

// One probe of the constant being loaded. The loader owns the kprobe's perf event and the BPF
// link as plain fds (no bpf_link object): libbpf 1.1 has no way to hand a pinned perf link over
// without either disabling its perf event (bpf_link__destroy) or leaking both fds
// (bpf_link__disconnect), and a long-lived caller (sie-run) must not keep the kprobe registered
// after `Unload` removed the pins.
// Where a probe's handler runs among the probes at one address: the apply of a span that
// ends there (its effect belongs before the address), the guard entering a safe span there,
// the saves of spans that start there, a path token's mark, then the apply of an empty span
// there (an input rewrite: after the save of the span that puts the input back).
enum class RunRank { kApplyAfterSpan, kGuard, kSave, kMark, kRewrite };

struct Attached {
  ProbeInfo info;
  RunRank run_rank = RunRank::kApplyAfterSpan;
  bpf_program* prog = nullptr;
  UniqueFd perf_fd, link_fd;
  std::string pin;                   // the link's pin while attached
  std::vector<uint64_t> candidates;  // apply probes of kind reg: other offsets to try
  size_t next_candidate = 0;
  uint64_t func_addr = 0;
  bool attached() const { return link_fd.valid(); }
};

ProbeInfo MakeProbe(const char* role, int span, const std::string& fn, uint64_t off,
                    uint64_t func_addr);

// Attaches a.prog at a.info.address (the exact address whose bytes were verified) and pins the
// link in `pin_dir`. Uses a.perf_fd when OpenKprobes already opened it.
absl::Status Attach(Attached& a, const std::string& pin_dir);
// The order OpenKprobes opens `probes` in, per address (indices into `probes`): the reverse
// of the order their handlers must run in, by RunRank, then plan order.
std::map<uint64_t, std::vector<size_t>> OpenOrder(const std::vector<Attached*>& probes);
// Opens the kprobe perf events of `probes` concurrently (their perf_fd; those at one address
// newest-runs-first, so that their handlers run by RunRank, then in their order). Registering an
// armed kprobe kicks the kernel's optimizer, which holds kprobe_mutex across a tasks-RCU grace
// period; one at a time, each registration waits for the pass the previous one started, while
// registrations already queued on the mutex all go before the optimizer's next pass. Nothing
// is linked yet: on error the opened events close with their fds.
absl::Status OpenKprobes(const std::vector<Attached*>& probes);
// Detaches a probe of the load in progress: its pin and both fds go, so the link's last
// reference is dropped (the kprobe itself leaves the kernel asynchronously).
void Detach(Attached& a);
// The pin owns the link from now on: only our references go.
void HandOver(Attached& a);

// Site / cell registration with sie_kfuncs for one probe (apply probes only).
absl::Status Register(const Attached& a, const artifact::CriticalSpan& s);
// Forgets the sie_kfuncs sites (and their cells) at `addrs` that no other constant uses: a
// program still attached there afterwards could change nothing. Best effort.
void UnregisterSites(const std::string& name, const std::vector<uint64_t>& addrs);
// The BPF stub reaches a kMem span's cell through sie_kfuncs: a free cell id for each.
absl::Status AssignCells(const artifact::SynthesizedConst& c, std::vector<Attached>& probes);

// Each probe's state as the kernel lists it now ([OPTIMIZED], [FTRACE]) from kprobes/list.
void RefreshProbeStates(std::vector<Attached>& probes);
std::string DescribeKprobe(const KprobeEntry& e);
// Waits until the kprobes at `addrs` are gone, except `keep[addr]` of them at each address:
// other tools' kprobes that were there before (they stay). Links are released from a
// workqueue after their last reference goes, so a kprobe can outlive its pin by a moment.
absl::Status WaitKprobesGone(const std::vector<uint64_t>& addrs, double timeout_s,
                             const std::map<uint64_t, int>& keep = {});
// How many kprobes at each of `addrs` are not among `own` (this constant's, by address).
std::map<uint64_t, int> ForeignKprobes(const std::vector<uint64_t>& addrs,
                                       const std::map<uint64_t, int>& own);

absl::Status EnsureBpffs();
// Removes a pin directory: unlinking the links' pins detaches the kprobes.
absl::Status RemovePins(const std::filesystem::path& dir);

// Loads kmod/<name>.ko next to the binary unless loaded; says so in *notes.
// The bytes a probe at `addr` will replace, read before it attaches (kOriginalBytes of them):
// from the live code, or from the constant that patched it first. Recorded in `state`
// ("original_bytes"), so code read later under the probe can be restored (mode 2's exits).
inline constexpr size_t kOriginalBytes = 5;  // an optimized probe's jmp rel32
void RecordOriginalBytes(const std::string& self, uint64_t addr, nlohmann::json& state);

absl::Status LoadModuleIfNeeded(const std::string& name, std::vector<std::string>* notes);

}  // namespace sie::loader
