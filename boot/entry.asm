; The kernel's first instructions: from GRUB's 32-bit protected mode into 64-bit long mode.
;
; GRUB (multiboot2, BIOS or UEFI) enters _start with paging off, interrupts off, EAX = the
; multiboot2 magic and EBX = the physical address of the boot information. _start:
;   1. saves EAX/EBX, switches to the boot stack, checks that the CPU has long mode;
;   2. builds an identity map of the first 4 GiB with 2 MiB pages (PML4 -> 1 PDPT -> 4 PDs),
;      which covers the kernel, the boot information, low memory, the LAPIC and IOAPIC;
;      arch/x86/paging.cpp extends it over all RAM later;
;   3. enables PAE, EFER.LME and paging (plus CR0.NE, which VMX requires, and CR0.WP),
;      loads the boot GDT and far-jumps to 64-bit code;
;   4. runs the C++ global constructors (.init_array) and calls kernel_main(magic, info).
; Application processors come through boot/ap_trampoline.asm and enter at ap_entry64 below.

MB2_BOOTLOADER_MAGIC equ 0x36d76289

CR0_PE  equ 1 << 0
CR0_NE  equ 1 << 5
CR0_WP  equ 1 << 16
CR0_NW  equ 1 << 29
CR0_CD  equ 1 << 30
CR0_PG  equ 1 << 31
CR4_PAE equ 1 << 5
MSR_EFER equ 0xC0000080
EFER_LME equ 1 << 8

PTE_P   equ 1 << 0
PTE_W   equ 1 << 1
PTE_PS  equ 1 << 7

BOOT_CS equ 0x08
BOOT_DS equ 0x10

BOOT_STACK_SIZE equ 16384

extern kernel_main
extern ap_main
extern ap_boot_stack
extern ap_boot_cpu
extern __init_array_start
extern __init_array_end

section .text.boot progbits alloc exec nowrite align=16

BITS 32
global _start
_start:
    cli
    cld
    mov [boot_mb2_magic], eax
    mov [boot_mb2_info], ebx
    mov esp, boot_stack_top

    ; CPUID present (EFLAGS.ID toggles)?
    pushfd
    pop eax
    mov ecx, eax
    xor eax, 1 << 21
    push eax
    popfd
    pushfd
    pop eax
    push ecx
    popfd
    xor eax, ecx
    jz .no_long_mode
    ; Extended leaf 0x80000001 with EDX.LM (bit 29)?
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb .no_long_mode
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29
    jz .no_long_mode

    ; Clear the page-table area (GRUB zeroes .bss, but be independent of that).
    mov edi, boot_page_tables
    mov ecx, (boot_page_tables_end - boot_page_tables) / 4
    xor eax, eax
    rep stosd

    ; PML4[0] -> PDPT.
    mov eax, boot_pdpt
    or eax, PTE_P | PTE_W
    mov [boot_pml4], eax
    ; PDPT[0..3] -> the four page directories.
    mov eax, boot_pd
    or eax, PTE_P | PTE_W
    xor ecx, ecx
.fill_pdpt:
    mov [boot_pdpt + ecx * 8], eax
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jb .fill_pdpt
    ; PD entries 0..2047: 2 MiB pages, identity. The upper halves stay zero.
    mov eax, PTE_P | PTE_W | PTE_PS
    xor ecx, ecx
.fill_pd:
    mov [boot_pd + ecx * 8], eax
    add eax, 0x200000
    inc ecx
    cmp ecx, 2048
    jb .fill_pd

    mov eax, boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, CR4_PAE
    mov cr4, eax
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_LME
    wrmsr
    mov eax, cr0
    and eax, ~(CR0_CD | CR0_NW)
    or eax, CR0_PG | CR0_WP | CR0_NE | CR0_PE
    mov cr0, eax

    lgdt [boot_gdtr]
    jmp BOOT_CS:long_mode_entry

.no_long_mode:
    ; No 64-bit CPU: say so on COM1 and the 0xE9 console and stop.
    mov esi, no_long_mode_msg
.print:
    lodsb
    test al, al
    jz .stop
    mov bl, al
    mov dx, 0x3FD
.wait_thr:
    in al, dx
    test al, 0x20
    jz .wait_thr
    mov al, bl
    mov dx, 0x3F8
    out dx, al
    out 0xE9, al
    jmp .print
.stop:
    cli
    hlt
    jmp .stop

BITS 64
long_mode_entry:
    mov ax, BOOT_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, boot_stack_top
    xor ebp, ebp                    ; ends the frame-pointer chain for stack traces

    ; Global constructors, in .init_array order.
    mov rbx, __init_array_start
.ctors:
    mov rax, __init_array_end
    cmp rbx, rax
    jae .ctors_done
    call [rbx]
    add rbx, 8
    jmp .ctors
.ctors_done:
    mov edi, [boot_mb2_magic]
    mov esi, [boot_mb2_info]
    call kernel_main
.halt:
    cli
    hlt
    jmp .halt

; Application processors: boot/ap_trampoline.asm far-jumps here in 64-bit mode, on the boot
; GDT and the boot page tables. The BSP starts one AP at a time and publishes its stack and
; CPU index in ap_boot_stack / ap_boot_cpu (arch/x86/smp.cpp) before sending the SIPI.
global ap_entry64
ap_entry64:
    mov ax, BOOT_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, [ap_boot_stack]
    xor ebp, ebp
    mov edi, [ap_boot_cpu]
    call ap_main
.halt:
    cli
    hlt
    jmp .halt

section .rodata
no_long_mode_msg:
    db 13, 10, "hv: result: FAIL cpu has no 64-bit long mode", 13, 10, 0

section .data
align 16
; The boot GDT: null, 64-bit ring-0 code (0x08), ring-0 data (0x10). Accessed bits preset so
; the CPU never writes to it. arch/x86/gdt.cpp replaces it per CPU (adding a TSS).
global boot_gdt
boot_gdt:
    dq 0
    dq 0x00AF9B000000FFFF
    dq 0x00CF93000000FFFF
boot_gdt_end:

align 16
    dw 0, 0, 0                      ; so the 8-byte base below is naturally aligned
global boot_gdtr
boot_gdtr:
    dw boot_gdt_end - boot_gdt - 1
    dq boot_gdt

align 8
global boot_mb2_magic
boot_mb2_magic: dd 0
global boot_mb2_info
boot_mb2_info:  dd 0

section .bss nobits alloc noexec write align=4096
align 4096
global boot_page_tables
boot_page_tables:
global boot_pml4
boot_pml4: resb 4096
global boot_pdpt
boot_pdpt: resb 4096
global boot_pd
boot_pd:   resb 4 * 4096
boot_page_tables_end:

align 16
global boot_stack_bottom
boot_stack_bottom:
    resb BOOT_STACK_SIZE
global boot_stack_top
boot_stack_top:
