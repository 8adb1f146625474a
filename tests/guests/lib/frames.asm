; Exception frames, recorded: an IDT placed wherever the guest wants it (a page not yet touched,
; for the event-delivery tests of guest-events) whose 32 gates record what the CPU pushed -
; vector, error code, EIP, EFLAGS - together with DR6 and where the frame was, then either
; continue (#DB: the instruction after a trap, or the instruction a breakpoint stopped) or
; resume at the resume point of frames_call() (every other vector), like the library's probes
; (trap.asm). And the instruction sequences whose exact addresses the tests compare frames
; with (single-step over exiting instructions, breakpoints, a data breakpoint). guest.h does
; not declare these: tests/guests/lib/frames.h does.
;
; 32-bit protected mode, CPL 0, one vCPU (the log and the resume point are shared).

BITS 32

extern trap_unexpected              ; trap.cpp: (vector, error code, eip), does not return

KERNEL_CS equ 0x08
GATE_INT32 equ 0x8E00               ; present, DPL 0, 32-bit interrupt gate
FRAME_MAX equ 16
FRAME_SIZE equ 24                   ; struct Frame in frames.h
HV_CALL_INVALIDATE_ROOTS equ 5      ; hv_abi.h

section .text

%macro FSTUB 1
fstub_%1:
%if !(%1 == 8 || (%1 >= 10 && %1 <= 14) || %1 == 17 || %1 == 21 || %1 == 29 || %1 == 30)
    push dword 0
%endif
    push dword %1
    jmp frame_common
%endmacro

%assign v 0
%rep 32
FSTUB v
%assign v v + 1
%endrep

; [esp] vector, [esp+4] error code, [esp+8] EIP, [esp+12] CS, [esp+16] EFLAGS
frame_common:
    push eax
    push ebx
    push ecx                        ; now +12 vector, +16 error code, +20 EIP, +24 CS, +28 EFLAGS
    mov ebx, [frame_count]
    cmp ebx, FRAME_MAX
    jae .logged
    imul ecx, ebx, FRAME_SIZE
    mov eax, [esp + 12]
    mov [frame_log + ecx], eax      ; vector
    mov eax, [esp + 16]
    mov [frame_log + ecx + 4], eax  ; error code
    mov eax, [esp + 20]
    mov [frame_log + ecx + 8], eax  ; EIP
    mov eax, [esp + 28]
    mov [frame_log + ecx + 12], eax ; EFLAGS as pushed
    mov eax, dr6
    mov [frame_log + ecx + 16], eax
    lea eax, [esp + 20]
    mov [frame_log + ecx + 20], eax ; where the CPU put the frame (its EIP slot)
.logged:
    inc dword [frame_count]
    mov eax, 0xFFFF0FF0             ; DR6 as after reset: the next #DB reports only its own causes
    mov dr6, eax
    cmp dword [esp + 12], 1
    jne .resume
    ; #DB: continue. RF in the image, so that an instruction breakpoint on the instruction it
    ; returns to does not fire again (the CPU clears RF once that instruction completes). The
    ; last expected step clears TF.
    or dword [esp + 28], 0x10000
    dec dword [frame_db_steps]
    jg .out
    and dword [esp + 28], ~0x100
    jmp .out
.resume:
    mov eax, [frame_resume]
    test eax, eax
    jz .unexpected
    mov dword [frame_resume], 0
    mov [esp + 20], eax
.out:
    pop ecx
    pop ebx
    pop eax
    add esp, 8
    iretd
.unexpected:
    push dword [esp + 20]           ; EIP
    push dword [esp + 20]           ; error code
    push dword [esp + 20]           ; vector
    call trap_unexpected
.hang:
    cli
    hlt
    jmp .hang

; void frames_install(void* idt): writes the 32 gates at idt (256 bytes) and loads IDTR with it.
; The GDT must be the library's (call any probe, or trap_install(), first).
global frames_install
frames_install:
    mov edx, [esp + 4]
    xor ecx, ecx
.fill:
    mov eax, [fstubs + ecx * 4]
    mov [edx + ecx * 8], ax
    mov word [edx + ecx * 8 + 2], KERNEL_CS
    mov word [edx + ecx * 8 + 4], GATE_INT32
    shr eax, 16
    mov [edx + ecx * 8 + 6], ax
    inc ecx
    cmp ecx, 32
    jb .fill
    mov [idtr + 2], edx
    lidt [idtr]
    ret

; void frames_load(void* idt): loads IDTR with an IDT already written (no access to it).
global frames_load
frames_load:
    mov edx, [esp + 4]
    mov [idtr + 2], edx
    lidt [idtr]
    ret

; uint32_t frames_call(void (*fn)(void*), void* ctx): fn(ctx) with the resume point armed: 0
; when fn returned, 1 when an exception other than #DB ended it (registers and ESP restored
; from here, like trap_call).
global frames_call
frames_call:
    push ebp
    push ebx
    push esi
    push edi
    mov [saved_esp], esp
    mov dword [frame_resume], .raised
    push dword [esp + 24]
    call [esp + 24]
    add esp, 4
    mov dword [frame_resume], 0
    xor eax, eax
    jmp .out
