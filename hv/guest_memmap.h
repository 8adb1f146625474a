// The memory map hv hands a Linux guest (the e820 table of the zero page, the memmap of PVH's
// start info): built from the guest's RAM ranges (hv's memslots), with the PC's legacy holes
// reserved. Pure code, host-tested (tests/unit/guest_memmap_test.cpp).
//
// What a guest with RAM [0, R) sees (the layout the multiboot map already gives, hv/multiboot_info.h):
//   [0, 0x9F000)         RAM (type 1)
//   [0x9F000, 0x100000)  reserved (type 2): EBDA, VGA window, option and BIOS ROMs; hv keeps
//                        its ACPI and MP tables at 0xF0000 (hv/devices/acpi.h), inside it, so
//                        the guest never takes that page for RAM
//   [0x100000, R)        RAM
// A RAM range elsewhere (above 4 GiB, say) is passed on as it is, sorted by address; ranges
// that touch are merged.
#pragma once

#include <stdint.h>

namespace hv {

// The e820 entry: its layout is the zero page's (struct boot_e820_entry, 20 bytes packed) and
// its types are shared with PVH's hvm_memmap_table_entry.
struct [[gnu::packed]] E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
static_assert(sizeof(E820Entry) == 20);
inline constexpr uint32_t kE820Ram = 1, kE820Reserved = 2;

inline constexpr uint64_t kLegacyHoleStart = 0x9F000, kLegacyHoleEnd = 0x100000;

struct RamRange {
  uint64_t gpa, bytes;
};

// Writes the map into out[0..max) and returns the entry count; 0 when it does not fit in
// `max` entries, when there is no RAM, or when ranges overlap (a caller's bug: hv's slots never do).
unsigned build_guest_memmap(const RamRange* ram, unsigned count, E820Entry* out, unsigned max);

}  // namespace hv
