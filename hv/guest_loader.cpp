// Loading a multiboot v1 image (see guest_loader.h). Header layout from the Multiboot
// Specification 0.6.96, section 3.1 ("OS image format"); information layout from 3.3.
#include "hv/guest_loader.h"

#include "arch/x86/string.h"
#include "hv/devices/acpi_tables.h"
#include "hv/multiboot_info.h"
#include "hv/vm.h"

namespace hv {

namespace {

constexpr uint32_t kHeaderMagic = 0x1BADB002;
constexpr uint32_t kFlagPageAlign = 1u << 0, kFlagMemInfo = 1u << 1, kFlagAoutKludge = 1u << 16;
constexpr uint64_t kSearchBytes = 8192;  // the header lies in the first 8 KiB, 4-byte aligned

uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

// Writes into guest RAM through the memslots: the whole range must be inside one writable slot.
bool write_guest(Vm& vm, uint64_t gpa, const void* src, uint64_t len) {
  const uint64_t hpa = vm.mmu().translate(gpa, len, true);
  if (!hpa) return false;
  memcpy(reinterpret_cast<void*>(hpa), src, len);
  return true;
}

// The image's range, to keep the information away from it.
struct Placed {
  uint64_t start = ~0ull, end = 0;
  void add(uint64_t s, uint64_t e) {
    if (s < start) start = s;
    if (e > end) end = e;
  }
};

uint8_t g_info_buf[kMbMaxMetaBytes];  // one loader at a time (VM creation is serialized by the runner)

// Places and writes the information block and the modules (multiboot_info.h).
const char* write_info(Vm& vm, const MultibootBoot& boot, const Placed& image, MultibootLoaded* out) {
  MbModuleIn mods[kMbMaxModules];
  if (boot.module_count > kMbMaxModules) return "more than 8 guest modules";
  for (unsigned i = 0; i < boot.module_count; i++) mods[i] = {boot.modules[i].size, boot.modules[i].string};
  MbPlan plan;
  if (const char* err = mb_plan(boot.cmdline, mods, boot.module_count, &plan)) return err;
  const uint64_t ram = vm.ram_bytes();
  // hv's ACPI and MP tables (hv/devices/acpi.h) are in guest RAM before the image is loaded.
  if (image.start < acpi::kAcpiAreaGpa + acpi::kAcpiAreaBytes && acpi::kAcpiAreaGpa < image.end)
    return "the image overlaps 0xf0000-0xf0fff, the BIOS area where hv puts the ACPI tables";
  const GpaRange busy[] = {
      {kMbReservedPage0, kMbReservedPage0 + 0x1000},
      {kMbReservedBenchPage, kMbReservedBenchPage + 0x1000},
      {kMbLowRamEnd, kMbHighRamStart},
      {image.start, image.end},
  };
  const uint64_t base = mb_find_free(busy, sizeof busy / sizeof busy[0], plan.total_bytes, ram);
  if (base == UINT64_MAX) return "guest RAM has no free range for the multiboot information and modules (hv.guest-mem)";
  mb_build(g_info_buf, base, ram, boot.cmdline, mods, plan);
  if (!write_guest(vm, base, g_info_buf, plan.meta_bytes)) return "the multiboot information is not in guest RAM";
  for (unsigned i = 0; i < boot.module_count; i++)
    if (mods[i].size && !write_guest(vm, base + plan.mod_contents[i], boot.modules[i].data, mods[i].size))
      return "a guest module does not fit in guest RAM";
  out->info_gpa = base;
  out->block_bytes = plan.total_bytes;
  out->image_start = image.start;
  out->image_end = image.end;
  return nullptr;
}

// ELF32 (System V ABI, Intel386 supplement): the fields hv reads.
struct [[gnu::packed]] Elf32Header {
  uint8_t ident[16];
  uint16_t type, machine;
  uint32_t version, entry, phoff, shoff, flags;
  uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct [[gnu::packed]] Elf32Phdr {
  uint32_t type, offset, vaddr, paddr, filesz, memsz, flags, align;
};
static_assert(sizeof(Elf32Header) == 52 && sizeof(Elf32Phdr) == 32);
constexpr uint32_t kPtLoad = 1;
constexpr unsigned kMaxSegments = 16;

// Loads the PT_LOAD segments at their physical addresses (p_paddr, as multiboot loaders do).
const char* load_elf32(Vm& vm, const uint8_t* image, uint64_t size, const MultibootBoot& boot, MultibootLoaded* out) {
  Elf32Header h;
  if (size < sizeof h) return "the image is neither a.out-kludge multiboot nor ELF";
  memcpy(&h, image, sizeof h);
  if (h.ident[0] != 0x7F || h.ident[1] != 'E' || h.ident[2] != 'L' || h.ident[3] != 'F')
    return "the multiboot header has no load addresses (flags bit 16) and the image is not ELF";
  if (h.ident[4] != 1 || h.ident[5] != 1 || h.machine != 3 || h.type != 2)
    return "the ELF image is not a 32-bit little-endian i386 executable";
  if (h.phentsize != sizeof(Elf32Phdr) || !h.phnum || h.phnum > kMaxSegments ||
      h.phoff > size || h.phnum * uint64_t{sizeof(Elf32Phdr)} > size - h.phoff)
    return "the ELF program headers are malformed";
  bool entry_ok = false;
  unsigned loaded = 0;
  Placed placed;
  for (unsigned i = 0; i < h.phnum; i++) {
    Elf32Phdr p;
    memcpy(&p, image + h.phoff + i * sizeof p, sizeof p);
    if (p.type != kPtLoad || !p.memsz) continue;
    if (p.filesz > p.memsz || p.offset > size || p.filesz > size - p.offset) return "an ELF segment lies beyond the image";
    if (p.paddr < 0x1000) return "an ELF segment lies in the first page of guest RAM";
    const uint64_t hpa = vm.mmu().translate(p.paddr, p.memsz, true);
    if (!hpa) return "an ELF segment does not fit in guest RAM";
    memcpy(reinterpret_cast<void*>(hpa), image + p.offset, p.filesz);
    memset(reinterpret_cast<void*>(hpa + p.filesz), 0, p.memsz - p.filesz);
    if (h.entry >= p.paddr && h.entry - p.paddr < p.memsz) entry_ok = true;
    placed.add(p.paddr, p.paddr + p.memsz);
    loaded++;
  }
  if (!loaded) return "the ELF image has no loadable segment";
  // Virtual = physical for the guests hv runs (paging is off at entry): the entry must be in a
  // loaded segment.
  if (!entry_ok) return "the ELF entry point is outside its loaded segments";
  if (const char* err = write_info(vm, boot, placed, out)) return err;
  out->entry = h.entry;
  return nullptr;
}

}  // namespace

const char* load_multiboot(Vm& vm, const uint8_t* image, uint64_t size, const MultibootBoot& boot, MultibootLoaded* out) {
  if (vm.ram_bytes() < (2ull << 20)) return "guest RAM below 2 MiB";
  const uint64_t end = size < kSearchBytes ? size : kSearchBytes;
  uint64_t off = 0;
  for (; off + 48 <= end; off += 4)
    if (rd32(image + off) == kHeaderMagic && rd32(image + off) + rd32(image + off + 4) + rd32(image + off + 8) == 0) break;
  if (off + 48 > end) return "no multiboot v1 header (magic 0x1BADB002 with a valid checksum) in the first 8 KiB";
  const uint32_t flags = rd32(image + off + 4);
  if (flags & 0xFFFF & ~(kFlagPageAlign | kFlagMemInfo)) return "the multiboot header asks for a feature hv lacks (flags bits 2-15)";
  if (!(flags & kFlagAoutKludge)) return load_elf32(vm, image, size, boot, out);
  const uint64_t header_addr = rd32(image + off + 12), load_addr = rd32(image + off + 16);
  uint64_t load_end = rd32(image + off + 20), bss_end = rd32(image + off + 24);
  const uint64_t entry_addr = rd32(image + off + 28);
  // The header's file offset and its address fix where the loaded range starts in the file.
  if (header_addr < load_addr || header_addr - load_addr > off) return "multiboot load address above the header address";
  const uint64_t file_start = off - (header_addr - load_addr);
  if (!load_end) load_end = load_addr + (size - file_start);
  if (load_end < load_addr || load_end - load_addr > size - file_start) return "multiboot load range beyond the image";
  if (!bss_end) bss_end = load_end;
  if (bss_end < load_end) return "multiboot bss ends before the load range";
  if (entry_addr < load_addr || entry_addr >= load_end) return "multiboot entry point outside the loaded image";
  if (load_addr < 0x1000) return "multiboot image would start in the first page of guest RAM";
  // Guest RAM is zeroed, so the bss needs no clearing; it must still be RAM.
  if (!vm.mmu().translate(load_addr, bss_end - load_addr, true)) return "multiboot image does not fit in guest RAM";
  if (!write_guest(vm, load_addr, image + file_start, load_end - load_addr)) return "multiboot image copy failed";
  Placed placed;
  placed.add(load_addr, bss_end);
  if (const char* err = write_info(vm, boot, placed, out)) return err;
  out->entry = entry_addr;
  return nullptr;
}

}  // namespace hv
