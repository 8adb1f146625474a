; Multiboot (v1) header and entry of every test guest (tests/guests/lib/).
;
; The header uses the "a.out kludge" (flags bit 16): it gives the load and entry addresses
; itself, so the image boots from its ELF file (QEMU -kernel) and from a flat copy of it (hv
; loads the flat .bin from a GRUB module) alike. The linker script (guest32.ld) keeps the
; whole image one contiguous range, which is what the kludge describes.
;
; At entry (multiboot v1): 32-bit protected mode, paging off, flat segments, interrupts off,
; EAX = 0x2BADB002, EBX = address of the multiboot information. The guests stay in 32-bit
; protected mode with paging off: guest-physical = linear, which keeps their memory tests
; direct (hv's emulator, hv/emulate/, handles other modes too: guest-emulate enters long mode).

MB_MAGIC equ 0x1BADB002
%ifdef MB_PLAIN_ELF
; Built with -DMB_PLAIN_ELF: no load addresses, so loaders must read the ELF program headers
; (tests hv's ELF32 path; the address fields below are then ignored).
MB_FLAGS equ (1 << 1)               ; memory information
%else
MB_FLAGS equ (1 << 1) | (1 << 16)   ; memory information, load addresses in the header
%endif

extern __image_start, __load_end, __bss_end
extern guest_start, guest_ap_start

HV_AP_MAGIC equ 0x68764150          ; hv_abi.h (NASM can't include the C header)
MAX_VCPUS equ 4                     ; HV_MAX_VCPUS
AP_STACK_SHIFT equ 14               ; 16 KiB per vCPU

section .multiboot progbits alloc noexec nowrite align=4
mb_header:
    dd MB_MAGIC
    dd MB_FLAGS
    dd -(MB_MAGIC + MB_FLAGS)
    dd mb_header        ; header_addr
    dd __image_start    ; load_addr
    dd __load_end       ; load_end_addr
    dd __bss_end        ; bss_end_addr
    dd _start           ; entry_addr

section .text
BITS 32
global _start
_start:
    cld
    cmp eax, HV_AP_MAGIC
    je .ap
    mov esp, stack_top
    push ebx            ; guest_start(magic, info)
    push eax
    call guest_start
.halt:                  ; guest_start does not return; if it does, stay here
    cli
    hlt
    jmp .halt

; vCPU i > 0 of a VM with several (docs/hypercalls.md "Several vCPUs"): hv starts it here with
; EAX = HV_AP_MAGIC, EBX = i, ECX = the vCPU count. Each gets its own stack (vCPU i's top is
; ap_stacks + i * AP_STACK); an index the library has no stack for halts.
.ap:
    cmp ebx, MAX_VCPUS
    jae .halt
    test ebx, ebx
    jz .halt
    mov esp, ebx
    shl esp, AP_STACK_SHIFT
    add esp, ap_stacks
    push ecx                ; guest_ap_start(index, count)
    push ebx
    call guest_ap_start
    jmp .halt

; enter_user_mode(): returns to its caller at CPL 3 (one way: there is no way back). For tests
; of hv's privilege checks. Loads the library's own GDT (the loader's GDT is undefined by the
; multiboot specification), then IRETs to flat ring-3 segments with IOPL 3, so the serial port
; and the exit port still work from ring 3. Interrupts stay off, so no TSS is needed.
global enter_user_mode
enter_user_mode:
    lgdt [gdt_desc]
    jmp 0x08:.reload
.reload:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    pop ecx                 ; the return address
    mov edx, esp            ; the caller's stack after the return
    push dword 0x23         ; SS: ring-3 data
    push edx                ; ESP
    pushfd
    or dword [esp], 0x3000  ; IOPL 3
    push dword 0x1B         ; CS: ring-3 code
    push ecx                ; EIP
    mov ax, 0x23
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    iretd

section .rodata
align 8
gdt:
    dq 0
    dq 0x00CF9A000000FFFF   ; 0x08 ring-0 code, flat 32-bit
    dq 0x00CF92000000FFFF   ; 0x10 ring-0 data
    dq 0x00CFFA000000FFFF   ; 0x18 ring-3 code
    dq 0x00CFF2000000FFFF   ; 0x20 ring-3 data
gdt_end:
global guest_gdt_desc               ; also loaded by trap.asm before its IDT
guest_gdt_desc:
gdt_desc:
    dw gdt_end - gdt - 1
    dd gdt

section .bss nobits alloc noexec write align=16
    resb 16384
stack_top:
ap_stacks:                          ; vCPU i's stack is [ap_stacks + (i-1) * 16K, ap_stacks + i * 16K)
    resb (MAX_VCPUS - 1) << AP_STACK_SHIFT
