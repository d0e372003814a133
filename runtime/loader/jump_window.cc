#include "runtime/loader/jump_window.h"

#include <Zydis/Zydis.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/elf/kprobe_rules.h"

namespace sie::loader {

absl::StatusOr<int> LiveJumpWindow(absl::string_view code) {
  ZydisDecoder d;
  ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  size_t len = 0;
  while (len < 5) {
    ZydisDecodedInstruction zi;
    if (len >= code.size() ||
        !ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&d, nullptr, code.data() + len,
                                                    code.size() - len, &zi)) ||
        len + zi.length > code.size())
      return absl::FailedPreconditionError(
          absl::StrCat("no whole instructions for the 5 bytes within the ", code.size(),
                       " the kernel leaves unpatched"));
    const absl::string_view insn = code.substr(len, zi.length);
    // An int3 is another probe's (or padding): opt.c's __copy_instruction refuses it.
    if (static_cast<uint8_t>(insn[0]) == 0xcc || !elf::KprobeCanBoost(insn))
      return absl::FailedPreconditionError(absl::StrCat("the instruction at +", len, " (",
                                                        absl::BytesToHexString(insn),
                                                        ") cannot run out of line"));
    len += zi.length;
  }
  return static_cast<int>(len);
}

}  // namespace sie::loader
