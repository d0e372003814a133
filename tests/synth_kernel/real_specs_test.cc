// Real synthesis of every spec in synth/specs/: `sie synth` compiles the guest 6.12 kernel's
// objects (and the sie_target module) with three values, and every constant must come out with
// spans mapped onto the binary the guest runs. The expect_bytes of each span are checked against
// the shipped binary read here independently (libelf), and each formula is evaluated for a value
// that was never compiled, against what the C source computes for it.
#include <fcntl.h>
#include <gelf.h>
#include <gtest/gtest.h>
#include <libelf.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/artifact/formula.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// What one span of a constant must look like: where (a function name prefix), its kind, and
// the value its formula must give for V (and X, the instruction's input) — from the C source.
struct SpanExpect {
  std::string function;
  std::string kind;
  int64_t v;
  uint64_t x;
  uint64_t want;
  uint64_t y = 0;  // the span's first further input (saved or read at the probe)
  uint64_t z = 0;  // its second
};

// SIE_TARGET_FAN: sie_target_fan_0 .. sie_target_fan_14 each load the constant into a register.
std::vector<SpanExpect> FanSpans() {
  std::vector<SpanExpect> v;
  for (int i = 0; i < 15; ++i)
    v.push_back({"sie_target_fan_" + std::to_string(i), "reg", 77, 0, 77});
  return v;
}

