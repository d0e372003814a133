#include "runtime/loader/global_spans.h"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"

namespace sie::loader {
namespace {

// What an instruction does to control flow, as far as spans care.
enum class Flow {
  kNext,      // falls through (calls too: the callee returns here)
  kRet,       // leaves the function
  kJmp,       // unconditional jump to `target`
  kJcc,       // conditional jump to `target`, or falls through
  kIndirect,  // jump through a register or memory: target unknown
  kStop,      // int3 / ud2: a trap (BUG(), padding), never falls through
};

struct Insn {
  uint64_t addr = 0, size = 0, target = 0;
  Flow flow = Flow::kNext;
};

// Zydis: a decoder only (lengths, branch kinds and targets), which is all a walk of live code
// needs; the synthesizer's full disassembler (Capstone) stays on the build host.
class Decoder {
 public:
  Decoder() { ZydisDecoderInit(&d_, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64); }

  // Decodes the instruction at `addr` (an error when the bytes are not code).
  absl::StatusOr<Insn> Decode(absl::string_view code, uint64_t code_addr, uint64_t addr) const {
    if (addr < code_addr || addr >= code_addr + code.size())
      return absl::OutOfRangeError(
          absl::StrCat("0x", absl::Hex(addr), " is outside the code read"));
    const size_t off = addr - code_addr;
    ZydisDecodedInstruction zi;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&d_, code.data() + off, code.size() - off, &zi, ops)))
      return absl::DataLossError(
          absl::StrCat("cannot decode the instruction at 0x", absl::Hex(addr)));
    Insn in;
    in.addr = addr;
    in.size = zi.length;
    const bool branch =
        zi.meta.category == ZYDIS_CATEGORY_COND_BR || zi.meta.category == ZYDIS_CATEGORY_UNCOND_BR;
    if (zi.meta.category == ZYDIS_CATEGORY_RET || zi.mnemonic == ZYDIS_MNEMONIC_IRETQ) {
      in.flow = Flow::kRet;
    } else if (zi.mnemonic == ZYDIS_MNEMONIC_INT3 || zi.mnemonic == ZYDIS_MNEMONIC_UD2 ||
               zi.mnemonic == ZYDIS_MNEMONIC_INT) {
      in.flow = Flow::kStop;
    } else if (branch) {
      ZyanU64 target = 0;
      if (zi.operand_count_visible == 1 && ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
          ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&zi, &ops[0], addr, &target))) {
        in.flow = zi.meta.category == ZYDIS_CATEGORY_UNCOND_BR ? Flow::kJmp : Flow::kJcc;
        in.target = target;
      } else {
        in.flow = Flow::kIndirect;
      }
    }
    return in;
  }

 private:
  ZydisDecoder d_;
};

}  // namespace

absl::StatusOr<GlobalSpan> AnalyzeGlobalSpan(absl::string_view code, uint64_t code_addr,
                                             uint64_t start, uint64_t end, size_t max_exits) {
  const uint64_t code_end = code_addr + code.size();
  if (start < code_addr || end > code_end || start >= end)
    return absl::InvalidArgumentError(
        absl::StrCat("span [0x", absl::Hex(start), ", 0x", absl::Hex(end),
                     ") is not inside the function's code [0x", absl::Hex(code_addr), ", 0x",
                     absl::Hex(code_end), ")"));
  const Decoder dec;
  auto inside = [&](uint64_t a) { return a >= start && a < end; };
  auto where = [&](uint64_t a) {
    return a >= code_addr && a < code_end ? absl::StrCat("+0x", absl::Hex(a - code_addr))
                                          : absl::StrCat("0x", absl::Hex(a));
  };
  const char* kHint = "use --mode 1 (per-task), which needs no exits";

  // 1. The span: every instruction reachable from its entry without leaving it.
  GlobalSpan span{start, end, start, {}};
  std::set<uint64_t> exits, seen;
  std::vector<uint64_t> work{start};
  auto follow = [&](uint64_t from, uint64_t to) -> absl::Status {
    if (to == start)
      return FailedWithHint(absl::StrCat("the span's entry ", where(start),
                                         " is also the target "
                                         "of a jump inside it (",
                                         where(from), ")"),
                            kHint);
    if (to == end)
      exits.insert(end);  // falls out of the span
    else if (!seen.count(to))
      work.push_back(to);
    return absl::OkStatus();
  };
  while (!work.empty()) {
    const uint64_t a = work.back();
    work.pop_back();
    if (!seen.insert(a).second) continue;
    auto in = dec.Decode(code, code_addr, a);
    if (!in.ok()) return FailedWithHint(std::string(in.status().message()), kHint);
    if (a + in->size > end)
      return FailedWithHint(
          absl::StrCat("the instruction at ", where(a), " crosses the span's end ", where(end)),
          "the safe span does not end on an instruction boundary");
    absl::Status st;
    switch (in->flow) {
      case Flow::kNext:
        st = follow(a, a + in->size);
        break;
      case Flow::kRet:
        exits.insert(a);
        break;
      case Flow::kJmp:
        if (inside(in->target))
          st = follow(a, in->target);
        else
          exits.insert(a);  // a tail call or the return thunk: counted before it runs
        break;
      case Flow::kJcc:
        if (inside(in->target))
          st = follow(a, in->target);
        else
          exits.insert(in->target);
        if (st.ok()) st = follow(a, a + in->size);
        break;
      case Flow::kIndirect:
        return FailedWithHint(
            absl::StrCat("an indirect jump at ", where(a), " leaves the span to an unknown place"),
            kHint);
      case Flow::kStop:
        break;
    }
    if (!st.ok()) return st;
  }
  if (exits.empty())
    return FailedWithHint(absl::StrCat("the span at ", where(start), " has no exit"), kHint);
  if (exits.size() > max_exits)
    return FailedWithHint(absl::StrCat("the span at ", where(start), " has ", exits.size(),
                                       " exits (sie_consistency takes ", max_exits, ")"),
                          kHint);
  span.exits.assign(exits.begin(), exits.end());

  // 2. The rest of the function must not enter the span past its entry (a task there would be
  // inside, uncounted) nor reach an exit that lies outside the span (a task that never was
  // inside would count one down). Best effort past undecodable bytes or indirect jumps: those
  // paths stop, they are not guessed.
  std::set<uint64_t> outside_exits;
  for (uint64_t e : span.exits)
    if (!inside(e)) outside_exits.insert(e);
  seen.clear();
  work.assign({code_addr});
  while (!work.empty()) {
    const uint64_t a = work.back();
    work.pop_back();
    if (a < code_addr || a >= code_end || !seen.insert(a).second) continue;
    auto in = dec.Decode(code, code_addr, a);
    if (!in.ok()) continue;
    std::vector<uint64_t> next;
    if (in->flow == Flow::kNext || in->flow == Flow::kJcc) next.push_back(a + in->size);
    if (in->flow == Flow::kJmp || in->flow == Flow::kJcc) next.push_back(in->target);
    for (uint64_t n : next) {
      if (!inside(a)) {
        if (n > start && n < end)
          return FailedWithHint(absl::StrCat("code outside the span (", where(a), ") enters it at ",
                                             where(n), ", past its entry"),
                                kHint);
        if (outside_exits.count(n))
          return FailedWithHint(
              absl::StrCat("the span's exit ", where(n), " is also reached from outside the span (",
                           where(a), ")"),
              kHint);
      }
      work.push_back(n);
    }
  }
  return span;
}

}  // namespace sie::loader
