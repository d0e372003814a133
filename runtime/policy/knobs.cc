#include "runtime/policy/knobs.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/unique_fd.h"

namespace sie::policy {
namespace fs = std::filesystem;

namespace {

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
struct ObjDeleter {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};

// The name a user knows the type by: the first typedef, or the base type (const/volatile off).
std::string TypeName(const btf* b, uint32_t id) {
  const btf_type* t = btf__type_by_id(b, id);
  while (t && (btf_is_const(t) || btf_is_volatile(t) || btf_is_restrict(t)))
    t = btf__type_by_id(b, t->type);
  if (!t) return "?";
  std::string name = btf__name_by_offset(b, t->name_off);
  if (btf_is_enum(t) || btf_is_enum64(t)) return name.empty() ? "enum" : "enum " + name;
  if (btf_is_struct(t)) return "struct " + name;
  if (btf_is_array(t)) {
    const struct btf_array* a = btf_array(t);
    return absl::StrCat(TypeName(b, a->type), "[", a->nelems, "]");
  }
  if (btf_is_ptr(t)) return "pointer";
  return name.empty() ? "?" : name;
}

void SetEncoding(const btf* b, uint32_t type_id, Knob& k) {
  const int id = btf__resolve_type(b, type_id);
  const btf_type* t = id < 0 ? nullptr : btf__type_by_id(b, id);
  if (t && btf_is_array(t) && k.size > 1) {  // char[N]: a string
    const int el = btf__resolve_type(b, btf_array(t)->type);
    const btf_type* e = el < 0 ? nullptr : btf__type_by_id(b, el);
    if (e && btf_is_int(e) && btf_int_bits(e) == 8 && btf_array(t)->nelems == k.size)
      k.enc = Knob::Enc::kString;
    return;
  }
  if (!t || k.size == 0 || k.size > 8) return;
  if (btf_is_int(t)) {
    if (btf_int_offset(t) != 0 || btf_int_bits(t) != k.size * 8) return;
    const uint8_t e = btf_int_encoding(t);
    k.enc = (e & BTF_INT_BOOL)     ? Knob::Enc::kBool
            : (e & BTF_INT_SIGNED) ? Knob::Enc::kSigned
                                   : Knob::Enc::kUnsigned;
  } else if (btf_is_enum(t)) {
    k.enc = Knob::Enc::kEnum;
    const struct btf_enum* e = btf_enum(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++e)
      k.enumerators.emplace_back(btf__name_by_offset(b, e->name_off),
                                 btf_kflag(t) ? int64_t{e->val} : int64_t{uint32_t(e->val)});
  } else if (btf_is_enum64(t)) {
    k.enc = Knob::Enc::kEnum;
    const struct btf_enum64* e = btf_enum64(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++e)
      k.enumerators.emplace_back(btf__name_by_offset(b, e->name_off),
                                 static_cast<int64_t>(btf_enum64_value(e)));
  }
}

bool EnumSigned(const Knob& k) {
  for (const auto& [n, v] : k.enumerators)
    if (v < 0) return true;
  return false;
}

// What a value of the knob's type may be, for hints.
std::string Accepts(const Knob& k) {
  const int bits = k.size * 8;
  switch (k.enc) {
    case Knob::Enc::kBool:
      return "true or false (also 1/0, yes/no, on/off)";
    case Knob::Enc::kUnsigned:
      return absl::StrCat("an integer 0..",
                          bits == 64 ? std::numeric_limits<uint64_t>::max() : (1ull << bits) - 1,
                          " (decimal or 0x hex)");
    case Knob::Enc::kSigned:
      return absl::StrCat(
          "an integer ",
          bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (bits - 1)), "..",
          bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1);
    case Knob::Enc::kEnum: {
      std::vector<std::string> names;
      for (const auto& [n, v] : k.enumerators) names.push_back(absl::StrCat(n, " (", v, ")"));
      return absl::StrCat("one of ", absl::StrJoin(names, ", "), ", or a number");
    }
    case Knob::Enc::kString:
      return absl::StrCat("a string of at most ", k.size - 1, " bytes");
    case Knob::Enc::kUnsupported:
      break;
  }
  return "nothing: only integer, bool, enum and string knobs can be set from the command line";
}

// Decimal or 0x hex, with a sign; false when it is not a number at all.
bool ParseInt(absl::string_view s, bool& neg, uint64_t& mag) {
  s = absl::StripAsciiWhitespace(s);
  neg = absl::ConsumePrefix(&s, "-");
  if (!neg) absl::ConsumePrefix(&s, "+");
  if (s.empty() || s[0] == '-' || s[0] == '+') return false;
  if (absl::ConsumePrefix(&s, "0x") || absl::ConsumePrefix(&s, "0X"))
    return !s.empty() && absl::SimpleHexAtoi(s, &mag);
  return absl::SimpleAtoi(s, &mag);
}

// The integer `text` for a knob of `bits` bits, or false when out of range.
bool FitInt(absl::string_view text, int bits, bool is_signed, uint64_t& out, bool& not_number) {
  bool neg = false;
  uint64_t mag = 0;
  not_number = !ParseInt(text, neg, mag);
  if (not_number) return false;
  if (!is_signed) {
    if (neg && mag != 0) return false;
    out = mag;
    return bits == 64 || mag < (1ull << bits);
  }
  const uint64_t lim = 1ull << (bits - 1);  // |min|; max is lim - 1
  if (neg ? mag > lim : mag >= lim) return false;
  out = neg ? ~mag + 1 : mag;
  return true;
}

std::string LittleEndian(uint64_t v, uint32_t size) {
  std::string b(size, '\0');
  for (uint32_t i = 0; i < size; ++i) b[i] = static_cast<char>(v >> (8 * i));
  return b;
}

absl::Status BadValue(const Knob& k, absl::string_view text, absl::string_view why) {
  return InvalidWithHint(
      absl::StrCat("value '", text, "' for knob ", k.name, " (", k.type, ") ", why),
      absl::StrCat(k.name, " takes ", Accepts(k)));
}

absl::StatusOr<uint64_t> ParseKnob(const Knob& k, absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (k.enc == Knob::Enc::kUnsupported)
    return InvalidWithHint(absl::StrCat("knob ", k.name, " has type ", k.type,
                                        ", which the command line cannot write"),
                           "declare it as an integer, bool, enum or char array");
  if (k.enc == Knob::Enc::kBool) {
    for (const char* t : {"true", "1", "yes", "on"})
      if (lower == t) return 1;
    for (const char* f : {"false", "0", "no", "off"})
      if (lower == f) return 0;
    return BadValue(k, text, "is not a bool");
  }
  if (k.enc == Knob::Enc::kEnum)
    for (const auto& [n, v] : k.enumerators)
      if (absl::EqualsIgnoreCase(n, text)) return static_cast<uint64_t>(v);
  const bool is_signed =
      k.enc == Knob::Enc::kSigned || (k.enc == Knob::Enc::kEnum && EnumSigned(k));
  uint64_t v = 0;
  bool not_number = false;
  if (FitInt(text, k.size * 8, is_signed, v, not_number)) return v;
  return BadValue(k, text,
                  not_number
                      ? (k.enc == Knob::Enc::kEnum ? "is not one of its values" : "is not a number")
                      : "is out of range");
}

// The var of a datasec called `name`, or nullptr.
const btf_var_secinfo* FindVar(const btf* b, int datasec, absl::string_view name) {
  const btf_type* sec = btf__type_by_id(b, datasec);
  const btf_var_secinfo* vi = btf_var_secinfos(sec);
  for (int i = 0; i < btf_vlen(sec); ++i, ++vi)
    if (name == btf__name_by_offset(b, btf__type_by_id(b, vi->type)->name_off)) return vi;
  return nullptr;
}

const char* SectionOf(KnobKind k) { return k == KnobKind::kSetting ? ".rodata" : kKnobSection; }

absl::Status WriteInitial(bpf_object* obj, const KnobSetting& s) {
  const btf* b = bpf_object__btf(obj);
  const char* section = SectionOf(s.knob.kind);
  const int sec = b ? btf__find_by_name_kind(b, section, BTF_KIND_DATASEC) : -1;
  bpf_map* m = bpf_object__find_map_by_name(obj, section);
  const btf_var_secinfo* vi = sec < 0 || !m ? nullptr : FindVar(b, sec, s.knob.name);
  size_t size = 0;
  const auto* data = m ? static_cast<const char*>(bpf_map__initial_value(m, &size)) : nullptr;
  if (!vi || !data || vi->size != s.bytes.size() || vi->offset + vi->size > size)
    return absl::InternalError(
        absl::StrCat("the policy object has no ", section, " variable ", s.knob.name));
  std::string copy(data, size);  // libbpf 1.1 hands out a const view: set a modified copy
  memcpy(copy.data() + vi->offset, s.bytes.data(), s.bytes.size());
  if (bpf_map__set_initial_value(m, copy.data(), copy.size()) != 0)
    return absl::InternalError(absl::StrCat("setting ", s.knob.name, ": ", strerror(errno)));
  return absl::OkStatus();
}

// Points the section's map at its pin. A map already pinned must have this object's layout:
// libbpf would refuse it with a bare "incompatible", and a stub with globals of its own in the
// section would shift the policy's.
absl::Status ShareSection(bpf_object* obj, const SharedSection& sh) {
  bpf_map* m = bpf_object__find_map_by_name(obj, sh.section);
  if (!m) return absl::OkStatus();
  UniqueFd pinned(bpf_obj_get(sh.pin));
  if (pinned.valid()) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(pinned.get(), &info, &len) == 0 &&
        info.value_size != bpf_map__value_size(m))
      return FailedWithHint(
          absl::StrCat("the policy's ", sh.section, " is ", info.value_size,
                       " bytes in its own object but ", bpf_map__value_size(m),
                       " in a constant's linked object: the globals cannot be shared"),
          absl::StrCat("the constant's stub must not define ", sh.section,
                       " variables (rebuild the stubs: sie consts --build)"));
  }
  if (bpf_map__set_pin_path(m, sh.pin) != 0)
    return absl::InternalError(absl::StrCat("pin path for ", sh.section, ": ", strerror(errno)));
  return absl::OkStatus();
}

