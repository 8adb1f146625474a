; VM entry and VM exit: int vmx_enter(GuestRegs* regs /*rdi*/, int launched /*esi*/)
;
; The CPU restores only the host state in the VMCS on a VM exit (RSP, RIP, control and segment
; registers, a few MSRs); every other register keeps the guest's value. So:
;   - before entry we push the host's callee-saved registers and the GuestRegs pointer, write
;     the current RSP into the host-RSP field (the exit comes back to exactly this stack), load
;     every guest general register and CR2 from *regs, and VMLAUNCH/VMRESUME;
;   - vmx_exit_point (the host-RIP field) stores every guest general register and CR2 back into
;     *regs, pops the host's registers and returns 0 from vmx_enter.
; If VMLAUNCH/VMRESUME fails, execution falls through with CF (VMfailInvalid) or ZF
; (VMfailValid) set and the guest's values in the registers: we return 1 or 2 after
; restoring the host's callee-saved registers from the stack.
; A VM exit clears RFLAGS (except bit 1), so the host resumes with interrupts off and DF = 0,
; as the C++ ABI wants.
; CR2 is loaded and saved too: the guest's #PF handler reads it and no VMCS field keeps it.

VMCS_HOST_RSP equ 0x6C14

R_RAX equ 0x00
R_RBX equ 0x08
R_RCX equ 0x10
R_RDX equ 0x18
R_RSI equ 0x20
R_RDI equ 0x28
R_RBP equ 0x30
R_R8  equ 0x38
R_R9  equ 0x40
R_R10 equ 0x48
R_R11 equ 0x50
R_R12 equ 0x58
R_R13 equ 0x60
R_R14 equ 0x68
R_R15 equ 0x70
R_CR2 equ 0x78

section .text
BITS 64

global vmx_enter
global vmx_exit_point

vmx_enter:
    push rbp
    mov rbp, rsp                 ; keeps the frame-pointer chain for stack traces
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                     ; [rsp] = regs, found again by vmx_exit_point

    mov rax, VMCS_HOST_RSP
    vmwrite rax, rsp
    jbe .host_rsp_failed         ; CF or ZF set: the VMWRITE failed

    mov rax, [rdi + R_CR2]
    mov cr2, rax

    test esi, esi                ; flags decide launch vs resume; the MOVs below keep them
    mov rax, [rdi + R_RAX]
    mov rbx, [rdi + R_RBX]
    mov rcx, [rdi + R_RCX]
    mov rdx, [rdi + R_RDX]
    mov rsi, [rdi + R_RSI]
    mov rbp, [rdi + R_RBP]
    mov r8,  [rdi + R_R8]
    mov r9,  [rdi + R_R9]
    mov r10, [rdi + R_R10]
    mov r11, [rdi + R_R11]
    mov r12, [rdi + R_R12]
    mov r13, [rdi + R_R13]
    mov r14, [rdi + R_R14]
    mov r15, [rdi + R_R15]
    mov rdi, [rdi + R_RDI]       ; last: it was the base register
    jz .launch
    vmresume
    jmp .entry_failed
.launch:
    vmlaunch
.entry_failed:
    ; Only reached when the entry failed. MOV does not change flags.
    mov eax, 2                   ; VMfailValid
    jnc vmx_restore_host
    mov eax, 1                   ; VMfailInvalid (CF)
    jmp vmx_restore_host

.host_rsp_failed:
    mov eax, 3
vmx_restore_host:
    add rsp, 8                   ; drop the regs pointer
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

vmx_exit_point:
    ; RSP = the host-RSP field = the stack of vmx_enter with [rsp] = regs.
    push rax                     ; guest RAX, parked for a moment
    mov rax, [rsp + 8]           ; regs
    mov [rax + R_RBX], rbx
    mov [rax + R_RCX], rcx
    mov [rax + R_RDX], rdx
    mov [rax + R_RSI], rsi
    mov [rax + R_RDI], rdi
    mov [rax + R_RBP], rbp
    mov [rax + R_R8],  r8
    mov [rax + R_R9],  r9
    mov [rax + R_R10], r10
    mov [rax + R_R11], r11
    mov [rax + R_R12], r12
    mov [rax + R_R13], r13
    mov [rax + R_R14], r14
    mov [rax + R_R15], r15
    pop rbx                      ; guest RAX
    mov [rax + R_RAX], rbx
    mov rbx, cr2
    mov [rax + R_CR2], rbx
    xor eax, eax                 ; kEnterExited
    jmp vmx_restore_host
