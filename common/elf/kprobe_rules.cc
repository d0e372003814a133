#include "common/elf/kprobe_rules.h"

#include <cstdint>

namespace sie::elf {
namespace {

// core.c twobyte_is_boostable: bit b of row r is opcode 0x0f, r * 16 + b.
constexpr uint16_t kTwoByteBoostable[16] = {
    0b0000001101001100, 0b1000000000000000, 0b0000000000001111, 0b0000000000000010,
    0b1111111111111111, 0b0000000000000000, 0b1100111111111111, 0b1100000011110000,
    0b0000000000000000, 0b1111111111111111, 0b1011101100111011, 0b1111100011111111,
    0b1111111100000011, 0b1011101100101110, 0b1011101100100110, 0b0111011100101110,
};

bool IsLegacyPrefix(uint8_t b) {
  switch (b) {
    case 0x26:
    case 0x2e:
    case 0x36:
    case 0x3e:
    case 0x64:
    case 0x65:
    case 0x66:
    case 0x67:
    case 0xf0:
    case 0xf2:
    case 0xf3:
      return true;
    default:
      return false;
  }
}

}  // namespace

// core.c can_boost for one instruction's encoding (the exception-table part is the caller's).
bool KprobeCanBoost(absl::string_view bytes) {
  size_t i = 0;
  for (; i < bytes.size() && IsLegacyPrefix(static_cast<uint8_t>(bytes[i])); ++i) {
    const uint8_t p = static_cast<uint8_t>(bytes[i]);
    if (p == 0x2e || p == 0x67) return false;  // CS override, address-size override
  }
  if (i < bytes.size() && (static_cast<uint8_t>(bytes[i]) & 0xf0) == 0x40) ++i;  // REX
  if (i >= bytes.size()) return false;
  const uint8_t op = static_cast<uint8_t>(bytes[i]);
  if (op == 0xc4 || op == 0xc5 || op == 0x62) return false;  // VEX/EVEX (or bound): not boosted
  if (op == 0x0f) {
    if (i + 1 >= bytes.size()) return false;
    const uint8_t op2 = static_cast<uint8_t>(bytes[i + 1]);
    if (op2 == 0x38 || op2 == 0x3a) return false;  // three-byte opcodes
    return (kTwoByteBoostable[op2 >> 4] >> (op2 & 15)) & 1;
  }
  const int reg = i + 1 < bytes.size() ? (static_cast<uint8_t>(bytes[i + 1]) >> 3) & 7 : -1;
  if ((op >= 0x70 && op <= 0x7f) || op == 0x9a || (op >= 0xcc && op <= 0xce) || op == 0xd6 ||
      (op >= 0xd8 && op <= 0xdf) || (op >= 0xe0 && op <= 0xe3) || op == 0xe8 || op == 0xe9 ||
      op == 0xeb || op == 0xf4)
    return false;
  if (op == 0xc0 || op == 0xc1 || (op >= 0xd0 && op <= 0xd3)) return reg != 6;
  if (op == 0xf6 || op == 0xf7) return reg != 1;
  if (op == 0xfe) return reg == 0 || reg == 1;
  if (op == 0xff) return reg == 0 || reg == 1 || reg == 4;
  return true;
}

}  // namespace sie::elf
