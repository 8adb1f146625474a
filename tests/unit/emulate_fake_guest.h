// A fake guest for the emulator's host tests (hv/emulate/): byte-addressed guest-physical
// memory, a page map linear -> guest-physical (identity unless a page is mapped or marked not
// present), and a log of every physical access the emulator makes, so tests can check how an
// access was split and in which order reads and writes happened.
#pragma once

#include <stdint.h>

#include <map>
#include <set>
#include <vector>

#include "hv/emulate/execute.h"

namespace emu_test {

struct PhysAccess {
  bool write;
  uint64_t gpa;
  unsigned size;
  uint64_t value;
};

class FakeGuest final : public hv::emu::GuestAccess {
 public:
  std::map<uint64_t, uint8_t> phys;       // guest-physical bytes (absent: 0)
  std::map<uint64_t, uint64_t> page_map;  // linear page number -> guest-physical page number
  std::set<uint64_t> not_present;         // linear page numbers that do not translate
  std::set<uint64_t> no_ram;              // guest-physical page numbers that are not RAM (no fetch)
  std::vector<PhysAccess> log;
  uint32_t last_error_code = 0;

  Translation translate(uint64_t linear, hv::emu::AccessKind kind, unsigned cpl) override {
    Translation t;
    const uint64_t page = linear >> 12;
    if (not_present.count(page)) {
      t.fault.kind = hv::emu::Fault::Kind::page_fault;
      t.fault.vector = 14;
      t.fault.has_error = true;
      t.fault.error_code = (kind == hv::emu::AccessKind::write ? hv::emu::pferr::kWrite : 0) |
                           (kind == hv::emu::AccessKind::fetch ? hv::emu::pferr::kFetch : 0) |
                           (cpl == 3 ? hv::emu::pferr::kUser : 0);
      t.fault.linear = linear;
      return t;
    }
    const auto it = page_map.find(page);
    t.gpa = ((it != page_map.end() ? it->second : page) << 12) | (linear & 0xFFF);
    return t;
  }
  void read_phys(uint64_t gpa, unsigned size, uint8_t* out) override {
    uint64_t v = 0;
    for (unsigned k = 0; k < size; k++) {
      out[k] = byte(gpa + k);
      v |= static_cast<uint64_t>(out[k]) << (8 * k);
    }
    log.push_back({false, gpa, size, v});
  }
  void write_phys(uint64_t gpa, unsigned size, const uint8_t* in) override {
    uint64_t v = 0;
    for (unsigned k = 0; k < size; k++) {
      phys[gpa + k] = in[k];
      v |= static_cast<uint64_t>(in[k]) << (8 * k);
    }
    log.push_back({true, gpa, size, v});
  }
  bool fetch_phys(uint64_t gpa, unsigned size, uint8_t* out) override {
    if (no_ram.count(gpa >> 12)) return false;
    for (unsigned k = 0; k < size; k++) out[k] = byte(gpa + k);
    return true;
  }

  uint8_t byte(uint64_t gpa) const {
    const auto it = phys.find(gpa);
    return it == phys.end() ? 0 : it->second;
  }
  void put(uint64_t gpa, const std::vector<uint8_t>& bytes) {
    for (size_t k = 0; k < bytes.size(); k++) phys[gpa + k] = bytes[k];
  }
  void put_le(uint64_t gpa, uint64_t v, unsigned size) {
    for (unsigned k = 0; k < size; k++) phys[gpa + k] = static_cast<uint8_t>(v >> (8 * k));
  }
  uint64_t get_le(uint64_t gpa, unsigned size) const {
    uint64_t v = 0;
    for (unsigned k = 0; k < size; k++) v |= static_cast<uint64_t>(byte(gpa + k)) << (8 * k);
    return v;
  }
};

}  // namespace emu_test
