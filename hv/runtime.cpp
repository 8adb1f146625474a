// The few C++ runtime hooks a freestanding kernel still needs.
//
// -fno-use-cxa-atexit makes the compiler register destructors of globals with atexit(); the
// kernel never exits, so nothing is registered. A pure virtual call and a delete of a heap
// object (the kernel has no heap) are bugs: both panic.
#include <stddef.h>

#include "hv/panic.h"

extern "C" {
void* __dso_handle = nullptr;
int atexit(void (*)(void)) { return 0; }
[[noreturn]] void __cxa_pure_virtual() { hv::panic("pure virtual function called"); }
}

void operator delete(void*) noexcept { hv::panic("operator delete called (the kernel has no heap)"); }
void operator delete(void*, size_t) noexcept { hv::panic("operator delete called (the kernel has no heap)"); }