// Every constant the specs list, with the spans it must have (others may exist too).
const std::map<std::string, std::vector<SpanExpect>>& Expectations() {
  static const std::map<std::string, std::vector<SpanExpect>> k = {
      // plug->multiple_queues ? 2*V : V, via sbb/and/add; X is the sbb result (0 or -1).
      {"BLK_MAX_REQUEST_COUNT",
       {{"blk_add_rq_to_plug", "recompute", 100, 0xffffffff, 100},
        {"blk_add_rq_to_plug", "recompute", 100, 0, 200},
        {"blk_start_plug_nr_ios", "reg", 100, 0, 100}}},
      {"MAX_SOFTIRQ_RESTART", {{"handle_softirqs", "reg", 37, 0, 37}}},
      // tcp_init_cwnd's `if (!cwnd) cwnd = V`; tcp_init_transfer's snd_cwnd * V.
      {"TCP_INIT_CWND",
       {{"tcp_init_cwnd", "reg", 7, 0, 7}, {"tcp_init_transfer", "reg", 7, 3, 21}}},
      // The stored ioprio = max(0, 8 - weight / V) (weight Y, read at the probe) at V=7,
      // never compiled (another shape again); bfq_ioprio_to_weight's (8 - ioprio) * V.
      {"BFQ_WEIGHT_CONVERSION_COEFF",
       {{"__bfq_entity_update_weight_prio", "mem", 7, 0, 6, 20},
        {"__bfq_entity_update_weight_prio", "mem", 7, 0, 0, 100},
        {"bfq_ioprio_to_weight", "reg", 7, 3, 35}}},
      {"SHRINK_BATCH", {{"do_shrink_slab", "", 100, 0, 100}}},
      {"HYSTART_DELAY_SHIFT", {{"", "", 4, 800, 800 >> 4}}},
      {"HYSTART_DELAY_MAX", {{"", "", 20000, 0, 20000}}},
      // get_random_u32_below(V) at V=13, never compiled: the loop's jump back is taken
      // (the sample rejected) when (u8)(X * 13) < 256 % 13 = 9: X=20 (260: 4), not X=42
      // (546: 34); beside X * V and V + X.
      {"FIB6_MAX_DEPTH",
       {{"rt6_insert_exception", "flags", 13, 20, 1},
        {"rt6_insert_exception", "flags", 13, 42, 0},
        {"rt6_insert_exception", "reg", 13, 3, 39},
        {"rt6_insert_exception", "recompute", 13, 2, 15}}},
      // Illinois' beta at V=13, never compiled: (13 * d3 - 32 * d2 + 19 * da) / (d3 - d2) with
      // d2 = 100 (X), d3 = 800 (Y), da = 0 (Z): 7200 / 700.
      {"ILLINOIS_BETA_MIN", {{"tcp_illinois_cong_avoid", "recompute", 13, 100, 10, 800}}},
      // ++cnt >= V on bits 5-6 of the byte (Y = 0x20: cnt 1 -> 2): at V=2 the byte gets cnt 2
      // and full_bw_reached (bit 4): 0x50; the recompute's flag alone from X = 0x20: 0x10.
      {"BBR_FULL_BW_CNT",
       {{"bbr_main", "mem", 2, 0, 0x50, 0x20}, {"bbr_main", "recompute", 2, 0x20, 0x10}}},
      // A multiplier hoisted before bond_alb_monitor's slave loop: load / V at V=17 (never
      // compiled; the multiplier differs from 5, 10 and 20's) of a loaded 1700: 100, and the
      // history 1 + 1700 / 17; the rebalance counter's limit 10 * V - 1.
      {"BOND_TLB_REBALANCE_INTERVAL",
       {{"bond_alb_monitor", "mem", 17, 0, 100, 0, 1700},
        {"bond_alb_monitor", "mem", 17, 0, 101, 0, 1700},
        {"bond_alb_monitor", "flags", 17, 0, 169}}},
      {"SIE_TARGET_LOOP_BOUND", {{"sie_target_loop", "flags", 37, 0, 37}}},
      {"SIE_TARGET_CALL_ARG", {{"sie_target_call_arg", "reg", 0x4321, 0, 0x4321}}},
      {"SIE_TARGET_FIELD_INIT", {{"sie_target_init_req", "mem", 0x1111, 0, 0x1111}}},
      {"SIE_TARGET_THRESHOLD", {{"sie_target_cmp", "flags", 777, 0, 777}}},
      {"SIE_TARGET_SCALE", {{"sie_target_mul", "reg", 3, 7, 21}}},      // X * V, V not 2^n
      {"SIE_TARGET_DIVISOR", {{"sie_target_div", "reg", 19, 100, 5}}},  // X / V, never compiled
      // time_after(jiffies, tm_stamp + V * HZ): the add's immediate is 15000 * V (HZ = 250).
      {"TCP_METRICS_TIMEOUT_MIN", {{"tcp_get_metrics", "flags", 7, 0, 7 * 15000}}},
      // sch_fq.ko: fq_init stores the limit into sch->limit.
      {"FQ_DEFAULT_LIMIT", {{"fq_init", "mem", 777, 0, 777}}},
      {"SIE_TARGET_BATCH",
       {{"sie_target_batch_cycle", "mem", 50, 0, 50},
        {"sie_target_batch_cycle", "mem", 50, 0, 50}}},
      // One constant in 15 functions: a reg span in each.
      {"SIE_TARGET_FAN", FanSpans()},
      // A span ending at a join: a reg span with a path token (the even inputs bypass it).
      {"SIE_TARGET_JOIN", {{"sie_target_join", "reg", 77, 0, 77}}},
      // A loaded value saved right after its load (Y), times V.
      {"SIE_TARGET_SAVED", {{"sie_target_saved_calc", "reg", 5, 0, 35, 7}}},
      // i % V == 0 at powers of two: a flags span of test with mask V - 1 (2048: never compiled).
      {"SIE_TARGET_EVERY", {{"sie_target_every", "flags", 2048, 0, 2047}}},
      // Two constants stored around a sleep in one function (a policy switches them together).
      {"SIE_TARGET_PAIR_A", {{"sie_target_pair_cycle", "mem", 55, 0, 55}}},
      {"SIE_TARGET_PAIR_B", {{"sie_target_pair_cycle", "mem", 66, 0, 66}}},
      // (u8)(V * b) >= 256 % V: the jump decided by a predicate span (1: the compiled jbe back
      // to the next byte is taken: 6 * 45 = 270 keeps 14 < 256 % 45 = 31), beside V * b.
      {"SIE_TARGET_BELOW",
       {{"sie_target_below", "flags", 45, 6, 1}, {"sie_target_below", "reg", 45, 6, 270}}},
      // q / V folded away at 1: q rewritten at the region start (200 / 32, never compiled) and
      // put back where the region ends (the saved q itself).
      {"SIE_TARGET_FOLD",
       {{"sie_target_fold_calc", "reg", 32, 200, 6},
        {"sie_target_fold_calc", "recompute", 32, 200, 200}}},
  };
  return k;
}

// Bytes [off, off+len) of function `fn` in an ELF file (vmlinux: by address; .ko: by section).
std::optional<std::string> FunctionBytes(const std::string& path, const std::string& fn,
                                         uint64_t off, size_t len) {
  elf_version(EV_CURRENT);
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  Elf* e = elf_begin(fd, ELF_C_READ, nullptr);
  GElf_Ehdr eh;
  if (e && gelf_getehdr(e, &eh)) {
    for (Elf_Scn* s = nullptr; !out && (s = elf_nextscn(e, s));) {
      GElf_Shdr sh;
      if (!gelf_getshdr(s, &sh) || sh.sh_type != SHT_SYMTAB) continue;
      Elf_Data* d = elf_getdata(s, nullptr);
      for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; ++i) {
        GElf_Sym sym;
        if (!gelf_getsym(d, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC) continue;
        const char* name = elf_strptr(e, sh.sh_link, sym.st_name);
        if (!name || fn != name) continue;
        GElf_Shdr th;
        if (!gelf_getshdr(elf_getscn(e, sym.st_shndx), &th)) break;
        uint64_t file_off = eh.e_type == ET_REL ? th.sh_offset + sym.st_value + off
                                                : th.sh_offset + (sym.st_value - th.sh_addr) + off;
        std::string buf(len, '\0');
        if (pread(fd, buf.data(), len, file_off) == static_cast<ssize_t>(len)) out = buf;
        break;
      }
    }
  }
  if (e) elf_end(e);
  close(fd);
  return out;
}