.raised:
    mov esp, [saved_esp]
    mov eax, 1
.out:
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret

; void frames_ud_on_stack(uint32_t new_esp): UD2 with ESP = new_esp (run it under frames_call:
; the #UD frame is the first thing written to that stack).
global frames_ud_on_stack, frames_ud_insn
frames_ud_on_stack:
    mov ecx, [esp + 4]
    mov esp, ecx
frames_ud_insn:
    ud2

; Set TF with POPFD: the single-step trap comes after the instruction that follows the POPFD.
%macro SET_TF 0
    pushfd
    or dword [esp], 0x100
    popfd
%endmacro

%macro ZAP_IF 1                     ; VMCALL INVALIDATE_ROOTS when %1 (a register) is non-zero
    test %1, %1
    jz %%no
    mov eax, HV_CALL_INVALIDATE_ROOTS
    xor ebx, ebx
    vmcall
%%no:
%endmacro

; void frames_step_new_stack(uint32_t new_esp, uint32_t zap): with zap (under hv), every EPT
; mapping of the VM is dropped first; then one single-step trap whose frame is the first write
; to the stack at new_esp: #DB after "mov esp, ecx", EIP = frames_step_new_stack_after.
global frames_step_new_stack, frames_step_new_stack_after
frames_step_new_stack:
    push ebp
    push ebx
    mov ebp, [esp + 16]
    mov [saved_esp2], esp
    ZAP_IF ebp                      ; (a hypercall returns values in EBX, ECX, EDX)
    mov ecx, [esp + 12]
    SET_TF
    mov esp, ecx
frames_step_new_stack_after:
    nop
    mov esp, [saved_esp2]
    pop ebx
    pop ebp
    ret

; void frames_step_after_zap(uint32_t zap): a single-step trap right after the EPT mappings were
; dropped (the IDT's page is then not mapped): #DB after the NOP, EIP = frames_step_after_zap_after.
global frames_step_after_zap, frames_step_after_zap_after
frames_step_after_zap:
    push ebp
    push ebx
    mov ebp, [esp + 12]
    ZAP_IF ebp
    SET_TF
    nop
frames_step_after_zap_after:
    pop ebx
    pop ebp
    ret

; void frames_step_cpuid(): single-step over CPUID (an exiting instruction under hv): #DB with
; EIP = frames_step_cpuid_after.
global frames_step_cpuid, frames_step_cpuid_after
frames_step_cpuid:
    push ebx
    xor eax, eax
    xor ecx, ecx
    SET_TF
    cpuid
frames_step_cpuid_after:
    nop
    pop ebx
    ret

; void frames_step_out(): single-step over OUT to port 0x80 (an I/O exit under hv): #DB with
; EIP = frames_step_out_after.
global frames_step_out, frames_step_out_after
frames_step_out:
    xor eax, eax
    SET_TF
    out 0x80, al
frames_step_out_after:
    nop
    ret

; void frames_step_three(): three steps (set frame_db_steps = 3): after CPUID, after OUT, after
; the NOP: EIPs frames_step3_a, _b, _c.
global frames_step_three, frames_step3_a, frames_step3_b, frames_step3_c
frames_step_three:
    push ebx
    xor eax, eax
    xor ecx, ecx
    SET_TF
    cpuid
frames_step3_a:
    out 0x80, al
frames_step3_b:
    nop
frames_step3_c:
    nop
    pop ebx
    ret

; void frames_bp_nop(): the target of an execution breakpoint (DR0 = frames_bp_nop_insn).
global frames_bp_nop, frames_bp_nop_insn
frames_bp_nop:
frames_bp_nop_insn:
    nop
    ret

; void frames_bp_cpuid(): an execution breakpoint on an exiting instruction
; (DR0 = frames_bp_cpuid_insn): the #DB comes before the CPUID runs; RF then lets it run.
global frames_bp_cpuid, frames_bp_cpuid_insn
frames_bp_cpuid:
    push ebx
    xor eax, eax
    xor ecx, ecx
frames_bp_cpuid_insn:
    cpuid
    pop ebx
    ret

; void frames_store(uint32_t* p, uint32_t v): *p = v; a data breakpoint on *p traps with
; EIP = frames_store_after.
global frames_store, frames_store_after
frames_store:
    mov ecx, [esp + 4]
    mov eax, [esp + 8]
    mov [ecx], eax
frames_store_after:
    ret

; void frames_int80(): INT 0x80 (beyond the 32-entry IDT's limit: #GP(0x402)).
global frames_int80
frames_int80:
    int 0x80
    ret

section .rodata
align 4
fstubs:
%assign v 0
%rep 32
    dd fstub_ %+ v
%assign v v + 1
%endrep

section .data
align 8
idtr:
    dw 32 * 8 - 1
    dd 0
align 4
global frame_count, frame_log, frame_db_steps
frame_count: dd 0
frame_db_steps: dd 1
frame_resume: dd 0
saved_esp: dd 0
saved_esp2: dd 0

section .bss nobits alloc noexec write align=8
frame_log:
    resb FRAME_MAX * FRAME_SIZE
