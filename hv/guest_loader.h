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
// the multiboot information (flags: mem_lower/mem_upper, memory map, boot loader name).
#pragma once

#include <stdint.h>

#include "arch/x86/multiboot2.h"
#include "arch/x86/vmx/capabilities.h"

namespace hv {

class Vm;

inline constexpr uint32_t kMultibootBootMagic = 0x2BADB002;
// Where hv puts the multiboot information in guest RAM (below 640 KiB, away from the usual
// 1 MiB load address of kernels).
inline constexpr uint64_t kMultibootInfoGpa = 0x9000;

// Copies the image into the VM's RAM (through its memslots) and writes the multiboot
// information. nullptr on success (with *entry set) or why the image can't be loaded.
const char* load_multiboot(Vm& vm, const uint8_t* image, uint64_t size, uint64_t* entry);

// Runs the guest in GRUB module `name` (hv.run=NAME on the command line) in its own VM on the
// calling CPU, prints the VM's summary and frees the VM. nullptr when the guest passed
// (exit status 0 and every page returned).
const char* run_multiboot_guest(const x86::mb2::BootInfo& boot, const char* name, const x86::vmx::Capabilities& caps);

}  // namespace hv
