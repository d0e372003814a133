// `sie info [--json]`: what sie sees of the kernel it runs on and of its own tools.
#include <sys/utsname.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "bpf/libbpf.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "nlohmann/json.hpp"
#include "runtime/cli/commands.h"
#include "runtime/loader/loader.h"

namespace sie::cli {
namespace fs = std::filesystem;

int InfoCommand(const std::vector<std::string>& args) {
  bool json = false;
  ArgParser p(
      "sie info [--json]",
      "Shows the kernel release, BTF, kprobe and optprobe support, the sie kfunc module,\n"
      "the libbpf/bpftool versions sie uses, where its headers are and the default constants\n"
      "directory.");
  p.Flag("--json", &json, "machine-readable output");
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie info", s);
  if (p.help_requested()) return 0;

  struct utsname u;
  uname(&u);
  auto text = [](const char* path) {
    auto r = ReadFile(path);
    return r.ok() ? std::string(absl::StripAsciiWhitespace(*r)) : std::string();
  };
  auto kconfig = ReadFile(absl::StrCat("/boot/config-", u.release));
  auto has_config = [&](const char* opt) {
    return kconfig.ok() && absl::StrContains(*kconfig, absl::StrCat("\n", opt, "=y"));
  };
  std::string bpftool;
  if (auto r = Run({"bpftool", "version"}); r.ok() && r->ok())
    bpftool = std::string(absl::StripAsciiWhitespace(r->out.substr(0, r->out.find('\n'))));

  nlohmann::ordered_json j;
  j["kernel_release"] = u.release;
  j["guest_kernel_release"] = SIE_DEFAULT_KERNEL_RELEASE;
  j["btf_vmlinux"] = fs::exists("/sys/kernel/btf/vmlinux");
  j["kprobes"] = has_config("CONFIG_KPROBES") || fs::exists("/sys/kernel/debug/kprobes");
  j["optprobes"] = has_config("CONFIG_OPTPROBES");
  j["kprobes_optimization"] = text("/proc/sys/debug/kprobes-optimization");
  j["modules"] = fs::exists("/proc/modules");
  j["sie_kfuncs_loaded"] = fs::exists("/sys/module/sie_kfuncs");
  j["libbpf"] = absl::StrCat(libbpf_major_version(), ".", libbpf_minor_version());
  j["bpftool"] = bpftool;
  // Where stubs and policies are compiled from: share/sie when installed, else the source tree.
  const auto installed = InstalledDataDir();
  j["data_dir"] = installed ? installed->string() : std::string(SIE_SOURCE_DIR) + " (build tree)";
  j["consts_dir"] = loader::DefaultConstsDir().string();
  if (json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  for (auto& [k, v] : j.items())
    std::printf("%-22s %s\n", k.c_str(),
                v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
  return 0;
}

}  // namespace sie::cli
