// Linux's bzImage boot protocol (see linux_boot.h).
#include "hv/linux_boot.h"

namespace hv {

namespace {

constexpr uint64_t k4K = 4096, k2M = 2ull << 20, k1M = 1ull << 20;

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t* p) { return rd16(p) | static_cast<uint32_t>(rd16(p + 2)) << 16; }
uint64_t rd64(const uint8_t* p) { return rd32(p) | static_cast<uint64_t>(rd32(p + 4)) << 32; }
void wr16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void wr32(uint8_t* p, uint32_t v) {
  wr16(p, static_cast<uint16_t>(v));
  wr16(p + 2, static_cast<uint16_t>(v >> 16));
}
void wr64(uint8_t* p, uint64_t v) {
  wr32(p, static_cast<uint32_t>(v));
  wr32(p + 4, static_cast<uint32_t>(v >> 32));
}

constexpr uint64_t kHeaderMinBytes = 0x264;  // through init_size

}  // namespace

const char* linux_parse(const uint8_t* image, uint64_t size, LinuxSetup* out) {
  if (size < kHeaderMinBytes) return "the image is too short for a Linux setup header (truncated or not a bzImage)";
  if (rd32(image + 0x202) != 0x53726448) return "no Linux setup header (\"HdrS\" at 0x202): not a bzImage";
  if (rd16(image + 0x1FE) != 0xAA55) return "the Linux setup header has no boot_flag 0xAA55 at 0x1FE";
  LinuxSetup s;
  s.version = rd16(image + 0x206);
  if (s.version < kLinuxMinVersion) return "the Linux boot protocol is older than 2.12 (no 64-bit entry)";
  s.setup_sects = image[0x1F1] ? image[0x1F1] : 4;
  s.loadflags = image[0x211];
  s.xloadflags = rd16(image + 0x236);
  s.relocatable = image[0x234] != 0;
  s.kernel_alignment = rd32(image + 0x230);
  s.initrd_addr_max = rd32(image + 0x22C);
  s.cmdline_size = rd32(image + 0x238);
  s.pref_address = rd64(image + 0x258);
  s.init_size = rd32(image + 0x260);
  // The header ends where the jump at 0x200 lands (a short jump: 0xEB and a signed offset).
  if (image[0x200] != 0xEB) return "the Linux setup header does not start with a short jump at 0x200";
  s.header_end = 0x202 + static_cast<uint64_t>(image[0x201]);
  if (s.header_end < kHeaderMinBytes) return "the Linux setup header is shorter than protocol 2.12's";
  if (s.header_end > 0x290) return "the Linux setup header claims to be longer than the zero page's copy of it";
  if (!(s.xloadflags & kXlfKernel64)) return "the kernel has no 64-bit entry point (xloadflags bit 0)";
  if (!(s.loadflags & kLoadedHigh)) return "the kernel is not loaded high (loadflags bit 0): a zImage";
  s.setup_bytes = (static_cast<uint64_t>(s.setup_sects) + 1) * 512;
  s.kernel_bytes = static_cast<uint64_t>(rd32(image + 0x1F4)) * 16;
  if (s.setup_bytes > size || s.kernel_bytes > size - s.setup_bytes)
    return "the bzImage is truncated: its setup sectors and syssize reach beyond the file";
  if (!s.kernel_bytes) return "the bzImage has no protected-mode code (syssize 0)";
  if (s.pref_address < k1M || s.pref_address % k4K) return "the kernel's pref_address is below 1 MiB or not page-aligned";
  if (s.init_size < s.kernel_bytes) return "the kernel's init_size is smaller than its code";
  if (s.kernel_alignment && (s.kernel_alignment & (s.kernel_alignment - 1)))
    return "the kernel's kernel_alignment is not a power of two";
  *out = s;
  return nullptr;
}

