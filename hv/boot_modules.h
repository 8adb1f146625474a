// GRUB modules by name.
//
// A module's name is the first word of its GRUB command line: `module2 /boot/guest-hcall.bin
// guest-hcall` names it "guest-hcall" (iso/grub.cfg.in). Lookups compare the whole name
// exactly (so "guest-hcall" never finds "guest-hcall-elf", and "memtouch" finds nothing: the
// module is "guest-memtouch"); the words after the name are the module's arguments, kept for
// the guest (a guest command line, issue 10). Words are separated by blanks (space, tab).
//
// module_name_is() and module_args() are pure (host-tested in tests/unit/boot_modules_test.cpp);
// find_module() walks the modules hv kept from the multiboot2 information.
#pragma once

#include "arch/x86/multiboot2.h"

namespace hv {

inline bool module_blank(char c) { return c == ' ' || c == '\t'; }

// True when the first word of `cmdline` is exactly `name`.
inline bool module_name_is(const char* cmdline, const char* name) {
  if (!cmdline || !name || !*name) return false;
  while (module_blank(*cmdline)) cmdline++;
  for (; *name; name++, cmdline++)
    if (*cmdline != *name) return false;
  return *cmdline == 0 || module_blank(*cmdline);
}

// What follows the name (leading blanks skipped): "" when there is nothing.
inline const char* module_args(const char* cmdline) {
  if (!cmdline) return "";
  while (module_blank(*cmdline)) cmdline++;
  while (*cmdline && !module_blank(*cmdline)) cmdline++;
  while (module_blank(*cmdline)) cmdline++;
  return cmdline;
}

// The first module named `name`, or nullptr.
const x86::mb2::Module* find_module(const x86::mb2::BootInfo& boot, const char* name);

}  // namespace hv
