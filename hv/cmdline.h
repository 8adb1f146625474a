// The kernel command line (the words after "multiboot2 /boot/hv.elf" in grub.cfg).
//
// Words are separated by blanks; a word is "key" or "key=value". Known keys:
//   loglevel=error|warn|info|debug   logger threshold (default info)
//   nosmp                            don't start the application processors
//   hv.test=pagefault|null|ud|panic  provoke a failure on purpose (tests the fatal paths)
//   hv.noguest                       VMX bring-up only, even if a guest module is loaded
//   hv.guest=unbacked|triple-fault|bad-msr  make the memtouch guest misbehave on purpose
#pragma once

#include <stddef.h>

namespace hv::cmdline {

void set(const char* line);
// True if the word `key` or "key=..." is present.
bool has(const char* key);
// Copies the value of "key=value" into buf (NUL-terminated); false when absent.
bool get(const char* key, char* buf, size_t size);

}  // namespace hv::cmdline
