// Multiboot (version 1) guests: hv loads a guest kernel from a GRUB module the way a multiboot
// boot loader would, so the same image boots bare under QEMU (-kernel) and under hv.
//
// Supported: images with the "a.out kludge" (header flags bit 16: the header gives the load,
// bss and entry addresses, so any flat or ELF file with one contiguous loadable range works),
// and, without it, ELF32 i386 executables (PT_LOAD segments copied to their physical
// addresses, the rest of each segment zeroed). Header flags bits 0 (page-align modules: there
// are none) and 1 (memory information: always given) are accepted; any other bit in 0-15
// (video mode, ...) makes hv refuse the image, as the specification requires of a loader that
// can't honour it. Every address and size in the image is checked against the image and the
// guest's RAM before anything is copied.
//
// The machine state at entry is the specification's: 32-bit protected mode, paging off, flat
// 4 GiB code and data segments, interrupts off, EAX = 0x2BADB002, EBX = guest-physical address of
// the multiboot information (hv/multiboot_info.h: mem_lower/mem_upper, memory map, command line,
// modules, boot loader name). The information and the modules go where the image is not
// (lowest free RAM outside the image, hv's reserved pages and the 640 KiB-1 MiB hole), so an
// image may be loaded anywhere in RAM from 0x1000 up, 0x8000 included.
#pragma once

#include <stdint.h>

#include "arch/x86/multiboot2.h"
#include "arch/x86/vmx/capabilities.h"

namespace hv {

class Vm;

inline constexpr uint32_t kMultibootBootMagic = 0x2BADB002;

// What the guest is told besides its memory: its command line (by convention its name first,
// then its arguments) and its modules.
struct MultibootModule {
  const uint8_t* data;
  uint64_t size;
  const char* string;
};
struct MultibootBoot {
  const char* cmdline = "";
  const MultibootModule* modules = nullptr;
  unsigned module_count = 0;
};
struct MultibootLoaded {
  uint64_t entry = 0;
  uint64_t info_gpa = 0;                    // EBX at entry
  uint64_t image_start = 0, image_end = 0;  // [load address, end of bss)
  uint64_t block_bytes = 0;                 // the information block with the modules
};

// Pages of guest RAM hv never gives to the image's information: page 0 (real-mode vectors,
// and a null pointer stays null) and the benchmark parameter page (HV_BENCH_GPA, 0x7000).
// An image may still be loaded there.
inline constexpr uint64_t kMbReservedPage0 = 0x0, kMbReservedBenchPage = 0x7000;

// Copies the image into the VM's RAM (through its memslots) and writes the multiboot
// information and the modules. nullptr on success (with *out set) or why the image can't be
// loaded (nothing of it runs then).
const char* load_multiboot(Vm& vm, const uint8_t* image, uint64_t size, const MultibootBoot& boot, MultibootLoaded* out);

// Runs the guest in GRUB module `name` (hv.run=NAME on the command line) in its own VM on the
// calling CPU, prints the VM's summary and frees the VM. nullptr when the guest passed
// (exit status 0 and every page returned).
const char* run_multiboot_guest(const x86::mb2::BootInfo& boot, const char* name, const x86::vmx::Capabilities& caps);

}  // namespace hv
