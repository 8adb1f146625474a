// GRUB modules by name (see boot_modules.h).
#include "hv/boot_modules.h"

namespace hv {

const x86::mb2::Module* find_module(const x86::mb2::BootInfo& boot, const char* name) {
  for (unsigned i = 0; i < boot.module_count; i++)
    if (module_name_is(boot.modules[i].cmdline, name)) return &boot.modules[i];
  return nullptr;
}

}  // namespace hv
