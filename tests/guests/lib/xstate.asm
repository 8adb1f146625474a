; Extended-state registers for the XSAVE tests of guest-crs (tests/guests/guest_crs.cpp): load
; and store XMM0-7 and the upper halves of YMM0-7 from/to memory, XSAVE/XRSTOR. In assembly
; because the guests' C++ is compiled without SSE (-mgeneral-regs-only, as hv itself).
; The caller enables what they need first: CR4.OSFXSR for SSE, CR4.OSXSAVE and XCR0 for AVX
; and XSAVE. cdecl; only EAX, ECX, EDX and the vector registers change.

BITS 32
section .text

; void xstate_load_xmm(const void* src128x8)
global xstate_load_xmm
xstate_load_xmm:
    mov ecx, [esp + 4]
%assign i 0
%rep 8
    movdqu xmm %+ i, [ecx + 16 * i]
%assign i i + 1
%endrep
    ret

; void xstate_store_xmm(void* dst128x8)
global xstate_store_xmm
xstate_store_xmm:
    mov ecx, [esp + 4]
%assign i 0
%rep 8
    movdqu [ecx + 16 * i], xmm %+ i
%assign i i + 1
%endrep
    ret

; void xstate_zero_xmm(): PXOR of XMM0-7 (with VEX-less SSE the upper YMM halves stay)
global xstate_zero_xmm
xstate_zero_xmm:
%assign i 0
%rep 8
    pxor xmm %+ i, xmm %+ i
%assign i i + 1
%endrep
    ret

; void xstate_load_ymm_hi(const void* src128x8): bits 255:128 of YMM0-7
global xstate_load_ymm_hi
xstate_load_ymm_hi:
    mov ecx, [esp + 4]
%assign i 0
%rep 8
    vinsertf128 ymm %+ i, ymm %+ i, [ecx + 16 * i], 1
%assign i i + 1
%endrep
    ret

; void xstate_store_ymm_hi(void* dst128x8)
global xstate_store_ymm_hi
xstate_store_ymm_hi:
    mov ecx, [esp + 4]
%assign i 0
%rep 8
    vextractf128 [ecx + 16 * i], ymm %+ i, 1
%assign i i + 1
%endrep
    ret

; void xstate_zero_ymm(): VZEROALL
global xstate_zero_ymm
xstate_zero_ymm:
    vzeroall
    ret

; void xstate_xsave(void* area64, uint32_t mask): XSAVE of the components in mask (EDX = 0)
global xstate_xsave
xstate_xsave:
    mov ecx, [esp + 4]
    mov eax, [esp + 8]
    xor edx, edx
    xsave [ecx]
    ret

; void xstate_xrstor(const void* area64, uint32_t mask)
global xstate_xrstor
xstate_xrstor:
    mov ecx, [esp + 4]
    mov eax, [esp + 8]
    xor edx, edx
    xrstor [ecx]
    ret
