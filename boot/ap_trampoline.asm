; The application-processor trampoline: real mode -> long mode in one step.
;
; arch/x86/smp.cpp copies the bytes between ap_trampoline_start and ap_trampoline_end to a
; free page below 1 MiB, patches the parameter block at its start, and sends INIT-SIPI-SIPI
; with that page's number as the SIPI vector. The AP starts here in real mode with CS = page
; << 8, IP = 0. It loads the boot GDT, enables PAE, loads CR3, sets EFER.LME, then sets
; CR0.PE and CR0.PG together (allowed: real mode straight to long mode) and far-jumps through
; the parameter block to ap_entry64 (boot/entry.asm) with the 64-bit code selector.
;
; Parameter block layout (mirrored by struct ApTrampolineParams in arch/x86/smp.cpp):
;   0x00  jmp over the block
;   0x0E  u16 GDT limit      } the 10-byte operand of LGDT
;   0x10  u64 GDT base       }
;   0x18  u32 CR3 (the boot PML4, below 4 GiB)
;   0x20  u32 64-bit entry point (linear)   } the m16:32 operand of the far jump
;   0x24  u16 code selector                 }

section .rodata
BITS 16

global ap_trampoline_start
global ap_trampoline_end

ap_trampoline_start:
    jmp near .code
    times 0x0E - ($ - ap_trampoline_start) db 0
.gdt_limit: dw 0
.gdt_base:  dq 0
.cr3:       dd 0
            dd 0
.entry:     dd 0
.selector:  dw 0
    times 0x30 - ($ - ap_trampoline_start) db 0

.code:
    cli
    cld
    mov ax, cs
    mov ds, ax
    o32 lgdt [.gdt_limit - ap_trampoline_start]
    mov eax, cr4
    or eax, 1 << 5                      ; CR4.PAE
    mov cr4, eax
    mov eax, [.cr3 - ap_trampoline_start]
    mov cr3, eax
    mov ecx, 0xC0000080                 ; EFER
    rdmsr
    or eax, 1 << 8                      ; LME
    wrmsr
    mov eax, cr0
    and eax, ~((1 << 30) | (1 << 29))   ; caches on: clear CD, NW
    or eax, (1 << 31) | (1 << 16) | (1 << 5) | 1    ; PG, WP, NE, PE
    mov cr0, eax
    jmp dword far [.entry - ap_trampoline_start]
ap_trampoline_end:
