// Linux's x86 boot protocol for a bzImage (the kernel's Documentation/arch/x86/boot.rst and
// zero-page.rst give the layouts; this is our own code): the setup header is checked, the
// "zero page" (struct boot_params) is filled, and the kernel is entered at its 64-bit entry
// point. Pure code (no arch/, no Vm): hv/linux_loader.cpp copies what this plans and builds into
// the guest; tests/unit/linux_boot_test.cpp checks it against synthetic images.
//
// What hv requires of the image (each refusal names the problem):
//   - at least the header through init_size (0x264 bytes); boot_flag 0xAA55 at 0x1FE; "HdrS"
//     at 0x202; protocol version >= 2.12 (xloadflags exists); xloadflags bit 0
//     (XLF_KERNEL_64: a 64-bit entry at load address + 0x200); loadflags bit 0 (LOADED_HIGH:
//     the protected-mode code runs at 1 MiB or above);
//   - the setup sectors and the protected-mode code (syssize paragraphs) inside the file (a
//     truncated image is refused);
//   - RAM for the kernel: it runs in place from pref_address and needs init_size bytes there
//     (decompression happens in that window). A relocatable kernel would run elsewhere too, but
//     pref_address is where it is linked and needs no relocation pass, so hv always uses it.
//
// The guest's low memory (below the 640 KiB hole; Linux reserves its first 64 KiB and copies
// the zero page and command line before it reuses anything):
//   0x1000  GDT: null, null, 0x10 flat 64-bit code (__BOOT_CS), 0x18 flat data (__BOOT_DS)
//   0x2000  identity page tables for the first 4 GiB with 2 MiB pages: PML4 (0x2000), PDPT
//           (0x3000), four page directories (0x4000-0x7FFF)
//   0x8000  top of the initial stack (the decompressor sets its own at once)
//   0x9000  the zero page
//   0xA000  the command line (up to cmdline_size bytes and its NUL)
// The initrd goes to the top of RAM below initrd_addr_max and above the kernel's window,
// 4 KiB-aligned.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hv/guest_memmap.h"

namespace hv {

// The fields of the setup header hv uses (offsets from the start of the file = of the zero page).
struct LinuxSetup {
  uint16_t version = 0;        // 0x206: protocol version (major << 8 | minor)
  uint8_t setup_sects = 0;     // 0x1F1 (0 means 4)
  uint8_t loadflags = 0;       // 0x211
  uint16_t xloadflags = 0;     // 0x236
  bool relocatable = false;    // 0x234
  uint32_t kernel_alignment = 0;  // 0x230
  uint32_t initrd_addr_max = 0;   // 0x22C: highest address the initrd's last byte may have
  uint32_t cmdline_size = 0;      // 0x238: longest command line, without its NUL
  uint64_t pref_address = 0;      // 0x258
  uint32_t init_size = 0;         // 0x260: bytes the kernel needs from its load address
  uint64_t header_end = 0;        // end of the header in the file (0x202 + the jump's offset)
  uint64_t setup_bytes = 0;       // (setup_sects + 1) * 512: where the protected-mode code starts
  uint64_t kernel_bytes = 0;      // syssize * 16: its length
};

inline constexpr uint16_t kLinuxMinVersion = 0x020C;  // 2.12: xloadflags and the 64-bit entry
inline constexpr uint16_t kXlfKernel64 = 1u << 0;
inline constexpr uint8_t kLoadedHigh = 1u << 0;
inline constexpr uint64_t kLinuxEntry64Offset = 0x200;

// The low-memory layout above, and where the kernel and the initrd go.
inline constexpr uint64_t kLinuxGdtGpa = 0x1000, kLinuxPml4Gpa = 0x2000, kLinuxStackTop = 0x8000,
                          kLinuxZeroPageGpa = 0x9000, kLinuxCmdlineGpa = 0xA000;
inline constexpr unsigned kLinuxPageTablePages = 6;  // PML4, PDPT, 4 page directories
inline constexpr uint16_t kLinuxBootCs = 0x10, kLinuxBootDs = 0x18;
inline constexpr size_t kLinuxGdtBytes = 32;

// Checks the header of `image` (`size` bytes). nullptr or why the image can't be booted.
const char* linux_parse(const uint8_t* image, uint64_t size, LinuxSetup* out);

// Where everything goes in a guest with RAM [0, ram_bytes) (one range from 0: hv's slot 0).
struct LinuxPlan {
  uint64_t load_addr = 0;              // the protected-mode code; entry = load_addr + 0x200
  uint64_t entry = 0;
  uint64_t kernel_end = 0;             // load_addr + init_size
  uint64_t initrd_addr = 0, initrd_bytes = 0;
  uint64_t cmdline_bytes = 0;          // with the NUL
};
// `cmdline_len` without its NUL. nullptr or why not (the kernel or the initrd does not fit, the
// command line is too long).
const char* linux_plan(const LinuxSetup& s, uint64_t ram_bytes, uint64_t cmdline_len, uint64_t initrd_bytes,
                       LinuxPlan* out);

// Fills the 4 KiB zero page: the image's setup header copied in, then the loader's fields
// (type_of_loader 0xFF, LOADED_HIGH, cmd_line_ptr, ramdisk_image/size, code32_start), the
// e820 table and acpi_rsdp_addr (0: none). false when the map has more entries than the
// zero page holds (128).
bool linux_build_zero_page(uint8_t* zp, const uint8_t* image, const LinuxSetup& s, const LinuxPlan& p,
                           const E820Entry* map, unsigned map_entries, uint64_t rsdp_gpa);

// The flat GDT (kLinuxGdtBytes) and the identity page tables (kLinuxPageTablePages pages at
// `base`, 2 MiB pages mapping [0, 4 GiB) read/write).
void linux_build_gdt(uint8_t* gdt);
void linux_build_page_tables(uint8_t* pages, uint64_t base);

// Zero-page offsets hv writes (boot_params, zero-page.rst).
namespace zp {
inline constexpr uint64_t kAcpiRsdpAddr = 0x070, kE820Entries = 0x1E8, kSetupHeader = 0x1F1, kTypeOfLoader = 0x210,
                          kLoadflags = 0x211, kCode32Start = 0x214, kRamdiskImage = 0x218, kRamdiskSize = 0x21C,
                          kCmdLinePtr = 0x228, kExtRamdiskImage = 0x0C0, kExtRamdiskSize = 0x0C4,
                          kExtCmdLinePtr = 0x0C8, kE820Table = 0x2D0;
inline constexpr unsigned kE820Max = 128;
}  // namespace zp

}  // namespace hv
