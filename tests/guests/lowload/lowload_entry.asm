; guest-lowload's multiboot v1 header and entry (see CMakeLists.txt here): the a.out kludge
; gives the load addresses (0x8000 up), a 2 KiB stack inside the image.
MB_MAGIC equ 0x1BADB002
MB_FLAGS equ (1 << 1) | (1 << 16)   ; memory information, load addresses in the header

extern __image_start, __load_end, __bss_end
extern lowload_main

section .multiboot progbits alloc noexec nowrite align=4
mb_header:
    dd MB_MAGIC
    dd MB_FLAGS
    dd -(MB_MAGIC + MB_FLAGS)
    dd mb_header
    dd __image_start
    dd __load_end
    dd __bss_end
    dd _start

section .text
BITS 32
global _start
_start:
    cld
    mov esp, stack_top
    push ebx                ; lowload_main(magic, info)
    push eax
    call lowload_main
.halt:
    cli
    hlt
    jmp .halt

section .bss nobits alloc noexec write align=16
    resb 2048
stack_top:
