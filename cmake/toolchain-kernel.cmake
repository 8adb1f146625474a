# Freestanding x86-64 toolchain for the hypervisor kernel: clang, ld.lld and NASM.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(CMAKE_C_COMPILER clang)
set(CMAKE_CXX_COMPILER clang++)
set(CMAKE_C_COMPILER_TARGET x86_64-unknown-none-elf)
set(CMAKE_CXX_COMPILER_TARGET x86_64-unknown-none-elf)
set(CMAKE_ASM_NASM_COMPILER nasm)
set(CMAKE_ASM_NASM_OBJECT_FORMAT elf64)
set(CMAKE_LINKER ld.lld)

# No host libraries exist for this target: try_compile may only build a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# Code generation policy of the kernel:
#  - no exceptions, no RTTI, no thread-safe statics, no libc: nothing needs a runtime;
#  - no red zone: interrupts and NMIs arrive on the current stack in ring 0;
#  - SSE/FPU policy: the kernel never touches x87/SSE/AVX state (-mgeneral-regs-only), so a VM
#    exit does not have to save or restore the guest's FPU state, and the compiler can't
#    sneak vector code into memcpy-like loops;
#  - small code model, no PIE: hv is linked and runs identity-mapped below 1 GiB.
set(HV_KERNEL_FLAGS
  "-ffreestanding -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit \
-mno-red-zone -mgeneral-regs-only -mcmodel=small -fno-pic -fno-pie -fno-stack-protector \
-fno-omit-frame-pointer -fno-builtin -nostdlib -nostdinc++")
set(CMAKE_CXX_FLAGS_INIT "${HV_KERNEL_FLAGS}")
set(CMAKE_C_FLAGS_INIT "${HV_KERNEL_FLAGS}")

# Link directly with ld.lld, with our own linker script (set per target).
set(CMAKE_CXX_LINK_EXECUTABLE
  "${CMAKE_LINKER} <LINK_FLAGS> <OBJECTS> -o <TARGET> <LINK_LIBRARIES>")
