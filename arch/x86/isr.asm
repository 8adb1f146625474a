; Interrupt entry stubs for all 256 vectors and the common save/restore path.
;
; Each stub makes the stack uniform (a dummy error code where the CPU pushes none), pushes
; its vector number and jumps to isr_common, which saves every general register and calls
; interrupt_dispatch(InterruptFrame*) (arch/x86/idt.cpp). The frame layout, lowest address
; first, is r15 .. rax, vector, error code, then the CPU's RIP, CS, RFLAGS, RSP, SS; struct
; InterruptFrame in arch/x86/idt.h mirrors it. The stack is 16-byte aligned at the call.

BITS 64
section .text

extern interrupt_dispatch

; Vectors for which the CPU pushes an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP,
; #VC, #SX.
%macro ISR_STUB 1
isr_stub_%1:
%if %1 == 8 || %1 == 10 || %1 == 11 || %1 == 12 || %1 == 13 || %1 == 14 || %1 == 17 || %1 == 21 || %1 == 29 || %1 == 30
%else
    push qword 0
%endif
    push qword %1
    jmp isr_common
%endmacro

%assign vec 0
%rep 256
ISR_STUB vec
%assign vec vec + 1
%endrep

isr_common:
    cld
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    call interrupt_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16                     ; vector and error code
    iretq

section .rodata
align 8
global isr_stub_table
isr_stub_table:
%assign vec 0
%rep 256
    dq isr_stub_ %+ vec
%assign vec vec + 1
%endrep
