; Exception probes of the guest library (guest.h, "exceptions"): an IDT whose 32 entries
; (vectors 0-31) record the vector and error code, and instruction probes that set a resume
; point before they run one instruction. An exception while a probe is armed continues at the
; probe's resume point; any other exception goes to trap_unexpected() (trap.cpp), which reports
; it and fails the guest - instead of the triple fault an exception is without an IDT.
;
; 32-bit protected mode, CPL 0 (the gates have DPL 0 and there is no TSS for a stack switch, so
; no probe after enter_user_mode()). The IDT, the resume point and the recorded vector are
; shared: one vCPU at a time may probe.

BITS 32

extern guest_gdt_desc               ; entry.asm: flat code 0x08, data 0x10
extern trap_unexpected              ; trap.cpp: (vector, error code, eip), does not return

KERNEL_CS equ 0x08
KERNEL_DS equ 0x10
GATE_INT32 equ 0x8E00               ; present, DPL 0, 32-bit interrupt gate (IF stays off)

section .text

; One stub per vector: the CPU pushes an error code for 8, 10-14, 17, 21, 29 and 30 (SDM Vol. 3A,
; table "Protected-Mode Exceptions and Interrupts"); for the others the stub pushes 0, so that
; trap_common always sees [vector, error code, EIP, CS, EFLAGS].
%macro STUB 1
stub_%1:
%if !(%1 == 8 || (%1 >= 10 && %1 <= 14) || %1 == 17 || %1 == 21 || %1 == 29 || %1 == 30)
    push dword 0
%endif
    push dword %1
    jmp trap_common
%endmacro

%assign v 0
%rep 32
STUB v
%assign v v + 1
%endrep

trap_common:                        ; [esp] vector, [esp+4] error code, [esp+8] EIP
    push eax                        ; now: [esp+4] vector, [esp+8] error code, [esp+12] EIP
    mov eax, [esp + 4]
    mov [trap_last_vector], eax
    mov eax, [esp + 8]
    mov [trap_last_error], eax
    mov eax, [trap_resume]
    test eax, eax
    jz .unexpected
    mov dword [trap_resume], 0      ; disarmed: one exception per probe
    mov [esp + 12], eax             ; IRET to the probe's resume point
    pop eax
    add esp, 8                      ; vector and error code
    iretd
.unexpected:
    push dword [esp + 12]           ; EIP
    push dword [esp + 12]           ; error code (each push moves the others up by 4)
    push dword [esp + 12]           ; vector
    call trap_unexpected
.hang:
    cli
    hlt
    jmp .hang

; void trap_install(): loads the library's GDT (the loader's is undefined, and under hv GDTR
; points at guest-physical 0) and an IDT with the stubs above. Cheap and idempotent: every
; probe calls it, so each vCPU that probes has the IDT loaded.
global trap_install
trap_install:
    lgdt [guest_gdt_desc]
    jmp KERNEL_CS:.reload
.reload:
    mov ax, KERNEL_DS
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    xor ecx, ecx
.fill:
    mov eax, [stubs + ecx * 4]
    mov [idt + ecx * 8], ax                      ; offset 15:0
    mov word [idt + ecx * 8 + 2], KERNEL_CS
    mov word [idt + ecx * 8 + 4], GATE_INT32
    shr eax, 16
    mov [idt + ecx * 8 + 6], ax                  ; offset 31:16
    inc ecx
    cmp ecx, 32
    jb .fill
    lidt [idt_desc]
    ret

; uint32_t trap_rdpmc(uint32_t counter, uint64_t* value): RDPMC with ECX = counter. Returns 0
; and stores EDX:EAX at *value, or returns 1 when RDPMC raised an exception (then
; trap_last_vector and trap_last_error say which; *value is untouched). cdecl; clobbers only
; EAX, ECX and EDX.
global trap_rdpmc
trap_rdpmc:
    mov ecx, [esp + 4]
    mov dword [trap_resume], .raised
    rdpmc
    mov dword [trap_resume], 0
    mov ecx, [esp + 8]
    mov [ecx], eax
    mov [ecx + 4], edx
    xor eax, eax
    ret
.raised:
    mov eax, 1
    ret

; uint32_t trap_call(void (*fn)(void*), void* ctx): calls fn(ctx) with a probe armed for the
; whole call. Returns 0 when fn returned, 1 when an exception was raised inside it (then
; trap_last_vector and trap_last_error say which, and fn's frame is abandoned: ESP and the
; callee-saved registers are restored from here, like longjmp). The generic probe behind
; probe() in guest.h: a guest writes the instruction under test as inline assembly in a lambda.
global trap_call
trap_call:
    push ebp
    push ebx
    push esi
    push edi
    mov [trap_saved_esp], esp
    mov dword [trap_resume], .raised
    push dword [esp + 24]           ; ctx (above: 4 saved registers, the return address, fn)
    call [esp + 24]                 ; fn (one push moved it up by 4)
    add esp, 4
    mov dword [trap_resume], 0
    xor eax, eax
    jmp .out
.raised:
    mov esp, [trap_saved_esp]
    mov eax, 1
.out:
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret

section .rodata
align 4
stubs:
%assign v 0
%rep 32
    dd stub_ %+ v
%assign v v + 1
%endrep

section .data
align 8
idt_desc:
    dw 32 * 8 - 1
    dd idt
align 4
global trap_last_vector, trap_last_error
trap_resume: dd 0                   ; where an exception continues; 0: none expected
trap_saved_esp: dd 0                ; trap_call's ESP after it saved its registers
trap_last_vector: dd 0
trap_last_error: dd 0

section .bss nobits alloc noexec write align=8
idt:
    resq 32