struct LiveMap {
  UniqueFd fd;
  std::unique_ptr<btf, BtfDeleter> b;
  int datasec = -1;
  std::string value;
};

absl::StatusOr<LiveMap> OpenLive() {
  LiveMap l;
  l.fd.reset(bpf_obj_get(kKnobPin));
  if (!l.fd.valid())
    return ErrorWithHint(
        errno == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
        absl::StrCat("no running policy has live knobs (", kKnobPin, ": ", strerror(errno), ")"),
        errno == ENOENT ? "start one: sie-run POLICY.bpf.c --const NAME (its SIE_KNOB globals "
                          "are the live knobs; sie-run --describe POLICY.bpf.c lists them)"
                        : "run as root");
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(l.fd.get(), &info, &len) != 0)
    return absl::InternalError(absl::StrCat("reading ", kKnobPin, ": ", strerror(errno)));
  l.b.reset(btf__load_from_kernel_by_id(info.btf_id));
  const btf_type* t = l.b ? btf__type_by_id(l.b.get(), info.btf_value_type_id) : nullptr;
  if (!t || !btf_is_datasec(t))
    return absl::InternalError(absl::StrCat(kKnobPin, " has no BTF data section (not sie's?)"));
  l.datasec = info.btf_value_type_id;
  l.value.resize(info.value_size);
  const uint32_t key = 0;
  if (bpf_map_lookup_elem(l.fd.get(), &key, l.value.data()) != 0)
    return absl::InternalError(absl::StrCat("reading ", kKnobPin, ": ", strerror(errno)));
  return l;
}

}  // namespace

