// Loading a multiboot v1 image (see guest_loader.h). Header layout from the Multiboot
// Specification 0.6.96, section 3.1 ("OS image format"); information layout from 3.3.
#include "hv/guest_loader.h"

#include "arch/x86/string.h"
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

// Multiboot information (spec 3.3), the fields hv fills.
struct [[gnu::packed]] MbInfo {
  uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table, boot_loader_name;
  uint32_t apm_table;
  uint32_t vbe[4];
  uint8_t framebuffer[28];
};
static_assert(sizeof(MbInfo) == 116 && __builtin_offsetof(MbInfo, mmap_length) == 44 &&
              __builtin_offsetof(MbInfo, boot_loader_name) == 64);
struct [[gnu::packed]] MbMmap {
  uint32_t size;  // of the rest of the entry (20)
  uint64_t base, length;
  uint32_t type;  // 1 = available RAM
};
static_assert(sizeof(MbMmap) == 24);
constexpr uint32_t kInfoMem = 1u << 0, kInfoMmap = 1u << 6, kInfoLoaderName = 1u << 9;

bool write_info(Vm& vm) {
  const uint64_t ram = vm.ram_bytes();
  const uint64_t mmap_gpa = kMultibootInfoGpa + 0x100, name_gpa = kMultibootInfoGpa + 0x200;
  const MbMmap mmap[2] = {{20, 0, 0x9F000, 1}, {20, 0x100000, ram - 0x100000, 1}};
  MbInfo info{};
  info.flags = kInfoMem | kInfoMmap | kInfoLoaderName;
  info.mem_lower = 0x9F000 / 1024;
  info.mem_upper = static_cast<uint32_t>((ram - 0x100000) / 1024);
  info.mmap_length = sizeof mmap;
  info.mmap_addr = static_cast<uint32_t>(mmap_gpa);
  info.boot_loader_name = static_cast<uint32_t>(name_gpa);
  static const char kName[] = "hv";
  return write_guest(vm, kMultibootInfoGpa, &info, sizeof info) && write_guest(vm, mmap_gpa, mmap, sizeof mmap) &&
         write_guest(vm, name_gpa, kName, sizeof kName);
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
const char* load_elf32(Vm& vm, const uint8_t* image, uint64_t size, uint64_t* entry) {
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
  for (unsigned i = 0; i < h.phnum; i++) {
    Elf32Phdr p;
    memcpy(&p, image + h.phoff + i * sizeof p, sizeof p);
    if (p.type != kPtLoad || !p.memsz) continue;
    if (p.filesz > p.memsz || p.offset > size || p.filesz > size - p.offset) return "an ELF segment lies beyond the image";
    if (p.paddr < kMultibootInfoGpa + 0x1000) return "an ELF segment would overlap the multiboot information";
    const uint64_t hpa = vm.mmu().translate(p.paddr, p.memsz, true);
    if (!hpa) return "an ELF segment does not fit in guest RAM";
    memcpy(reinterpret_cast<void*>(hpa), image + p.offset, p.filesz);
    memset(reinterpret_cast<void*>(hpa + p.filesz), 0, p.memsz - p.filesz);
    if (h.entry >= p.paddr && h.entry - p.paddr < p.memsz) entry_ok = true;
    loaded++;
  }
  if (!loaded) return "the ELF image has no loadable segment";
  // Virtual = physical for the guests hv runs (paging is off at entry): the entry must be in a
  // loaded segment.
  if (!entry_ok) return "the ELF entry point is outside its loaded segments";
  if (!write_info(vm)) return "no room for the multiboot information";
  *entry = h.entry;
  return nullptr;
}

}  // namespace

const char* load_multiboot(Vm& vm, const uint8_t* image, uint64_t size, uint64_t* entry) {
  if (vm.ram_bytes() < (2ull << 20)) return "guest RAM below 2 MiB";
  const uint64_t end = size < kSearchBytes ? size : kSearchBytes;
  uint64_t off = 0;
  for (; off + 48 <= end; off += 4)
    if (rd32(image + off) == kHeaderMagic && rd32(image + off) + rd32(image + off + 4) + rd32(image + off + 8) == 0) break;
  if (off + 48 > end) return "no multiboot v1 header (magic 0x1BADB002 with a valid checksum) in the first 8 KiB";
  const uint32_t flags = rd32(image + off + 4);
  if (flags & 0xFFFF & ~(kFlagPageAlign | kFlagMemInfo)) return "the multiboot header asks for a feature hv lacks (flags bits 2-15)";
  if (!(flags & kFlagAoutKludge)) return load_elf32(vm, image, size, entry);
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
  if (load_addr < kMultibootInfoGpa + 0x1000) return "multiboot image would overlap the information structure";
  // Guest RAM is zeroed, so the bss needs no clearing; it must still be RAM.
  if (!vm.mmu().translate(load_addr, bss_end - load_addr, true)) return "multiboot image does not fit in guest RAM";
  if (!write_guest(vm, load_addr, image + file_start, load_end - load_addr)) return "multiboot image copy failed";
  if (!write_info(vm)) return "no room for the multiboot information";
  *entry = entry_addr;
  return nullptr;
}

}  // namespace hv
