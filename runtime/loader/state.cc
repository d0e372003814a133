#include "runtime/loader/state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/log.h"
#include "runtime/loader/native.h"

namespace sie::loader {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The sie command holding the lock, from the pid its holder wrote into it: "pid N: sie set
// ...", or "" when that process is gone (the lock is then held by something else).
std::string LockHolder(const fs::path& lock) {
  auto text = ReadFile(lock);
  int pid = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid) || pid <= 0)
    return "";
  auto cmd = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  if (!cmd.ok() || cmd->empty()) return "";
  const std::string nul(1, '\0');
  std::string line = absl::StrReplaceAll(absl::StripSuffix(*cmd, nul), {{nul, " "}});
  const std::string argv0 = line.substr(0, line.find(' '));
  const std::string base = fs::path(argv0).filename().string();
  if (base != "sie" && base != "sie-run") return "";
  return absl::StrCat("pid ", pid, ": ", base, line.substr(argv0.size()));
}

}  // namespace

fs::path RunDir() {
  if (const char* d = getenv("SIE_RUN_DIR"); d && *d) return d;
  return "/run/sie";
}

absl::StatusOr<RunLock> RunLock::Take() {
  std::error_code ec;
  fs::create_directories(RunDir(), ec);
  UniqueFd fd(open((RunDir() / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid())
    return FailedWithHint(
        absl::StrCat("cannot open ", (RunDir() / "lock").string(), ": ", strerror(errno)),
        "sie must run as root");
  // A second command waits for the first (one change at a time); it says so, since a mode 2
  // transition can hold the lock for its whole --timeout.
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return absl::InternalError(absl::StrCat("flock: ", strerror(errno)));
    const std::string holder = LockHolder(RunDir() / "lock");
    Log(LogLevel::kInfo, absl::StrCat("waiting for another sie command to finish (",
                                      holder.empty() ? "" : absl::StrCat(holder, "; "), "it holds ",
                                      (RunDir() / "lock").string(), ")"));
    if (flock(fd.get(), LOCK_EX) != 0) return absl::InternalError("flock failed");
  }
  // The holder's pid, for the message above in the next command that has to wait.
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd.get(), 0) == 0) (void)!pwrite(fd.get(), pid.data(), pid.size(), 0);
  RunLock l;
  l.fd_ = std::move(fd);
  return l;
}

fs::path StatePath(const std::string& name) { return RunDir() / (name + ".json"); }
fs::path PinDir(const std::string& name) { return fs::path(kPinRoot) / name; }

absl::Status WriteState(const std::string& name, const json& s) {
  return WriteFileAtomic(StatePath(name), s.dump(2) + "\n", 0600);
}

absl::StatusOr<json> ReadState(const fs::path& p) {
  auto t = ReadFile(p);
  if (!t.ok()) return t.status();
  json j = json::parse(*t, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::DataLossError(absl::StrCat(p.string(), " is corrupt"));
  return j;
}

void RemoveState(const std::string& name) {
  std::error_code ec;
  fs::remove(StatePath(name), ec);
}

std::vector<json> StatesExcept(const std::string& except) {
  std::vector<json> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(RunDir(), ec)) {
    if (e.path().extension() != ".json" || e.path().stem() == except) continue;
    auto st = ReadState(e.path());
    // Only constants' states (sie-run.json, the pinned policy's record, lives here too).
    if (!st.ok() || !st->contains("const_path")) continue;
    if (!st->contains("name")) (*st)["name"] = e.path().stem().string();
    out.push_back(std::move(*st));
  }
  return out;
}

std::map<uint64_t, std::string> OriginalBytesOfOthers(const std::string& except) {
  std::map<uint64_t, std::string> out;
  for (const json& s : StatesExcept(except)) {
    const json bytes = s.value("original_bytes", json::object());  // outlives the loop
    for (const auto& [k, v] : bytes.items()) {
      uint64_t addr = 0;
      const std::string hex = v.is_string() ? v.get<std::string>() : "";
      if (absl::SimpleHexAtoi(k, &addr) && !hex.empty() && hex.size() % 2 == 0 &&
          std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit))
        out[addr] = absl::HexStringToBytes(hex);
    }
  }
  return out;
}

std::set<uint64_t> AddressesOfOthers(const std::string& except) {
  std::set<uint64_t> out;
  for (const json& st : StatesExcept(except)) {
    for (const auto& a : st.value("attached_addresses", json::array()))
      if (a.is_number_unsigned()) out.insert(a.get<uint64_t>());
    for (const auto& p : st.value("probes", json::array()))
      out.insert(p.value("address", uint64_t{0}));
  }
  return out;
}

std::string NativeOwner(const std::string& key) {
  for (const json& st : StatesExcept("")) {
    if (st.value("engine", "bpf") != "native") continue;
    for (const auto& np : st.value("native", json::array()))
      if (NativeKey(np.value("symbol", ""), np.value("offset", uint64_t{0})) == key)
        return st.value("name", "");
  }
  return "";
}

// A probe (int3, or the jump of an optimized probe) covers the code at its address, so
// /proc/kcore shows the patch, not the instruction. When that probe is another loaded constant's
// apply probe whose span expects the same bytes at the same place, that constant verified them
// before its probe covered them.
std::string VerifiedUnderProbeOf(const std::string& self, uint64_t addr,
                                 const std::string& function, uint64_t offset,
                                 const std::string& expect) {
  for (const json& st : StatesExcept(self)) {
    if (st.value("state", "") != "loaded") continue;
    for (const auto& p : st.value("probes", json::array())) {
      if (p.value("role", "") != "apply" || p.value("address", uint64_t{0}) != addr) continue;
      auto other = artifact::ReadConstFile(st.value("const_path", ""));
      const int span = p.value("span", -1);
      if (!other.ok() || span < 0 || span >= static_cast<int>(other->spans.size())) continue;
      const artifact::CriticalSpan& s = other->spans[span];
      if (s.function == function && s.probe_offset == offset &&
          p.value("offset", uint64_t{0}) == offset && s.expect_bytes == expect)
        return st.value("name", "");
    }
  }
  return "";
}

std::string ProbeOwnerAt(const std::string& self, uint64_t addr) {
  for (const json& st : StatesExcept(self))
    for (const auto& p : st.value("probes", json::array()))
      if (p.value("address", uint64_t{0}) == addr) return st.value("name", "");
  return "";
}

json ProbeToJson(const ProbeInfo& p) {
  json j{{"role", p.role},           {"span", p.span},         {"function", p.function},
         {"offset", p.offset},       {"address", p.address},   {"cell", p.cell},
         {"optimized", p.optimized}, {"flags", p.kprobe_flags}};
  if (p.point) j["point"] = p.point;
  if (p.jump_placed) j["jump_placed"] = true;
  return j;
}

ProbeInfo ProbeFromJson(const json& j) {
  ProbeInfo p;
  p.role = j.value("role", "");
  p.span = j.value("span", 0);
  p.point = j.value("point", 0);
  p.function = j.value("function", "");
  p.offset = j.value("offset", uint64_t{0});
  p.address = j.value("address", uint64_t{0});
  p.cell = j.value("cell", -1);
  p.optimized = j.value("optimized", false);
  p.jump_placed = j.value("jump_placed", false);
  p.kprobe_flags = j.value("flags", "");
  return p;
}

}  // namespace sie::loader
