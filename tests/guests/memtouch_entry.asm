; memtouch guest, first instructions: 32-bit protected mode (paging off) -> 64-bit long mode.
;
; hv starts the guest at guest-physical 0x10000 with flat 32-bit segments, paging off and
; EBX = the size of its RAM in bytes, EDX = this vCPU's index, ECX = the VM's vCPU count,
; EDI = the base of a 1 GiB slot at 1 GiB or 0 (hv/guest_abi.h). Every vCPU enters here at the same time, so each one gets its own stack
; (16 KiB below STACK_TOP - index * 16 KiB) and its own page tables (three pages at
; 0x1000 + index * 0x3000; at most 4 vCPUs, so they end below the image at 0x10000). Each
; builds them in its own RAM (identity map of the first 1 GiB with 2 MiB pages), enables PAE,
; sets EFER.LME (a WRMSR that hv emulates), turns paging on (the CPU sets EFER.LMA without an
; exit under unrestricted guest) and far-jumps to 64-bit code. Then guest_main(ram, mode) runs
; (ESI at entry = the test mode, hv/guest_abi.h) and its return value goes to the result port.
; Every page it touches, including these page tables and this code, arrives through an EPT
; violation: hv maps nothing in advance.

TABLES equ 0x1000                ; + index * 0x3000: PML4, PDPT, PD
STACK_TOP equ 0x80000
STACK_SIZE equ 0x4000
RESULT_PORT equ 0x500

extern guest_main

section .text.entry progbits alloc exec nowrite align=16
BITS 32
global guest_entry
guest_entry:
    and edx, 3                   ; at most 4 vCPUs (hv/vm.h)
    mov ebp, edx                 ; EBP = vCPU index for the rest of the 32-bit part
    imul eax, ebp, STACK_SIZE
    mov esp, STACK_TOP
    sub esp, eax
    ; The same values from every vCPU: the racing stores are harmless.
    mov [ram_bytes], ebx
    mov [test_mode], esi
    mov [huge_base], edi         ; guest-physical base of a 1 GiB slot, 0 if none
    mov esi, ecx                 ; ESI = vCPU count for the rest of the 32-bit part

    imul ebx, ebp, 0x3000
    add ebx, TABLES              ; EBX = this vCPU's PML4; PDPT and PD follow
    mov edi, ebx                 ; clear the three table pages
    xor eax, eax
    mov ecx, 3 * 1024
    cld
    rep stosd
    lea eax, [ebx + 0x1000 + 3]  ; present, writable
    mov [ebx], eax
    lea eax, [ebx + 0x2000 + 3]
    mov [ebx + 0x1000], eax
    ; [1 GiB, 2 GiB) as one 1 GiB page (PDPTE bit 7), for the 1 GiB slot when hv gives one;
    ; only touched then (a CPU without 1 GiB pages would fault on it, not on loading CR3).
    mov dword [ebx + 0x1008], 0x40000083
    lea edi, [ebx + 0x2000]
    mov eax, 0x83                ; present, writable, 2 MiB page
    mov ecx, 512
.fill:
    mov [edi], eax
    mov dword [edi + 4], 0
    add eax, 0x200000
    add edi, 8
    loop .fill

    mov cr3, ebx
    mov eax, cr4
    or eax, 1 << 5               ; PAE
    mov cr4, eax
    mov ecx, 0xC0000080          ; EFER
    rdmsr
    or eax, 1 << 8               ; LME
    wrmsr
    lgdt [gdt_ptr]
    mov eax, cr0
    or eax, 1 << 31              ; PG: long mode becomes active
    mov cr0, eax
    jmp 0x08:long_mode

BITS 64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov ecx, esi                 ; vCPU count (a 32-bit move clears the upper half)
    imul eax, ebp, STACK_SIZE
    mov esp, STACK_TOP
    sub rsp, rax
    mov edx, ebp                 ; guest_main(ram, mode, index, count)
    xor ebp, ebp
    mov edi, [rel ram_bytes]
    mov esi, [rel test_mode]
    call guest_main
    mov dx, RESULT_PORT
    out dx, eax
.halt:                           ; hv stops the vCPU at the result; never reached
    hlt
    jmp .halt

; #GP handler for the bad-msr test: counts the fault and skips the 2-byte WRMSR.
; Stack on entry: error code, RIP, CS, RFLAGS, RSP, SS.
global gp_handler
gp_handler:
    add dword [rel gp_count], 1
    add rsp, 8
    add qword [rsp], 2
    iretq

section .data
align 8
gdt:
    dq 0
    dq 0x00AF9A000000FFFF        ; 0x08: 64-bit code, DPL 0
    dq 0x00CF92000000FFFF        ; 0x10: data
gdt_ptr:
    dw gdt_ptr - gdt - 1
    dd gdt
global ram_bytes
ram_bytes:
    dq 0
global test_mode
test_mode:
    dq 0
global huge_base
huge_base:
    dq 0
global gp_count
gp_count:
    dd 0
