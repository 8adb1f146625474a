// The PVH boot ABI (see pvh_boot.h). ELF layouts from the System V ABI (ELF-64 object file
// format); the note from Xen's public elfnote.h.
#include "hv/pvh_boot.h"

namespace hv {

namespace {

constexpr uint64_t k4K = 4096;

struct Elf64Header {
  uint8_t ident[16];
  uint16_t type, machine;
  uint32_t version;
  uint64_t entry, phoff, shoff;
  uint32_t flags;
  uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct Elf64Phdr {
  uint32_t type, flags;
  uint64_t offset, vaddr, paddr, filesz, memsz, align;
};
static_assert(sizeof(Elf64Header) == 64 && sizeof(Elf64Phdr) == 56);
constexpr uint32_t kPtLoad = 1, kPtNote = 4;
constexpr uint16_t kEmX8664 = 62;
constexpr unsigned kMaxPhdrs = 64;

template <class T>
T load(const uint8_t* p) {
  T v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// The PHYS32 entry from the notes in [off, off + len) of the file; 0 when there is none.
// false when a note is malformed.
bool find_entry_note(const uint8_t* image, uint64_t off, uint64_t len, uint32_t* entry) {
  uint64_t p = off;
  const uint64_t end = off + len;
  while (end - p >= 12) {
    const uint32_t namesz = load<uint32_t>(image + p), descsz = load<uint32_t>(image + p + 4),
                   type = load<uint32_t>(image + p + 8);
    const uint64_t name_at = p + 12, name_len = (uint64_t{namesz} + 3) & ~3ull;
    if (name_len > end - name_at) return false;
    const uint64_t desc_at = name_at + name_len, desc_len = (uint64_t{descsz} + 3) & ~3ull;
    if (desc_len > end - desc_at) return false;
    const bool xen = namesz == 4 && image[name_at] == 'X' && image[name_at + 1] == 'e' && image[name_at + 2] == 'n' &&
                     image[name_at + 3] == 0;
    if (xen && type == kXenElfnotePhys32Entry) {
      // A 32-bit address; kernels write it as a pointer-sized word (4 or 8 bytes).
      if (descsz == 4) {
        *entry = load<uint32_t>(image + desc_at);
      } else if (descsz == 8) {
        const uint64_t v = load<uint64_t>(image + desc_at);
        if (v >> 32) return false;
        *entry = static_cast<uint32_t>(v);
      } else {
        return false;
      }
      return true;
    }
    p = desc_at + desc_len;
  }
  return true;
}

}  // namespace

bool pvh_is_elf64(const uint8_t* image, uint64_t size) {
  return size >= 5 && image[0] == 0x7F && image[1] == 'E' && image[2] == 'L' && image[3] == 'F' && image[4] == 2;
}

const char* pvh_parse(const uint8_t* image, uint64_t size, PvhImage* out) {
  if (size < sizeof(Elf64Header)) return "the ELF image is truncated (shorter than its header)";
  if (!pvh_is_elf64(image, size)) return "not an ELF64 image";
  const Elf64Header h = load<Elf64Header>(image);
  if (h.ident[5] != 1 || h.machine != kEmX8664) return "the ELF image is not little-endian x86-64";
  if (h.phentsize != sizeof(Elf64Phdr) || !h.phnum || h.phnum > kMaxPhdrs || h.phoff > size ||
      uint64_t{h.phnum} * sizeof(Elf64Phdr) > size - h.phoff)
    return "the ELF program headers are malformed or beyond the file (truncated image?)";
  PvhImage img;
  uint32_t entry = 0;
  for (unsigned i = 0; i < h.phnum; i++) {
    const Elf64Phdr ph = load<Elf64Phdr>(image + h.phoff + uint64_t{i} * sizeof(Elf64Phdr));
    if (ph.type == kPtNote) {
      if (ph.offset > size || ph.filesz > size - ph.offset) return "an ELF note segment lies beyond the file (truncated image?)";
      if (!entry && !find_entry_note(image, ph.offset, ph.filesz, &entry)) return "an ELF note is malformed";
      continue;
    }
    if (ph.type != kPtLoad || !ph.memsz) continue;
    if (ph.filesz > ph.memsz) return "an ELF segment has more file bytes than memory bytes";
    if (ph.offset > size || ph.filesz > size - ph.offset) return "an ELF segment lies beyond the file (truncated image?)";
    if (ph.paddr + ph.memsz < ph.paddr || ph.paddr + ph.memsz > (1ull << 32))
      return "an ELF segment lies above 4 GiB (physical address)";
    if (img.segments == kPvhMaxSegments) return "the ELF image has too many loadable segments";
    img.seg[img.segments++] = PvhSegment{ph.offset, ph.filesz, ph.paddr, ph.memsz};
    if (ph.paddr < img.lo) img.lo = ph.paddr;
    if (ph.paddr + ph.memsz > img.hi) img.hi = ph.paddr + ph.memsz;
  }
  if (!entry) return "the ELF image has no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel";
  if (!img.segments) return "the ELF image has no loadable segment";
  // Segments must not overlap one another (each is copied whole).
  for (unsigned i = 0; i < img.segments; i++)
    for (unsigned j = i + 1; j < img.segments; j++) {
      const PvhSegment &a = img.seg[i], &b = img.seg[j];
      if (a.paddr < b.paddr + b.memsz && b.paddr < a.paddr + a.memsz) return "two ELF segments overlap";
    }
  bool in = false;
  for (unsigned i = 0; i < img.segments; i++)
    if (entry >= img.seg[i].paddr && entry - img.seg[i].paddr < img.seg[i].memsz) in = true;
  if (!in) return "the PVH entry point lies outside the ELF's loadable segments";
  img.entry = entry;
  *out = img;
  return nullptr;
}

const char* pvh_plan(const PvhImage& img, uint64_t ram_bytes, uint64_t cmdline_len, uint64_t initrd_bytes, PvhPlan* out) {
  PvhPlan p;
  if (cmdline_len > kPvhMaxCmdline) return "the kernel command line is too long";
  p.cmdline_bytes = cmdline_len + 1;
  if (img.lo < kLegacyHoleEnd) return "an ELF segment lies below 1 MiB, where hv puts the start info and the ACPI tables";
  if (img.hi > ram_bytes) return "the kernel needs more RAM than the VM has (its segments end beyond hv.guest-mem)";
  if (initrd_bytes) {
    uint64_t top = ram_bytes < (1ull << 32) ? ram_bytes : (1ull << 32);
    if (initrd_bytes > top) return "the initrd is larger than the VM's RAM (hv.guest-mem)";
    const uint64_t start = (top - initrd_bytes) & ~(k4K - 1);
    if (start < ((img.hi + k4K - 1) & ~(k4K - 1)))
      return "the initrd does not fit in RAM above the kernel (hv.guest-mem is too small for kernel and initrd)";
    p.initrd_addr = start;
    p.initrd_bytes = initrd_bytes;
  }
  *out = p;
  return nullptr;
}

bool pvh_build_start_info(uint8_t* page, const PvhPlan& p, const E820Entry* map, unsigned map_entries, uint64_t rsdp_gpa) {
  if (map_entries > kPvhMaxMemmap || kPvhMemmapOffset + map_entries * sizeof(PvhMemmapEntry) > k4K) return false;
  for (uint64_t i = 0; i < k4K; i++) page[i] = 0;
  PvhStartInfo si{};
  si.magic = kPvhStartMagic;
  si.version = 1;
  si.nr_modules = p.initrd_bytes ? 1 : 0;
  si.modlist_paddr = p.initrd_bytes ? kPvhInfoGpa + kPvhModlistOffset : 0;
  si.cmdline_paddr = kPvhCmdlineGpa;
  si.rsdp_paddr = rsdp_gpa;
  si.memmap_paddr = kPvhInfoGpa + kPvhMemmapOffset;
  si.memmap_entries = map_entries;
  __builtin_memcpy(page, &si, sizeof si);
  if (p.initrd_bytes) {
    const PvhModlistEntry m{p.initrd_addr, p.initrd_bytes, 0, 0};
    __builtin_memcpy(page + kPvhModlistOffset, &m, sizeof m);
  }
  for (unsigned i = 0; i < map_entries; i++) {
    const PvhMemmapEntry e{map[i].addr, map[i].size, map[i].type, 0};
    __builtin_memcpy(page + kPvhMemmapOffset + i * sizeof e, &e, sizeof e);
  }
  return true;
}

}  // namespace hv
