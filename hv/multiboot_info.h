// The multiboot v1 information hv hands a guest (Multiboot Specification 0.6.96, 3.3), and
// where it goes in guest RAM. Pure code: the loader (hv/guest_loader.cpp) copies what this
// builds into the guest; the host unit tests check the layout (tests/unit/multiboot_info_test.cpp).
//
// What the guest gets (flags bits): 0 mem_lower/mem_upper, 2 the command line, 3 the modules
// (count 0 when there are none), 6 the memory map, 9 the boot loader name "hv".
//
// Memory map (the boot RAM of `ram_bytes` at guest-physical 0, hv.guest-mem):
//   [0, 0x9F000)         available (type 1)
//   [0x9F000, 0x100000)  reserved (type 2): the PC's EBDA/VGA/ROM hole, never claimed as RAM
//                        although hv backs it (a guest may touch it without harm)
//   [0x100000, ram)      available
// mem_lower = 636 (KiB below 0x9F000), mem_upper = (ram - 1 MiB) / 1 KiB.
//
// One block holds everything: the information structure, the memory map, the boot loader
// name, the command line, the module list and the module strings, then each module's
// contents at a 4 KiB boundary (so header flag bit 0, "page-align modules", always holds).
// The block goes where nothing else is (mb_find_free): not over the image, not over hv's
// reserved pages, not in the hole, below 1 MiB when it fits there, else above.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace hv {

inline constexpr uint64_t kMbLowRamEnd = 0x9F000;   // end of the low available RAM
inline constexpr uint64_t kMbHighRamStart = 0x100000;
inline constexpr unsigned kMbMaxModules = 8;
inline constexpr size_t kMbMaxString = 1024;        // a command line or a module string
inline constexpr size_t kMbMaxMetaBytes = 16384;    // the block before the module contents

struct MbModuleIn {
  uint64_t size;       // bytes of contents
  const char* string;  // the module's string (its GRUB command line), may be ""
};

// Where each part lies, as offsets from the start of the block.
struct MbPlan {
  uint64_t info, mmap, loader_name, cmdline, mods, mod_strings;
  uint64_t meta_bytes;                   // everything before the first module's contents
  uint64_t mod_contents[kMbMaxModules];  // each 4 KiB aligned
  uint64_t total_bytes;                  // the whole block, 4 KiB aligned
  unsigned mod_count;
};

// Plans the block. nullptr, or why not (too many modules, a string too long).
const char* mb_plan(const char* cmdline, const MbModuleIn* mods, unsigned count, MbPlan* plan);

// Writes the first plan.meta_bytes of the block (the block starts at guest-physical `base`)
// into buf, which holds at least that much; module contents are the caller's to copy.
void mb_build(uint8_t* buf, uint64_t base, uint64_t ram_bytes, const char* cmdline, const MbModuleIn* mods,
              const MbPlan& plan);

struct GpaRange {
  uint64_t start, end;  // [start, end)
};

// The lowest 4 KiB-aligned guest-physical address where `bytes` fit inside [0, ram_bytes)
// without touching any `busy` range (which should include the hole above). UINT64_MAX when
// there is none.
uint64_t mb_find_free(const GpaRange* busy, unsigned count, uint64_t bytes, uint64_t ram_bytes);

// The layout of what mb_build writes (spec 3.3).
struct [[gnu::packed]] MbInfo {
  uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table, boot_loader_name;
  uint32_t apm_table;
  uint32_t vbe[4];
  uint8_t framebuffer[28];
};
static_assert(sizeof(MbInfo) == 116 && __builtin_offsetof(MbInfo, cmdline) == 16 &&
              __builtin_offsetof(MbInfo, mods_addr) == 24 && __builtin_offsetof(MbInfo, mmap_length) == 44 &&
              __builtin_offsetof(MbInfo, boot_loader_name) == 64);
struct [[gnu::packed]] MbMmap {
  uint32_t size;  // of the rest of the entry (20)
  uint64_t base, length;
  uint32_t type;  // 1 available, 2 reserved
};
static_assert(sizeof(MbMmap) == 24);
struct [[gnu::packed]] MbModule {
  uint32_t start, end, string, reserved;
};
static_assert(sizeof(MbModule) == 16);
inline constexpr uint32_t kMbInfoMem = 1u << 0, kMbInfoCmdline = 1u << 2, kMbInfoMods = 1u << 3,
                          kMbInfoMmap = 1u << 6, kMbInfoLoaderName = 1u << 9;
inline constexpr unsigned kMbMmapEntries = 3;

}  // namespace hv
