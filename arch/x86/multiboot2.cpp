// Walks the multiboot2 boot information (see multiboot2.h). Tag layouts follow the
// Multiboot2 specification, version 2.0.
#include "arch/x86/multiboot2.h"

#include "arch/x86/format.h"

namespace x86::mb2 {
namespace {

enum TagType : uint32_t {
  kTagEnd = 0,
  kTagCmdline = 1,
  kTagLoaderName = 2,
  kTagModule = 3,
  kTagBasicMeminfo = 4,
  kTagMmap = 6,
  kTagFramebuffer = 8,
  kTagEfi32SystemTable = 11,
  kTagEfi64SystemTable = 12,
  kTagAcpiOld = 14,
  kTagAcpiNew = 15,
  kTagEfiMmap = 17,
  kTagEfiBootServices = 18,
};

struct Tag {
  uint32_t type;
  uint32_t size;
};

struct ModuleTag {
  Tag tag;
  uint32_t mod_start, mod_end;
  char cmdline[];
};

struct MeminfoTag {
  Tag tag;
  uint32_t mem_lower, mem_upper;
};

struct MmapTag {
  Tag tag;
  uint32_t entry_size, entry_version;
};
struct MmapEntry {
  uint64_t base, length;
  uint32_t type, reserved;
};

struct EfiMmapTag {
  Tag tag;
  uint32_t descriptor_size, descriptor_version;
};
struct EfiMemoryDescriptor {
  uint32_t type, pad;
  uint64_t physical_start, virtual_start, pages, attribute;
};

struct FramebufferTag {
  Tag tag;
  uint64_t address;
  uint32_t pitch, width, height;
  uint8_t bpp, type;
  uint16_t reserved;
  // Type 1 (direct RGB) only: bit position and width of each colour field in a pixel.
  uint8_t red_pos, red_size, green_pos, green_size, blue_pos, blue_size;
};
static_assert(__builtin_offsetof(FramebufferTag, red_pos) == 32, "multiboot2 framebuffer tag layout");

char g_error[96];

// UEFI memory types (UEFI spec, EFI_MEMORY_TYPE) -> multiboot2 types. Memory the firmware
// only needed until ExitBootServices (GRUB has called it) is usable again.
uint32_t efi_type_to_mb2(uint32_t t) {
  switch (t) {
    case 1:   // LoaderCode
    case 2:   // LoaderData (GRUB's own data, incl. the boot information: excluded separately)
    case 3:   // BootServicesCode
    case 4:   // BootServicesData
    case 7:   // ConventionalMemory
      return kAvailable;
    case 9: return kAcpiReclaimable;
    case 10: return kAcpiNvs;
    case 8: return kBadRam;  // UnusableMemory
    default: return kReserved;
  }
}

void add_range(BootInfo& out, uint64_t base, uint64_t length, uint32_t type) {
  if (length == 0) return;
  // Merge with the previous range when contiguous and of the same type (EFI maps are long).
  if (out.mmap_count) {
    MemoryRange& prev = out.mmap[out.mmap_count - 1];
    if (prev.type == type && prev.base + prev.length == base) {
      prev.length += length;
      return;
    }
  }
  if (out.mmap_count == BootInfo::kMaxRanges) {
    out.mmap_truncated = true;
    return;
  }
  out.mmap[out.mmap_count++] = {base, length, type};
}

}  // namespace

const char* parse(uint32_t magic, uint64_t info_pa, BootInfo& out) {
  if (magic != kBootloaderMagic) {
    x86::format(g_error, sizeof g_error, "not booted by multiboot2 (magic 0x%x)", magic);
    return g_error;
  }
  if (info_pa == 0 || (info_pa & 7)) {
    x86::format(g_error, sizeof g_error, "bad multiboot2 info address 0x%lx", info_pa);
    return g_error;
  }
  const uint8_t* base = reinterpret_cast<const uint8_t*>(info_pa);
  const uint32_t total = *reinterpret_cast<const uint32_t*>(base);
  out.info_start = info_pa;
  out.info_end = info_pa + total;

  const MmapTag* mmap = nullptr;
  const EfiMmapTag* efi_mmap = nullptr;
  const uint8_t* acpi_old = nullptr;
  const uint8_t* acpi_new = nullptr;

  for (uint32_t off = 8; off + sizeof(Tag) <= total;) {
    const Tag* tag = reinterpret_cast<const Tag*>(base + off);
    if (tag->type == kTagEnd) break;
    if (tag->size < sizeof(Tag) || off + tag->size > total) {
      x86::format(g_error, sizeof g_error, "malformed multiboot2 tag %u at offset %u", tag->type, off);
      return g_error;
    }
    const uint8_t* payload = reinterpret_cast<const uint8_t*>(tag + 1);
    switch (tag->type) {
      case kTagCmdline: out.cmdline = reinterpret_cast<const char*>(payload); break;
      case kTagLoaderName: out.loader_name = reinterpret_cast<const char*>(payload); break;
      case kTagModule: {
        const ModuleTag* m = reinterpret_cast<const ModuleTag*>(tag);
        if (out.module_count < BootInfo::kMaxModules)
          out.modules[out.module_count++] = {m->mod_start, m->mod_end, m->cmdline};
        else
          out.modules_ignored++;
        break;
      }
      case kTagBasicMeminfo: {
        const MeminfoTag* m = reinterpret_cast<const MeminfoTag*>(tag);
        out.have_meminfo = true;
        out.mem_lower_kib = m->mem_lower;
        out.mem_upper_kib = m->mem_upper;
        break;
      }
      case kTagMmap: mmap = reinterpret_cast<const MmapTag*>(tag); break;
      case kTagFramebuffer: {
        const FramebufferTag* f = reinterpret_cast<const FramebufferTag*>(tag);
        out.have_framebuffer = true;
        out.framebuffer = {f->address, f->pitch, f->width, f->height, f->bpp, f->type, 0, 0, 0, 0, 0, 0};
        if (f->type == 1 && tag->size >= __builtin_offsetof(FramebufferTag, blue_size) + 1)
          out.framebuffer = {f->address, f->pitch,     f->width,     f->height,    f->bpp,      f->type,
                             f->red_pos, f->red_size,  f->green_pos, f->green_size, f->blue_pos, f->blue_size};
        break;
      }
      case kTagEfi32SystemTable:
      case kTagEfi64SystemTable: out.efi = true; break;
      case kTagAcpiOld: acpi_old = payload; break;
      case kTagAcpiNew: acpi_new = payload; break;
      case kTagEfiMmap: efi_mmap = reinterpret_cast<const EfiMmapTag*>(tag); break;
      case kTagEfiBootServices: out.efi_boot_services_active = true; break;
      default: break;
    }
    off += (tag->size + 7) & ~7u;
  }

  if (acpi_new) {
    out.rsdp = acpi_new;
    out.rsdp_tag = kTagAcpiNew;
  } else if (acpi_old) {
    out.rsdp = acpi_old;
    out.rsdp_tag = kTagAcpiOld;
  }

  out.have_efi_mmap = efi_mmap != nullptr;
  if (efi_mmap && efi_mmap->descriptor_size)
    out.efi_mmap_descriptors = (efi_mmap->tag.size - sizeof(EfiMmapTag)) / efi_mmap->descriptor_size;
  if (mmap && mmap->entry_size >= sizeof(MmapEntry)) {
    out.mmap_source = "multiboot2 memory map";
    const uint8_t* p = reinterpret_cast<const uint8_t*>(mmap + 1);
    const uint8_t* end = reinterpret_cast<const uint8_t*>(mmap) + mmap->tag.size;
    for (; p + sizeof(MmapEntry) <= end; p += mmap->entry_size) {
      const MmapEntry* e = reinterpret_cast<const MmapEntry*>(p);
      add_range(out, e->base, e->length, e->type);
    }
  } else if (efi_mmap && efi_mmap->descriptor_size >= sizeof(EfiMemoryDescriptor)) {
    out.mmap_source = "EFI memory map";
    const uint8_t* p = reinterpret_cast<const uint8_t*>(efi_mmap + 1);
    const uint8_t* end = reinterpret_cast<const uint8_t*>(efi_mmap) + efi_mmap->tag.size;
    for (; p + sizeof(EfiMemoryDescriptor) <= end; p += efi_mmap->descriptor_size) {
      const EfiMemoryDescriptor* d = reinterpret_cast<const EfiMemoryDescriptor*>(p);
      add_range(out, d->physical_start, d->pages * 4096, efi_type_to_mb2(d->type));
    }
  } else if (out.have_meminfo) {
    // Last resort: the basic lower/upper memory sizes (KiB below 640 KiB / above 1 MiB).
    out.mmap_source = "basic meminfo";
    add_range(out, 0, uint64_t{out.mem_lower_kib} * 1024, kAvailable);
    add_range(out, 0x100000, uint64_t{out.mem_upper_kib} * 1024, kAvailable);
  }
  if (out.mmap_count == 0) return "no memory map in the multiboot2 information";
  return nullptr;
}

}  // namespace x86::mb2
