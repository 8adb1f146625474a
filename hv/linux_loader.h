// Loading a Linux kernel into a VM: the bzImage through Linux's boot protocol (64-bit entry,
// hv/linux_boot.h) or the uncompressed ELF through the PVH entry (hv/pvh_boot.h). The pure
// halves plan and build; this copies into guest RAM (slot 0 at guest-physical 0) and says how
// the boot vCPU starts. Every size and address is checked before anything is copied.
#pragma once

#include <stdint.h>

#include "hv/guest_image.h"
#include "hv/vcpu.h"

namespace hv {

class Vm;

struct LinuxBoot {
  const char* cmdline = "";           // the kernel's command line (no name in front)
  const uint8_t* initrd = nullptr;    // the first module of hv.guest-mods, or none
  uint64_t initrd_bytes = 0;
};
struct LinuxLoaded {
  uint64_t entry = 0;
  uint64_t image_start = 0, image_end = 0;   // the kernel's window in guest RAM
  uint64_t initrd_addr = 0, initrd_bytes = 0;
  uint64_t info_gpa = 0;                     // the zero page or the PVH start info
};

// `kind` is kLinuxBzImage or kPvhElf (guest_image_kind). Loads the kernel, the initrd, the
// command line and the boot information, and fills the boot vCPU's start state in *start
// (64-bit with RSI = zero page; or 32-bit, paging off, EBX = start info). nullptr or why not.
const char* load_linux(Vm& vm, GuestImageKind kind, const uint8_t* image, uint64_t size, const LinuxBoot& boot,
                       VcpuStart* start, LinuxLoaded* out);

}  // namespace hv
