// The PVH boot ABI (Xen's arch-x86/hvm/start_info.h and docs/misc/pvh.pandoc give the layouts;
// this is our own code) for an uncompressed ELF64 kernel: the entry point is the
// XEN_ELFNOTE_PHYS32_ENTRY note (type 18, owner "Xen") in a PT_NOTE segment, the PT_LOAD
// segments go to their physical addresses, and the kernel starts in 32-bit protected mode with
// paging off and EBX = the guest-physical address of an hvm_start_info (magic, version 1, the
// command line, one module = the initrd, the memory map, the RSDP). It skips the bzImage's
// decompressor. Pure code: hv/linux_loader.cpp copies the segments and the block this builds;
// tests/unit/pvh_boot_test.cpp checks it against synthetic ELF images.
//
// Guest layout (low memory, below the 640 KiB hole):
//   0x1000  the start info, the module list, the memory map (one page)
//   0x2000  the command line (up to kPvhMaxCmdline bytes and its NUL)
// The initrd goes to the top of RAM (below 4 GiB), above every segment, 4 KiB-aligned.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hv/guest_memmap.h"

namespace hv {

inline constexpr unsigned kPvhMaxSegments = 16;
inline constexpr uint32_t kXenElfnotePhys32Entry = 18;
inline constexpr uint32_t kPvhStartMagic = 0x336EC578;
inline constexpr uint64_t kPvhInfoGpa = 0x1000, kPvhCmdlineGpa = 0x2000;
inline constexpr uint64_t kPvhMaxCmdline = 0x9D000 - kPvhCmdlineGpa - 1;  // up to the hole
inline constexpr unsigned kPvhMaxMemmap = 32;

struct PvhSegment {
  uint64_t offset, filesz, paddr, memsz;
};
struct PvhImage {
  uint32_t entry = 0;  // the PHYS32 entry (guest-physical)
  unsigned segments = 0;
  PvhSegment seg[kPvhMaxSegments] = {};
  uint64_t lo = ~0ull, hi = 0;  // [lowest paddr, highest paddr + memsz) over the segments
};

// True when `image` starts like an ELF64 file (what the loader choice looks at first).
bool pvh_is_elf64(const uint8_t* image, uint64_t size);
// Checks the ELF headers and finds the note. nullptr or why not (not ELF64 x86-64, no PVH
// note, a segment beyond the file, ...). Every offset and size is checked against `size`.
const char* pvh_parse(const uint8_t* image, uint64_t size, PvhImage* out);

struct PvhPlan {
  uint64_t initrd_addr = 0, initrd_bytes = 0;
  uint64_t cmdline_bytes = 0;  // with the NUL
};
// nullptr or why not (a segment outside RAM or in low memory hv uses, the initrd doesn't fit).
const char* pvh_plan(const PvhImage& img, uint64_t ram_bytes, uint64_t cmdline_len, uint64_t initrd_bytes, PvhPlan* out);

// The start-info page (4 KiB at kPvhInfoGpa): hvm_start_info, then the module list (the initrd,
// when there is one), then the memory map. false when the map does not fit.
bool pvh_build_start_info(uint8_t* page, const PvhPlan& p, const E820Entry* map, unsigned map_entries, uint64_t rsdp_gpa);

// The layouts (start_info.h, version 1).
struct PvhStartInfo {
  uint32_t magic, version, flags, nr_modules;
  uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
  uint32_t memmap_entries, reserved;
};
struct PvhModlistEntry {
  uint64_t paddr, size, cmdline_paddr, reserved;
};
struct PvhMemmapEntry {
  uint64_t addr, size;
  uint32_t type, reserved;
};
static_assert(sizeof(PvhStartInfo) == 56 && __builtin_offsetof(PvhStartInfo, rsdp_paddr) == 32 &&
              __builtin_offsetof(PvhStartInfo, memmap_entries) == 48);
static_assert(sizeof(PvhModlistEntry) == 32 && sizeof(PvhMemmapEntry) == 24);
inline constexpr uint64_t kPvhModlistOffset = 64, kPvhMemmapOffset = 128;

}  // namespace hv