std::string Hex(const std::string& b) {
  std::string h;
  char t[3];
  for (unsigned char c : b) std::snprintf(t, sizeof t, "%02x", c), h += t;
  return h;
}

// Runs `sie synth` on one spec into a fresh directory and returns its --json summary.
Json Synthesize(const std::string& spec, fs::path* out) {
  // sie_target.yaml is synthesized once per ctest run, by the guest tests' fixture
  // (sie_synth_sie_target_consts, which this test requires): its --json summary is checked here.
  if (spec == "sie_target" && fs::exists(SIE_TARGET_SYNTH_JSON)) {
    std::ifstream in(SIE_TARGET_SYNTH_JSON);
    return Json::parse(in, nullptr, false);
  }
  *out = fs::path(::testing::TempDir()) / ("sie-synth-" + spec);
  fs::remove_all(*out);
  std::string cmd = std::string(SIE_BIN) + " synth " + SIE_SPECS_DIR + "/" + spec +
                    ".yaml --json --out " + out->string() + " 2>" + out->string() + ".log";
  std::string text;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    pclose(p);
  }
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    std::ifstream log(out->string() + ".log");
    std::string l((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    ADD_FAILURE() << "sie synth " << spec << " printed no JSON; stderr:\n" << l;
  }
  return j;
}

// `binary`: the target binary const.json must name ("vmlinux" or the module's name).
void CheckSpec(const std::string& spec, const std::string& shipped,
               const std::string& binary = "vmlinux") {
  fs::path out;
  Json sum = Synthesize(spec, &out);
  ASSERT_FALSE(sum.is_discarded());
  for (const auto& f : sum["failed"])
    ADD_FAILURE() << spec << ": " << f["name"].get<std::string>()
                  << " failed: " << f["error"].get<std::string>();
  ASSERT_FALSE(sum["constants"].empty());
  for (const auto& c : sum["constants"]) {
    std::string name = c["name"];
    SCOPED_TRACE(name);
    // --json lists every artifact of the constant, and each is there: the runtime loads the
    // compiled stub, a C++ loader includes the skeleton and its typed view.
    std::set<std::string> kinds;
    for (const auto& f : c["files"]) {
      const std::string p = f;
      EXPECT_TRUE(fs::exists(p)) << p;
      for (const char* k : {"const.json", "stub.bpf.c", ".skel.h", ".hpp", ".bpf.o"})
        if (absl::EndsWith(p, k)) kinds.insert(k);
    }
    EXPECT_EQ(kinds.size(), 5u) << c["files"].dump();
    std::ifstream in(c["const_json"].get<std::string>());
    Json cj = Json::parse(in, nullptr, false);
    ASSERT_FALSE(cj.is_discarded());
    EXPECT_EQ(cj["target"]["binary"], binary);
    EXPECT_FALSE(cj["target"]["build_id"].get<std::string>().empty());
    const Json& spans = cj["spans"];
    ASSERT_GE(spans.size(), 1u);
    for (const auto& sp : spans) {
      std::string fn = sp["function"], eb = sp["expect_bytes"];
      uint64_t probe = sp["probe_offset"];
      SCOPED_TRACE(fn + "+" + std::to_string(probe));
      ASSERT_FALSE(eb.empty());
      auto bytes = FunctionBytes(shipped, fn, probe, eb.size() / 2);
      ASSERT_TRUE(bytes.has_value()) << fn << " not found in " << shipped;
      // '??' marks a relocation field of module code: any byte on disk.
      std::string got = Hex(*bytes);
      for (size_t k = 0; k < eb.size() && k < got.size(); ++k)
        if (eb[k] == '?') got[k] = '?';
      EXPECT_EQ(got, eb) << "expect_bytes differ from " << shipped;
    }
    auto it = Expectations().find(name);
    ASSERT_NE(it, Expectations().end()) << "no expectation for " << name << ": add one";
    // Each expected span is matched by a distinct span of the same function and kind whose
    // formula gives the source's value for an uncompiled V.
    std::vector<bool> used(spans.size(), false);
    for (const SpanExpect& e : it->second) {
      bool found = false;
      std::string seen;
      for (size_t i = 0; i < spans.size() && !found; ++i) {
        const Json& sp = spans[i];
        std::string fn = sp["function"], kind = sp["kind"], f = sp["formula"];
        if (fn.rfind(e.function, 0) != 0 || (!e.kind.empty() && kind != e.kind)) continue;
        if (e.v < cj["range"][0].get<int64_t>() || e.v > cj["range"][1].get<int64_t>()) continue;
        auto r = sie::artifact::EvalFormula(
            f, sie::artifact::FormulaVars{static_cast<uint64_t>(e.v), e.x, 0, e.y, e.z},
            sp["width"].get<int>());
        seen += " [" + fn + " " + kind + " " + f + (r.ok() ? " = " + std::to_string(*r) : "") + "]";
        if (r.ok() && *r == e.want && (!used[i] || it->second.size() > spans.size())) {
          found = true;
          used[i] = true;
        }
      }
      EXPECT_TRUE(found) << "no " << (e.kind.empty() ? "" : e.kind + " ") << "span in "
                         << e.function << "* evaluating to " << e.want << " at V=" << e.v
                         << ", X=" << e.x << "; spans:" << seen;
    }
  }
}

