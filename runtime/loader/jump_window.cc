#include "runtime/loader/jump_window.h"

#include <Zydis/Zydis.h>

#include "common/elf/kprobe_rules.h"

namespace sie::loader {

std::optional<int> LiveJumpWindow(absl::string_view code) {
  ZydisDecoder d;
  ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  size_t len = 0;
  while (len < 5) {
    ZydisDecodedInstruction zi;
    if (len >= code.size() || !ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
                                  &d, nullptr, code.data() + len, code.size() - len, &zi)))
      return std::nullopt;
    const absl::string_view insn = code.substr(len, zi.length);
    // An int3 is another probe's (or padding): opt.c's __copy_instruction refuses it.
    if (len + zi.length > code.size() || static_cast<uint8_t>(insn[0]) == 0xcc ||
        !elf::KprobeCanBoost(insn))
      return std::nullopt;
    len += zi.length;
  }
  return static_cast<int>(len);
}

}  // namespace sie::loader
