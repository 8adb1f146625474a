// Page-split guest-linear accesses (see memory.h).
#include "hv/emulate/memory.h"

namespace hv::emu {

namespace {

constexpr uint64_t kPage = 4096;

struct Part {
  uint64_t gpa;
  unsigned offset;  // into the access
  unsigned size;
};

// Translates the (at most two) parts of [linear, linear + size). Returns the fault of the
// first part that does not translate.
Fault translate_parts(GuestAccess& g, uint64_t linear, unsigned size, AccessKind kind, unsigned cpl, uint64_t lin_mask,
                      Part parts[2], unsigned* count) {
  unsigned done = 0, n = 0;
  while (done < size) {
    const uint64_t la = (linear + done) & lin_mask;
    const unsigned room = static_cast<unsigned>(kPage - (la & (kPage - 1)));
    const unsigned len = size - done < room ? size - done : room;
    const GuestAccess::Translation t = g.translate(la, kind, cpl);
    if (t.fault) return t.fault;
    parts[n++] = Part{t.gpa, done, len};
    done += len;
  }
  *count = n;
  return Fault{};
}

}  // namespace

Fault read_linear(GuestAccess& g, uint64_t linear, unsigned size, unsigned cpl, uint64_t lin_mask, uint64_t* value) {
  Part parts[2];
  unsigned n = 0;
  if (Fault f = translate_parts(g, linear, size, AccessKind::read, cpl, lin_mask, parts, &n)) return f;
  uint8_t buf[8] = {};
  for (unsigned k = 0; k < n; k++) g.read_phys(parts[k].gpa, parts[k].size, buf + parts[k].offset);
  uint64_t v = 0;
  for (unsigned k = 0; k < size; k++) v |= static_cast<uint64_t>(buf[k]) << (8 * k);
  *value = v;
  return Fault{};
}

Fault write_linear(GuestAccess& g, uint64_t linear, unsigned size, unsigned cpl, uint64_t lin_mask, uint64_t value) {
  Part parts[2];
  unsigned n = 0;
  if (Fault f = translate_parts(g, linear, size, AccessKind::write, cpl, lin_mask, parts, &n)) return f;
  uint8_t buf[8];
  for (unsigned k = 0; k < 8; k++) buf[k] = static_cast<uint8_t>(value >> (8 * k));
  for (unsigned k = 0; k < n; k++) g.write_phys(parts[k].gpa, parts[k].size, buf + parts[k].offset);
  return Fault{};
}

unsigned fetch_linear(GuestAccess& g, uint64_t linear, unsigned max, unsigned cpl, uint64_t lin_mask, uint8_t* out,
                      Fault* fault) {
  unsigned got = 0;
  while (got < max) {
    const uint64_t la = (linear + got) & lin_mask;
    const unsigned room = static_cast<unsigned>(kPage - (la & (kPage - 1)));
    const unsigned len = max - got < room ? max - got : room;
    const GuestAccess::Translation t = g.translate(la, AccessKind::fetch, cpl);
    if (t.fault) {
      *fault = t.fault;
      break;
    }
    if (!g.fetch_phys(t.gpa, len, out + got)) {
      Fault f;
      f.kind = Fault::Kind::stop;
      f.linear = la;
      f.why = "instruction bytes outside guest RAM";
      *fault = f;
      break;
    }
    got += len;
  }
  return got;
}

}  // namespace hv::emu
