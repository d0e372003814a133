// `sie`: the command-line entry point. Dispatches to one subcommand per concern.
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "runtime/cli/commands.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  std::function<int(const std::vector<std::string>&)> run;
};

const std::vector<Subcommand>& Subcommands() {
  static const auto* c = new std::vector<Subcommand>{
      {"vm", "run a command as root in the guest kernel (QEMU)", sie::cli::VmCommand},
      {"synth", "synthesize a constant: spans, formulas, safe spans, stubs",
       sie::cli::SynthCommand},
      {"discover", "candidate constants of a kernel file or directory, and a spec for them",
       sie::cli::DiscoverCommand},
      {"set", "give a kernel constant a new value, live", sie::cli::SetCommand},
      {"status", "loaded constants: value, mode, probes, counters", sie::cli::StatusCommand},
      {"unload", "restore a constant's compiled value and detach", sie::cli::UnloadCommand},
      {"apply", "make the kernel match a desired state (YAML), all or nothing",
       sie::cli::ApplyCommand},
      {"consts", "list synthesized constants", sie::cli::ConstsCommand},
      {"knob", "list or change the running policy's live knobs", sie::cli::KnobCommand},
      {"log", "journal of changes made with sie", sie::cli::LogCommand},
      {"hint", "hints for the running policy (process, thread, cgroup)", sie::cli::HintCommand},
      {"metrics", "Prometheus metrics of the loaded constants and policy",
       sie::cli::MetricsCommand},
      {"info", "kernel, BTF, kprobes and tool versions seen by sie", sie::cli::InfoCommand},
  };
  return *c;
}

void Usage(FILE* f) {
  std::fprintf(
      f,
      "usage: sie <command> [options]\n\n"
      "sie turns constants compiled into the running Linux kernel into live, policy-driven\n"
      "knobs (Scoped Indirect Execution).\n\ncommands:\n");
  for (const auto& c : Subcommands()) std::fprintf(f, "  %-9s %s\n", c.name, c.summary);
  std::fprintf(f, "\n'sie <command> --help' describes one command.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  for (const auto& c : Subcommands())
    if (name == c.name) return c.run(std::vector<std::string>(argv + 2, argv + argc));
  std::fprintf(stderr, "sie: error: unknown command '%s'\n  hint: see 'sie --help'\n",
               name.c_str());
  return 2;
}