const char* linux_plan(const LinuxSetup& s, uint64_t ram_bytes, uint64_t cmdline_len, uint64_t initrd_bytes,
                       LinuxPlan* out) {
  LinuxPlan p;
  // The header's limit (cmdline_size) and the room hv gives it at kLinuxCmdlineGpa (below the
  // 640 KiB hole).
  if (cmdline_len > s.cmdline_size || cmdline_len >= kLegacyHoleStart - kLinuxCmdlineGpa)
    return "the kernel command line is longer than the kernel accepts (cmdline_size)";
  p.cmdline_bytes = cmdline_len + 1;
  p.load_addr = s.pref_address;
  p.entry = p.load_addr + kLinuxEntry64Offset;
  p.kernel_end = p.load_addr + s.init_size;
  if (p.kernel_end > ram_bytes) return "the kernel needs more RAM than the VM has (pref_address + init_size; hv.guest-mem)";
  if (initrd_bytes) {
    // Highest 4 KiB-aligned start whose last byte is at most initrd_addr_max and inside RAM,
    // above the kernel's window (the decompressor works in all of it).
    uint64_t top = ram_bytes;
    if (s.initrd_addr_max && uint64_t{s.initrd_addr_max} + 1 < top) top = uint64_t{s.initrd_addr_max} + 1;
    if (initrd_bytes > top) return "the initrd is larger than the RAM the kernel can reach for it (hv.guest-mem)";
    const uint64_t start = (top - initrd_bytes) & ~(k4K - 1);
    if (start < ((p.kernel_end + k2M - 1) & ~(k2M - 1)))
      return "the initrd does not fit in RAM above the kernel (hv.guest-mem is too small for kernel and initrd)";
    p.initrd_addr = start;
    p.initrd_bytes = initrd_bytes;
  }
  *out = p;
  return nullptr;
}

bool linux_build_zero_page(uint8_t* zp, const uint8_t* image, const LinuxSetup& s, const LinuxPlan& p,
                           const E820Entry* map, unsigned map_entries, uint64_t rsdp_gpa) {
  if (map_entries > zp::kE820Max) return false;
  for (uint64_t i = 0; i < k4K; i++) zp[i] = 0;
  for (uint64_t i = zp::kSetupHeader; i < s.header_end; i++) zp[i] = image[i];
  zp[zp::kTypeOfLoader] = 0xFF;  // "undefined" boot loader: no ID assigned to hv
  zp[zp::kLoadflags] = static_cast<uint8_t>(s.loadflags | kLoadedHigh);
  wr32(zp + zp::kCode32Start, static_cast<uint32_t>(p.load_addr));
  // Everything lies below 4 GiB (RAM is below 3 GiB in slot 0): the ext_ halves stay 0.
  wr32(zp + zp::kRamdiskImage, static_cast<uint32_t>(p.initrd_addr));
  wr32(zp + zp::kRamdiskSize, static_cast<uint32_t>(p.initrd_bytes));
  wr32(zp + zp::kExtRamdiskImage, static_cast<uint32_t>(p.initrd_addr >> 32));
  wr32(zp + zp::kExtRamdiskSize, static_cast<uint32_t>(p.initrd_bytes >> 32));
  wr32(zp + zp::kCmdLinePtr, static_cast<uint32_t>(kLinuxCmdlineGpa));
  wr64(zp + zp::kAcpiRsdpAddr, rsdp_gpa);
  zp[zp::kE820Entries] = static_cast<uint8_t>(map_entries);
  for (unsigned i = 0; i < map_entries; i++) {
    uint8_t* e = zp + zp::kE820Table + i * sizeof(E820Entry);
    wr64(e, map[i].addr);
    wr64(e + 8, map[i].size);
    wr32(e + 16, map[i].type);
  }
  return true;
}

void linux_build_gdt(uint8_t* gdt) {
  // Flat descriptors: base 0, limit 0xFFFFF in 4 KiB units, present, DPL 0.
  //   0x10: code, execute/read, accessed, L = 1 (64-bit), D = 0
  //   0x18: data, read/write, accessed, D/B = 1
  constexpr uint64_t kCode64 = 0x00AF9B000000FFFFull, kData = 0x00CF93000000FFFFull;
  for (size_t i = 0; i < kLinuxGdtBytes; i++) gdt[i] = 0;
  wr64(gdt + kLinuxBootCs, kCode64);
  wr64(gdt + kLinuxBootDs, kData);
}

void linux_build_page_tables(uint8_t* pages, uint64_t base) {
  constexpr uint64_t kP = 1, kRw = 2, kPs = 1u << 7;
  for (uint64_t i = 0; i < kLinuxPageTablePages * k4K; i++) pages[i] = 0;
  const uint64_t pml4 = base, pdpt = base + k4K, pd0 = base + 2 * k4K;
  wr64(pages + (pml4 - base), pdpt | kP | kRw);
  for (uint64_t g = 0; g < 4; g++) {
    wr64(pages + (pdpt - base) + g * 8, (pd0 + g * k4K) | kP | kRw);
    for (uint64_t e = 0; e < 512; e++)
      wr64(pages + (pd0 - base) + g * k4K + e * 8, ((g << 30) + e * k2M) | kP | kRw | kPs);
  }
}

}  // namespace hv
