// The multiboot2 boot information as hv uses it.
//
// GRUB hands over a list of 8-byte aligned tags (type, size, payload). parse() walks it once
// and fills BootInfo with what the kernel needs: the command line, modules, the memory map
// (tag 6, or the EFI memory map, tag 17, converted to the same types when tag 6 is absent),
// the ACPI RSDP copy (tag 15, else tag 14), and the UEFI facts. The info structure itself
// stays where GRUB put it; its range is recorded so the physical memory manager keeps it.
#pragma once

#include <stdint.h>

namespace x86::mb2 {

inline constexpr uint32_t kBootloaderMagic = 0x36d76289;

// Memory types of tag 6 (EFI types are converted to these).
enum MemoryType : uint32_t {
  kAvailable = 1,
  kReserved = 2,
  kAcpiReclaimable = 3,
  kAcpiNvs = 4,
  kBadRam = 5,
};

struct MemoryRange {
  uint64_t base;
  uint64_t length;
  uint32_t type;
};

struct Module {
  uint64_t start;  // physical, page aligned (the header asks for it)
  uint64_t end;    // exclusive
  const char* cmdline;
};

// Tag 8. type: 0 indexed colour, 1 direct RGB, 2 EGA text (width/height in characters).
struct Framebuffer {
  uint64_t address;
  uint32_t pitch, width, height;
  uint8_t bpp, type;
  uint8_t red_pos, red_size, green_pos, green_size, blue_pos, blue_size;  // type 1 only
};

struct BootInfo {
  uint64_t info_start = 0, info_end = 0;  // the boot information itself
  const char* cmdline = "";
  const char* loader_name = "";

  // Modules kept, in GRUB's order. A static table (parse() runs before there is any allocator):
  // 64 is several times what the ISO loads (iso/grub.cfg.in); more are counted in
  // modules_ignored, and kernel_main warns about them (hv/main.cpp).
  static constexpr unsigned kMaxModules = 64;
  Module modules[kMaxModules] = {};
  unsigned module_count = 0;
  unsigned modules_ignored = 0;  // module tags beyond kMaxModules

  static constexpr unsigned kMaxRanges = 256;
  MemoryRange mmap[kMaxRanges] = {};
  unsigned mmap_count = 0;
  bool mmap_truncated = false;
  const char* mmap_source = "none";  // "multiboot2 memory map" | "EFI memory map" | "basic meminfo"

  bool have_meminfo = false;
  uint32_t mem_lower_kib = 0, mem_upper_kib = 0;

  const void* rsdp = nullptr;  // copy of the RSDP inside the boot information
  unsigned rsdp_tag = 0;       // 14 (ACPI 1.0) or 15 (ACPI 2.0+)

  bool efi = false;                        // booted from UEFI (EFI system table tag)
  bool efi_boot_services_active = false;   // tag 18: ExitBootServices not called
  bool have_efi_mmap = false;
  unsigned efi_mmap_descriptors = 0;

  bool have_framebuffer = false;
  Framebuffer framebuffer = {};
};

// Returns nullptr on success, else a reason ("bad multiboot2 magic 0x...").
const char* parse(uint32_t magic, uint64_t info_pa, BootInfo& out);

}  // namespace x86::mb2