TEST(RealSpecs, BlkMaxRequestCount) { CheckSpec("blk_max_request_count", SIE_GUEST_VMLINUX); }
TEST(RealSpecs, MaxSoftirqRestart) { CheckSpec("max_softirq_restart", SIE_GUEST_VMLINUX); }
TEST(RealSpecs, ShrinkBatch) { CheckSpec("shrink_batch", SIE_GUEST_VMLINUX); }
TEST(RealSpecs, TcpCubicHystart) { CheckSpec("tcp_cubic_hystart", SIE_GUEST_VMLINUX); }
// A flags span of `add rax, imm` used as the compare (time_after(jiffies, t + V)).
TEST(RealSpecs, TcpMetricsTimeout) { CheckSpec("tcp_metrics_timeout", SIE_GUEST_VMLINUX); }
// module_ko in the spec: the module CMake builds, which the guest loads.
TEST(RealSpecs, SieTarget) {
  CheckSpec("sie_target", (fs::path(SIE_SPECS_DIR) / "../../build/kmod/sie_target.ko").string(),
            "sie_target");
}

// An in-tree module of a kernel spec (CONFIG_NET_SCH_FQ=m): the spans are in the -dbg package's
// unstripped sch_fq.ko, and the target is the module as /proc/kallsyms names it.
TEST(RealSpecs, SchFqModule) {
  CheckSpec("sch_fq", SIE_GUEST_DBG_MODULES "/kernel/net/sched/sch_fq.ko", "sch_fq");
}

// V2 and V3 both have another register allocation than V1: a pair near V1 is fitted.
TEST(RealSpecs, TcpInitCwnd) { CheckSpec("tcp_init_cwnd", SIE_GUEST_VMLINUX); }
// A signed division by V in a composite module (bfq.ko), its check value of another shape.
TEST(RealSpecs, Fib6MaxDepth) { CheckSpec("fib6_max_depth", SIE_GUEST_VMLINUX); }

TEST(RealSpecs, BfqWeightCoeffModule) {
  CheckSpec("bfq_weight_coeff", SIE_GUEST_DBG_MODULES "/kernel/block/bfq.ko", "bfq");
}

// Every spec has a test above: a new spec must get one.
// A sum of products by V over a division, in a module (tcp_illinois.ko).
TEST(RealSpecs, TcpIllinoisModule) {
  CheckSpec("tcp_illinois", SIE_GUEST_DBG_MODULES "/kernel/net/ipv4/tcp_illinois.ko",
            "tcp_illinois");
}
// A range of only the values built (a 2-bit field's count), in a module (tcp_bbr.ko).
TEST(RealSpecs, TcpBbrModule) {
  CheckSpec("tcp_bbr", SIE_GUEST_DBG_MODULES "/kernel/net/ipv4/tcp_bbr.ko", "tcp_bbr");
}

// A magic multiplier hoisted before a loop, in a module (bonding.ko).
TEST(RealSpecs, BondAlbModule) {
  CheckSpec("bond_alb", SIE_GUEST_DBG_MODULES "/kernel/drivers/net/bonding/bonding.ko", "bonding");
}

TEST(RealSpecs, EverySpecIsCovered) {
  std::vector<std::string> known = {"blk_max_request_count",
                                    "max_softirq_restart",
                                    "shrink_batch",
                                    "tcp_cubic_hystart",
                                    "sie_target",
                                    "sch_fq",
                                    "tcp_metrics_timeout",
                                    "tcp_init_cwnd",
                                    "bfq_weight_coeff",
                                    "fib6_max_depth",
                                    "tcp_illinois",
                                    "tcp_bbr",
                                    "bond_alb"};
  for (const auto& e : fs::directory_iterator(SIE_SPECS_DIR))
    if (e.path().extension() == ".yaml")
      EXPECT_NE(std::find(known.begin(), known.end(), e.path().stem().string()), known.end())
          << e.path() << " has no RealSpecs test";
}

}  // namespace