const char* KindName(KnobKind k) { return k == KnobKind::kSetting ? "setting" : "live"; }

absl::StatusOr<std::string> EncodeKnobValue(const Knob& k, absl::string_view text) {
  if (k.enc == Knob::Enc::kString) {
    if (text.size() >= k.size) return BadValue(k, text, "is too long");
    if (absl::StrContains(text, '\0')) return BadValue(k, text, "holds a NUL byte");
    std::string b(text);
    b.resize(k.size, '\0');
    return b;
  }
  auto v = ParseKnob(k, text);
  if (!v.ok()) return v.status();
  return LittleEndian(*v, k.size);
}

std::string FormatKnobValue(const Knob& k, const void* bytes) {
  if (k.enc == Knob::Enc::kString) {
    const char* s = static_cast<const char*>(bytes);
    return std::string(s, strnlen(s, k.size));
  }
  uint64_t v = 0;
  const auto* p = static_cast<const uint8_t*>(bytes);
  for (uint32_t i = 0; i < k.size && i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  const int bits = k.size * 8;
  const bool sign = k.enc == Knob::Enc::kSigned || (k.enc == Knob::Enc::kEnum && EnumSigned(k));
  const int64_t sv =
      bits < 64 && sign && (v >> (bits - 1)) ? int64_t(v | (~0ull << bits)) : int64_t(v);
  switch (k.enc) {
    case Knob::Enc::kBool:
      return v ? "true" : "false";
    case Knob::Enc::kEnum:
      for (const auto& [n, e] : k.enumerators)
        if (e == sv) return n;
      return absl::StrCat(sv);
    case Knob::Enc::kSigned:
      return absl::StrCat(sv);
    case Knob::Enc::kUnsigned:
      return absl::StrCat(v);
    case Knob::Enc::kString:
    case Knob::Enc::kUnsupported:
      break;
  }
  return absl::StrCat("(", k.size, " bytes)");
}

std::vector<Knob> KnobsOfDatasec(const btf* b, int datasec, KnobKind kind, const void* data,
                                 size_t size) {
  std::vector<Knob> out;
  const btf_type* sec = btf__type_by_id(b, datasec);
  const btf_var_secinfo* vi = btf_var_secinfos(sec);
  for (int i = 0; i < btf_vlen(sec); ++i, ++vi) {
    const btf_type* var = btf__type_by_id(b, vi->type);
    if (!btf_is_var(var)) continue;
    // Settings are the policy's globals; a static (a local static, sie_log's format) is not.
    if (kind == KnobKind::kSetting && btf_var(var)->linkage != BTF_VAR_GLOBAL_ALLOCATED) continue;
    Knob k;
    k.name = btf__name_by_offset(b, var->name_off);
    k.kind = kind;
    k.offset = vi->offset;
    k.size = vi->size;
    k.type = TypeName(b, var->type);
    SetEncoding(b, var->type, k);
    if (data && vi->offset + vi->size <= size)
      k.value = FormatKnobValue(k, static_cast<const char*>(data) + vi->offset);
    out.push_back(std::move(k));
  }
  return out;
}

absl::StatusOr<std::vector<Knob>> KnobsOfObject(bpf_object* obj) {
  const btf* b = bpf_object__btf(obj);
  std::vector<Knob> out;
  if (!b) return out;
  for (KnobKind kind : {KnobKind::kSetting, KnobKind::kLive}) {
    const char* section = SectionOf(kind);
    const int sec = btf__find_by_name_kind(b, section, BTF_KIND_DATASEC);
    if (sec < 0) continue;
    bpf_map* m = bpf_object__find_map_by_name(obj, section);
    size_t size = 0;
    const void* data = m ? bpf_map__initial_value(m, &size) : nullptr;
    for (Knob& k : KnobsOfDatasec(b, sec, kind, data, size)) out.push_back(std::move(k));
  }
  return out;
}

std::string KnobList(const std::vector<Knob>& knobs) {
  std::vector<std::string> parts;
  for (const Knob& k : knobs)
    parts.push_back(absl::StrCat(k.name, " (", KindName(k.kind), ", ", k.type, ")"));
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<std::vector<KnobSetting>> ResolveSettings(const std::vector<Knob>& knobs,
                                                         const std::vector<std::string>& sets,
                                                         absl::string_view what) {
  std::vector<KnobSetting> out;
  for (const std::string& s : sets) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return InvalidWithHint(absl::StrCat("--set ", s, ": not NAME=VALUE"),
                             "e.g. --set rtt_threshold_us=20000");
    const std::string name = s.substr(0, eq);
    const Knob* k = nullptr;
    for (const Knob& c : knobs)
      if (c.name == name) k = &c;
    if (!k)
      return InvalidWithHint(
          absl::StrCat("--set ", s, ": ", what, " has no knob '", name, "'"),
          knobs.empty() ? "this policy declares none: a `const volatile` global is a start "
                          "setting, SIE_KNOB(type, name, default) a live knob"
                        : absl::StrCat("its knobs: ", KnobList(knobs)));
    auto bytes = EncodeKnobValue(*k, s.substr(eq + 1));
    if (!bytes.ok()) return WithContext(bytes.status(), absl::StrCat("--set ", s));
    out.push_back({*k, *bytes});
  }
  return out;
}

absl::StatusOr<std::vector<KnobSetting>> ResolveSettings(const fs::path& obj,
                                                         const std::vector<std::string>& sets,
                                                         absl::string_view what) {
  if (sets.empty()) return std::vector<KnobSetting>{};
  std::unique_ptr<bpf_object, ObjDeleter> o(bpf_object__open_file(obj.c_str(), nullptr));
  if (!o) return absl::InternalError(absl::StrCat("opening ", obj.string(), ": ", strerror(errno)));
  auto knobs = KnobsOfObject(o.get());
  if (!knobs.ok()) return knobs.status();
  return ResolveSettings(*knobs, sets, what);
}

absl::Status PrepareKnobs(bpf_object* obj, const std::vector<KnobSetting>& settings, bool share) {
  for (const KnobSetting& s : settings)
    if (auto st = WriteInitial(obj, s); !st.ok()) return st;
  if (!share) return absl::OkStatus();
  for (const SharedSection& sh : kSharedSections)
    if (auto st = ShareSection(obj, sh); !st.ok()) return st;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Knob>> LiveKnobs() {
  auto l = OpenLive();
  if (!l.ok()) return l.status();
  return KnobsOfDatasec(l->b.get(), l->datasec, KnobKind::kLive, l->value.data(), l->value.size());
}

absl::StatusOr<Knob> SetLiveKnob(absl::string_view name, absl::string_view value) {
  auto l = OpenLive();
  if (!l.ok()) return l.status();
  std::vector<Knob> knobs =
      KnobsOfDatasec(l->b.get(), l->datasec, KnobKind::kLive, l->value.data(), l->value.size());
  const Knob* k = nullptr;
  for (const Knob& c : knobs)
    if (c.name == name) k = &c;
  if (!k)
    return InvalidWithHint(
        absl::StrCat("the running policy has no live knob '", name, "'"),
        absl::StrCat(knobs.empty() ? "it declares none (SIE_KNOB)"
                                   : absl::StrCat("its live knobs: ", KnobList(knobs)),
                     "; start settings (const volatile) are fixed while it "
                     "runs: restart sie-run with --set NAME=VALUE"));
  auto bytes = EncodeKnobValue(*k, value);
  if (!bytes.ok()) return bytes.status();
  memcpy(l->value.data() + k->offset, bytes->data(), bytes->size());
  const uint32_t key = 0;
  if (bpf_map_update_elem(l->fd.get(), &key, l->value.data(), BPF_ANY) != 0)
    return absl::InternalError(absl::StrCat("writing ", kKnobPin, ": ", strerror(errno)));
  return *k;
}

}  // namespace sie::policy
