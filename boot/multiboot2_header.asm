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

; The console slot: 24 bytes that differ between the two kernels the ISO carries.
;
; hv.elf (HV_MB2_FRAMEBUFFER undefined): no framebuffer request. Without it, GRUB on BIOS
; leaves (or puts back) the EGA text mode and reports it (framebuffer tag type 2); on UEFI it
; still reports the GOP framebuffer it always sets up (type 1). The slot holds a tag of a type
; multiboot2 does not define, flagged optional, which GRUB skips: it only keeps the header's
; layout equal to the other variant's.
;
; hv-vbe.elf (HV_MB2_FRAMEBUFFER defined, iso/CMakeLists.txt): a framebuffer request (type 5),
; optional, for 1024x768x32. GRUB on BIOS then sets a VBE graphics mode (the exact mode if the
; card has it, else GRUB's own pick) and hands over a linear RGB framebuffer (type 1), which
; hv draws on with its own font; a card without a usable mode leaves the text screen. Not the
; default because GRUB's mode switch does not survive every VGA BIOS: under Bochs 2.7 (its
; LGPL VGA BIOS) it ends in a triple fault inside GRUB. grub.cfg's hv_video=vbe selects this
; kernel (iso/grub.cfg.in).
;
; The build makes hv-vbe.elf by copying this section, assembled with the define, over hv.elf's
; (objcopy --update-section), which is why both variants must be the same size.
MB2_CONSOLE_SLOT equ 24
align 8
mb2_console_slot:
%ifdef HV_MB2_FRAMEBUFFER
    dw 5, MB2_TAG_OPTIONAL
    dd 20
    dd 1024                         ; width  (pixels)
    dd 768                          ; height (pixels)
    dd 32                           ; depth  (bits per pixel)
%else
    dw 0x6876, MB2_TAG_OPTIONAL     ; "hv": no such tag type; skipped by GRUB as optional
    dd 20
    dd 0, 0, 0
%endif
    times MB2_CONSOLE_SLOT - ($ - mb2_console_slot) db 0    ; negative: the slot outgrew 24 bytes

; End tag.
align 8
    dw 0, 0
    dd 8
mb2_header_end:
