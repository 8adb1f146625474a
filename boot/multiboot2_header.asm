; The multiboot2 header: tells GRUB how to load hv and which boot information to hand over.
;
; GRUB looks for this header in the first 32 KiB of hv.elf, 8-byte aligned; the linker script
; puts its section first. hv is an ELF file, so no address tag is needed: GRUB loads the
; PT_LOAD segments where the program headers say and enters _start (boot/entry.asm) in 32-bit
; protected mode, paging off, with EAX = 0x36d76289 and EBX = the physical address of the
; boot information. On UEFI, GRUB calls ExitBootServices itself (we do not ask it to keep the
; boot services) and still enters the 32-bit entry point.

MB2_MAGIC        equ 0xE85250D6
MB2_ARCH_I386    equ 0              ; 32-bit protected mode entry
MB2_TAG_OPTIONAL equ 1              ; flags bit 0: boot even if GRUB can't honour the tag

section .multiboot2 progbits alloc noexec nowrite align=8

align 8
mb2_header_start:
    dd MB2_MAGIC
    dd MB2_ARCH_I386
    dd mb2_header_end - mb2_header_start
    dd -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header_start))

; Information request (type 1): the tags the kernel reads. Optional, so that a loader which
; lacks one of them (no ACPI tag on an old BIOS) still boots us; the kernel has fallbacks.
align 8
mb2_info_request:
    dw 1, MB2_TAG_OPTIONAL
    dd mb2_info_request_end - mb2_info_request
    dd 1                            ; boot command line
    dd 3                            ; modules
    dd 6                            ; memory map
    dd 14                           ; ACPI 1.0 RSDP copy
    dd 15                           ; ACPI 2.0+ RSDP copy
    dd 17                           ; EFI memory map (UEFI only)
mb2_info_request_end:

; Module alignment (type 6): modules start on a page boundary, so the physical memory
; manager can exclude them page by page and a guest image can be mapped directly.
align 8
    dw 6, MB2_TAG_OPTIONAL
    dd 8

; No framebuffer request tag (type 5): with it, GRUB on BIOS switches the video mode itself
; before entering hv, and under Bochs 2.7 (its LGPL VGA BIOS) that ends in a triple fault
; inside GRUB, with or without GRUB's VBE driver loaded. Without the tag GRUB still reports
; what it leaves behind: on BIOS the EGA text screen (framebuffer tag type 2), on UEFI the
; GOP framebuffer it always sets up (type 1). hv draws its console on either
; (arch/x86/fb_console.h).

; End tag.
align 8
    dw 0, 0
    dd 8
mb2_header_end:
