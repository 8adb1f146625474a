// Loading a Linux kernel (see linux_loader.h).
#include "hv/linux_loader.h"

#include "arch/x86/string.h"
#include "hv/linux_boot.h"
#include "hv/pvh_boot.h"
#include "hv/vm.h"

namespace hv {

namespace {

constexpr uint64_t k4K = 4096;

// Host pointer to guest-physical [gpa, gpa + len) when it lies in one writable slot.
uint8_t* guest_ptr(Vm& vm, uint64_t gpa, uint64_t len) {
  const uint64_t hpa = vm.mmu().translate(gpa, len, true);
  return hpa ? reinterpret_cast<uint8_t*>(hpa) : nullptr;
}

// The guest's memory map from its slots (hv's slot 0 only, before the guest runs).
unsigned guest_map(Vm& vm, E820Entry* map, unsigned max) {
  RamRange ram[Vm::kMaxSlots];
  unsigned n = 0;
  for (unsigned i = 0; i < vm.slot_count(); i++) {
    const RamSlot& s = vm.slot(i);
    ram[n++] = RamRange{s.base_gfn * k4K, s.npages * k4K};
  }
  return build_guest_memmap(ram, n, map, max);
}

// The low pages both loaders write must stay clear of hv's ACPI area (0xF0000, in the hole).
static_assert(kLinuxCmdlineGpa + k4K <= kLegacyHoleStart && kPvhCmdlineGpa < kLegacyHoleStart);

uint8_t g_page[k4K];  // one loader at a time (VM creation is serialized by the runner)
uint8_t g_tables[kLinuxPageTablePages * k4K];

const char* copy_common(Vm& vm, const LinuxBoot& boot, uint64_t cmdline_gpa, uint64_t cmdline_bytes, uint64_t initrd_addr) {
  uint8_t* cl = guest_ptr(vm, cmdline_gpa, cmdline_bytes);
  if (!cl) return "the command line's page is not guest RAM";
  memcpy(cl, boot.cmdline, cmdline_bytes - 1);
  cl[cmdline_bytes - 1] = 0;
  if (boot.initrd_bytes) {
    uint8_t* rd = guest_ptr(vm, initrd_addr, boot.initrd_bytes);
    if (!rd) return "the initrd's place is not guest RAM";
    memcpy(rd, boot.initrd, boot.initrd_bytes);
  }
  return nullptr;
}

const char* load_bzimage(Vm& vm, const uint8_t* image, uint64_t size, const LinuxBoot& boot, VcpuStart* start,
                         LinuxLoaded* out) {
  LinuxSetup s;
  if (const char* err = linux_parse(image, size, &s)) return err;
  LinuxPlan p;
  if (const char* err = linux_plan(s, vm.ram_bytes(), strlen(boot.cmdline), boot.initrd_bytes, &p)) return err;
  E820Entry map[zp::kE820Max];
  const unsigned entries = guest_map(vm, map, zp::kE820Max);
  if (!entries) return "the guest's memory map does not fit the zero page";
  if (!linux_build_zero_page(g_page, image, s, p, map, entries, vm.acpi_rsdp_gpa)) return "the zero page could not be built";
  // Everything is checked: copy.
  uint8_t* kernel = guest_ptr(vm, p.load_addr, p.kernel_end - p.load_addr);
  uint8_t* zpage = guest_ptr(vm, kLinuxZeroPageGpa, k4K);
  uint8_t* gdt = guest_ptr(vm, kLinuxGdtGpa, kLinuxGdtBytes);
  uint8_t* tables = guest_ptr(vm, kLinuxPml4Gpa, sizeof g_tables);
  if (!kernel || !zpage || !gdt || !tables) return "the kernel's window or hv's low pages are not guest RAM";
  if (const char* err = copy_common(vm, boot, kLinuxCmdlineGpa, p.cmdline_bytes, p.initrd_addr)) return err;
  memcpy(kernel, image + s.setup_bytes, s.kernel_bytes);
  memcpy(zpage, g_page, k4K);
  linux_build_gdt(gdt);
  linux_build_page_tables(g_tables, kLinuxPml4Gpa);
  memcpy(tables, g_tables, sizeof g_tables);
  start->rip = p.entry;
  start->rsp = kLinuxStackTop;
  start->rsi = kLinuxZeroPageGpa;
  start->long_mode.on = true;
  start->long_mode.cr3 = kLinuxPml4Gpa;
  start->long_mode.gdt_base = kLinuxGdtGpa;
  start->long_mode.gdt_limit = kLinuxGdtBytes - 1;
  start->long_mode.cs = kLinuxBootCs;
  start->long_mode.ds = kLinuxBootDs;
  out->entry = p.entry;
  out->image_start = p.load_addr;
  out->image_end = p.kernel_end;
  out->initrd_addr = p.initrd_addr;
  out->initrd_bytes = p.initrd_bytes;
  out->info_gpa = kLinuxZeroPageGpa;
  return nullptr;
}

const char* load_pvh(Vm& vm, const uint8_t* image, uint64_t size, const LinuxBoot& boot, VcpuStart* start,
                     LinuxLoaded* out) {
  PvhImage img;
  if (const char* err = pvh_parse(image, size, &img)) return err;
  PvhPlan p;
  if (const char* err = pvh_plan(img, vm.ram_bytes(), strlen(boot.cmdline), boot.initrd_bytes, &p)) return err;
  E820Entry map[kPvhMaxMemmap];
  const unsigned entries = guest_map(vm, map, kPvhMaxMemmap);
  if (!entries) return "the guest's memory map does not fit the start info";
  if (!pvh_build_start_info(g_page, p, map, entries, vm.acpi_rsdp_gpa)) return "the start info could not be built";
  for (unsigned i = 0; i < img.segments; i++)
    if (!guest_ptr(vm, img.seg[i].paddr, img.seg[i].memsz)) return "an ELF segment is not in guest RAM";
  uint8_t* info = guest_ptr(vm, kPvhInfoGpa, k4K);
  if (!info) return "the start info's page is not guest RAM";
  if (const char* err = copy_common(vm, boot, kPvhCmdlineGpa, p.cmdline_bytes, p.initrd_addr)) return err;
  for (unsigned i = 0; i < img.segments; i++) {
    const PvhSegment& sg = img.seg[i];
    uint8_t* dst = guest_ptr(vm, sg.paddr, sg.memsz);
    memcpy(dst, image + sg.offset, sg.filesz);
    memset(dst + sg.filesz, 0, sg.memsz - sg.filesz);
  }
  memcpy(info, g_page, k4K);
  // The PVH ABI's state is the multiboot one (hv/vmcs_setup.cpp): 32-bit protected mode,
  // paging off, flat CS/DS/ES/SS, a busy 32-bit TSS, IF = 0; EBX = the start info.
  start->rip = img.entry;
  start->rsp = 0;
  start->rbx = kPvhInfoGpa;
  out->entry = img.entry;
  out->image_start = img.lo;
  out->image_end = img.hi;
  out->initrd_addr = p.initrd_addr;
  out->initrd_bytes = p.initrd_bytes;
  out->info_gpa = kPvhInfoGpa;
  return nullptr;
}

}  // namespace

const char* load_linux(Vm& vm, GuestImageKind kind, const uint8_t* image, uint64_t size, const LinuxBoot& boot,
                       VcpuStart* start, LinuxLoaded* out) {
  if (kind == GuestImageKind::kLinuxBzImage) return load_bzimage(vm, image, size, boot, start, out);
  if (kind == GuestImageKind::kPvhElf) return load_pvh(vm, image, size, boot, start, out);
  return "not a Linux kernel image";
}

}  // namespace hv
