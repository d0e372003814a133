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
    ZyanU64 target = 0;
    if (zi.meta.category == ZYDIS_CATEGORY_RET || zi.mnemonic == ZYDIS_MNEMONIC_IRETQ) {
      in.flow = Flow::kRet;
    } else if (zi.mnemonic == ZYDIS_MNEMONIC_INT3 || zi.mnemonic == ZYDIS_MNEMONIC_UD2 ||
               zi.mnemonic == ZYDIS_MNEMONIC_INT) {
      in.flow = Flow::kStop;
    } else if (branch && zi.operand_count_visible == 1 &&
               ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
               ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&zi, &ops[0], addr, &target))) {
      in.flow = zi.meta.category == ZYDIS_CATEGORY_UNCOND_BR ? Flow::kJmp : Flow::kJcc;
      in.target = target;
    } else if (branch) {
      in.flow = Flow::kIndirect;
    }
    return in;
  }

 private:
  ZydisDecoder d_;
};

}  // namespace

namespace {

constexpr char kHint[] = "use --mode 1 (per-task), which needs no exits";

// The two walks over a function's code that find a span's exits and check that the span is
// only entered at its entry.
class SpanWalk {
 public:
  SpanWalk(const Decoder& dec, absl::string_view code, uint64_t code_addr, uint64_t start,
           uint64_t end)
      : dec_(dec),
        code_(code),
        code_addr_(code_addr),
        code_end_(code_addr + code.size()),
        start_(start),
        end_(end) {}

  // 1. The span: every instruction reachable from its entry without leaving it. Its exits: a
  // ret or jmp inside (counted before it runs), or the first address outside that a
  // fall-through or a conditional jump out reaches.
  absl::StatusOr<std::set<uint64_t>> Exits() {
    work_ = {start_};
    while (!work_.empty()) {
      const uint64_t a = work_.back();
      work_.pop_back();
      if (!seen_.insert(a).second) continue;
      auto in = dec_.Decode(code_, code_addr_, a);
      if (!in.ok()) return FailedWithHint(std::string(in.status().message()), kHint);
      if (a + in->size > end_)
        return FailedWithHint(
            absl::StrCat("the instruction at ", Where(a), " crosses the span's end ", Where(end_)),
            "the safe span does not end on an instruction boundary");
      if (auto st = Step(a, *in); !st.ok()) return st;
    }
    return exits_;
  }

  // 2. The rest of the function must not enter the span past its entry (a task there would be
  // inside, uncounted) nor reach an exit that lies outside the span (a task that never was
  // inside would count one down). Best effort past undecodable bytes or indirect jumps: those
  // paths stop, they are not guessed.
  absl::Status CheckOutside(const std::vector<uint64_t>& exits) {
    std::set<uint64_t> outside_exits;
    for (uint64_t e : exits)
      if (!Inside(e)) outside_exits.insert(e);
    seen_.clear();
    work_.assign({code_addr_});
    while (!work_.empty()) {
      const uint64_t a = work_.back();
      work_.pop_back();
      if (a < code_addr_ || a >= code_end_ || !seen_.insert(a).second) continue;
      auto in = dec_.Decode(code_, code_addr_, a);
      if (!in.ok()) continue;
      std::vector<uint64_t> next;
      if (in->flow == Flow::kNext || in->flow == Flow::kJcc) next.push_back(a + in->size);
      if (in->flow == Flow::kJmp || in->flow == Flow::kJcc) next.push_back(in->target);
      for (uint64_t n : next) {
        if (!Inside(a)) {
          if (n > start_ && n < end_)
            return FailedWithHint(absl::StrCat("code outside the span (", Where(a),
                                               ") enters it at ", Where(n), ", past its entry"),
                                  kHint);
          if (outside_exits.count(n))
            return FailedWithHint(
                absl::StrCat("the span's exit ", Where(n),
                             " is also reached from outside the span (", Where(a), ")"),
                kHint);
        }
        work_.push_back(n);
      }
    }
    return absl::OkStatus();
  }

  std::string Where(uint64_t a) const {
    return a >= code_addr_ && a < code_end_ ? absl::StrCat("+0x", absl::Hex(a - code_addr_))
                                            : absl::StrCat("0x", absl::Hex(a));
  }

 private:
  bool Inside(uint64_t a) const { return a >= start_ && a < end_; }

  // The successors of the instruction at `a` inside the span, or its exits.
  absl::Status Step(uint64_t a, const Insn& in) {
    switch (in.flow) {
      case Flow::kNext:
        return Follow(a, a + in.size);
      case Flow::kRet:
        exits_.insert(a);
        return absl::OkStatus();
      case Flow::kJmp:
        if (Inside(in.target)) return Follow(a, in.target);
        exits_.insert(a);  // a tail call or the return thunk: counted before it runs
        return absl::OkStatus();
      case Flow::kJcc:
        if (!Inside(in.target))
          exits_.insert(in.target);
        else if (auto st = Follow(a, in.target); !st.ok())
          return st;
        return Follow(a, a + in.size);
      case Flow::kIndirect:
        return FailedWithHint(
            absl::StrCat("an indirect jump at ", Where(a), " leaves the span to an unknown place"),
            kHint);
      case Flow::kStop:
        break;
    }
    return absl::OkStatus();
  }

  absl::Status Follow(uint64_t from, uint64_t to) {
    if (to == start_)
      return FailedWithHint(absl::StrCat("the span's entry ", Where(start_),
                                         " is also the target "
                                         "of a jump inside it (",
                                         Where(from), ")"),
                            kHint);
    if (to == end_)
      exits_.insert(end_);  // falls out of the span
    else if (!seen_.count(to))
      work_.push_back(to);
    return absl::OkStatus();
  }

  const Decoder& dec_;
  const absl::string_view code_;
  const uint64_t code_addr_, code_end_, start_, end_;
  std::set<uint64_t> exits_, seen_;
  std::vector<uint64_t> work_;
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
  SpanWalk walk(dec, code, code_addr, start, end);
  auto exits = walk.Exits();
  if (!exits.ok()) return exits.status();
  if (exits->empty())
    return FailedWithHint(absl::StrCat("the span at ", walk.Where(start), " has no exit"), kHint);
  if (exits->size() > max_exits)
    return FailedWithHint(absl::StrCat("the span at ", walk.Where(start), " has ", exits->size(),
                                       " exits (sie_consistency takes ", max_exits, ")"),
                          kHint);
  GlobalSpan span{start, end, start, {exits->begin(), exits->end()}};
  if (auto st = walk.CheckOutside(span.exits); !st.ok()) return st;
  return span;
}

}  // namespace sie::loader
