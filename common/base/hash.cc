#include "common/base/hash.h"

#include <xxhash.h>

#include "absl/strings/str_format.h"

namespace sie {

std::string ContentHash(absl::string_view data) {
  const XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  return absl::StrFormat("%016x%016x", h.high64, h.low64);
}

uint64_t Fnv1a64(absl::string_view data, uint64_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string Hex64(uint64_t v) { return absl::StrFormat("%016x", v); }

}  // namespace sie
