; The encodings of the emulate guest (tests/guests/guest_emulate.cpp): one code fragment per
; case, each ending in RET, in 32-bit protected mode (table cases32) and in 64-bit mode (table
; cases64), plus the harnesses that run them and the trip to long mode and back.
;
; Every fragment addresses its memory operand relative to the target base in EBP/EBX (64-bit:
; RBP/RBX/R13), or through ESI/EDI, or at an absolute address TGT (moffs, RIP-relative): such
; fragments are assembled once per target (device, RAM, and - 32-bit - the bare stand-in for
; the device). The C++ side runs each fragment on the scratch MMIO device (under hv: every
; access is emulated by hv) and on RAM (executed by the CPU), and compares.
;
; Fixed guest-physical layout (inside the 32 MiB of RAM hv gives, and QEMU's -m 64):
;   RAM_AREA  0x1C00000  8 KiB: the RAM target (base RAM_AREA + 0xFF0)
;   SRC/DST   0x1D00000 / 0x1D01000: RAM source and destination of string moves
;   ALT_AREA  0x1F00000  8 KiB: bare (no hv), the device's stand-in
;   device    HV_SCRATCH_MMIO_GPA 0xFEB00000 (hv_abi.h), base + 0xFF0: the page boundary is at
;             base + 0x10, so operands at [base + 0x0C ..] cross it
; 64-bit mode sees the device (or bare, ALT_AREA) at linear DEV64 through a 2 MiB page of its
; own (guest_emulate.cpp builds the tables), within 2 GiB of the code for RIP-relative forms.

%define DEV_GPA 0xFEB00000           ; HV_SCRATCH_MMIO_GPA
%define RAM_AREA 0x1C00000
%define ALT_AREA 0x1F00000
%define RAM_SRC 0x1D00000
%define RAM_DST 0x1D01000
%define BASE_OFF 0xFF0
%define DEV32 (DEV_GPA + BASE_OFF)
%define RAM32 (RAM_AREA + BASE_OFF)
%define ALT32 (ALT_AREA + BASE_OFF)
%define DEV64 (0x40100000 + BASE_OFF)  ; PD entry 0 of PDPT entry 1: 0x40000000 -> 2 MiB page with the device at +1 MiB
%define WIN_BEFORE 0x40               ; the compared window: [base - 0x40, base + 0x80)
%define WIN_BYTES 0xC0
%define SLOT64 (17 * 8 + WIN_BYTES + 0x40)  ; one 64-bit result: 16 GPRs, RFLAGS, window, RAM_DST[0..0x40)

; Groups (guest_emulate.cpp kGroups has the names).
%define G_MOV 0
%define G_MOVX 1
%define G_ALU 2
%define G_TEST 3
%define G_UNARY 4
%define G_LOCK 5
%define G_BT 6
%define G_STRING 7
%define G_RIPREL 8

; Flags the instruction defines (the others are compared as "unchanged" by masking them in).
%define F_ARITH 0x8D5
%define F_LOGIC 0x8C5    ; AF undefined after AND/OR/XOR/TEST
%define F_CF 0x001       ; BT*: only CF defined (ZF unchanged on current CPUs; OF SF AF PF undefined)
%define F_NONE 0x000
%define F_INCDEC 0x8D4

section .rodata
global emu_pattern
emu_pattern:                          ; the window's initial bytes
%assign k 0
%rep WIN_BYTES
    db ((k * 0x1D + 0x47) & 0xFF)
%assign k k + 1
%endrep

section .data.cases32 progbits alloc noexec write align=4
global emu_cases32
emu_cases32:
section .data.cases64 progbits alloc noexec write align=4
global emu_cases64
emu_cases64:

; ---------------------------------------------------------------- 32-bit cases
section .text
BITS 32

; C32 group, flagmask, "name", instruction...   (one instruction: same code for every target)
%macro C32 4+
  [section .rodata]
  %%name: db %3, 0
  [section .data.cases32]
  dd %%fn, %%fn, %%fn, %%name, %1, %2
  [section .text]
  %%fn:
  %4
  ret
%endmacro

; B32 group, flagmask, "name" ... E32: a fragment of several lines.
%macro B32 3
  [section .rodata]
  %%name: db %3, 0
  [section .data.cases32]
  dd %%fn, %%fn, %%fn, %%name, %1, %2
  [section .text]
  %%fn:
%endmacro
%macro E32 0
  ret
%endmacro

; A32 group, flagmask, "name", instruction using TGT (absolute address): three copies.
%macro A32 4+
  [section .rodata]
  %%name: db %3, 0
  [section .data.cases32]
  dd %%dev, %%ram, %%alt, %%name, %1, %2
  [section .text]
  %define TGT DEV32
  %%dev:
  %4
  ret
  %define TGT RAM32
  %%ram:
  %4
  ret
  %define TGT ALT32
  %%alt:
  %4
  ret
  %undef TGT
%endmacro

; --- MOV ---
C32 G_MOV, F_NONE, "mov eax,[ebp]", mov eax, [ebp]
C32 G_MOV, F_NONE, "mov eax,[ebp+0xe] (crosses the page)", mov eax, [ebp + 0xE]
C32 G_MOV, F_NONE, "mov [ebp+0xd],edx (crosses)", mov [ebp + 0xD], edx
C32 G_MOV, F_NONE, "mov al,[ebx+1]", mov al, [ebx + 1]
C32 G_MOV, F_NONE, "mov ah,[ebx+2]", mov ah, [ebx + 2]
C32 G_MOV, F_NONE, "mov ch,[ebp-3]", mov ch, [ebp - 3]
C32 G_MOV, F_NONE, "mov [ebx+5],dh", mov [ebx + 5], dh
C32 G_MOV, F_NONE, "mov [ebx+6],bh", mov [ebx + 6], bh
C32 G_MOV, F_NONE, "mov ax,[ebx+0xf] (crosses)", mov ax, [ebx + 0xF]
C32 G_MOV, F_NONE, "mov [ebp+6],dx", mov [ebp + 6], dx
C32 G_MOV, F_NONE, "mov dword [ebx+8],imm32", mov dword [ebx + 8], 0x11223344
C32 G_MOV, F_NONE, "mov word [ebp+0xf],imm16 (crosses)", mov word [ebp + 0xF], 0xBEEF
C32 G_MOV, F_NONE, "mov byte [ebx-1],imm8", mov byte [ebx - 1], 0x5A
C32 G_MOV, F_NONE, "mov eax,[ebx+ecx*4+1] (SIB)", mov eax, [ebx + ecx * 4 + 1]
C32 G_MOV, F_NONE, "mov edx,[esi]", mov edx, [esi]
C32 G_MOV, F_NONE, "mov [edi-4],eax", mov [edi - 4], eax
C32 G_MOV, F_NONE, "es: mov eax,[ebx]", mov eax, [es:ebx]
C32 G_MOV, F_NONE, "ss: mov [ebx+4],ecx", mov [ss:ebx + 4], ecx
C32 G_MOV, F_NONE, "mov eax,[ebx+disp32]", mov eax, [dword ebx + 0x10]
A32 G_MOV, F_NONE, "mov eax,[moffs32]", mov eax, [TGT]
A32 G_MOV, F_NONE, "mov [moffs32],eax", mov [TGT + 4], eax
A32 G_MOV, F_NONE, "mov al,[moffs32]", mov al, [TGT + 0xF]
A32 G_MOV, F_NONE, "mov [moffs32],al", mov [TGT - 1], al
A32 G_MOV, F_NONE, "mov ax,[moffs32] (crosses)", mov ax, [TGT + 0xF]

; --- MOVZX / MOVSX ---
C32 G_MOVX, F_NONE, "movzx eax,byte [ebp+3]", movzx eax, byte [ebp + 3]
C32 G_MOVX, F_NONE, "movzx eax,word [ebx+0xf] (crosses)", movzx eax, word [ebx + 0xF]
C32 G_MOVX, F_NONE, "movsx eax,byte [ebp+1]", movsx eax, byte [ebp + 1]
C32 G_MOVX, F_NONE, "movsx edx,word [ebx+6]", movsx edx, word [ebx + 6]
C32 G_MOVX, F_NONE, "movsx ax,byte [ebx+7]", movsx ax, byte [ebx + 7]
C32 G_MOVX, F_NONE, "movzx dx,byte [ebx]", movzx dx, byte [ebx]
C32 G_MOVX, F_NONE, "movzx ecx,byte [ebx+0x10]", movzx ecx, byte [ebx + 0x10]

; --- ALU: every operation in its memory forms ---
%macro ALU32 1
C32 G_ALU, F_ARITH, %str(%1 [ebp+4] / eax), %1 [ebp + 4], eax
C32 G_ALU, F_ARITH, %str(%1 [ebx+1] / dl), %1 [ebx + 1], dl
C32 G_ALU, F_ARITH, %str(%1 [ebx+2] / ah), %1 [ebx + 2], ah
C32 G_ALU, F_ARITH, %str(%1 ax / [ebp+0xe] crosses), %1 ax, [ebp + 0xE]
C32 G_ALU, F_ARITH, %str(%1 edx / [ebx]), %1 edx, [ebx]
C32 G_ALU, F_ARITH, %str(%1 dword [ebp+8] / imm8), %1 dword [ebp + 8], byte 0x7F
C32 G_ALU, F_ARITH, %str(%1 dword [ebx+0xc] / -imm8 crosses), %1 dword [ebx + 0xC], byte -3
C32 G_ALU, F_ARITH, %str(%1 byte [ebx+2] / imm8), %1 byte [ebx + 2], 0x81
C32 G_ALU, F_ARITH, %str(%1 word [ebx+0xe] / imm16), %1 word [ebx + 0xE], 0x1234
C32 G_ALU, F_ARITH, %str(%1 dword [ebx] / imm32), %1 dword [ebx], 0x80000001
%endmacro
ALU32 add
ALU32 adc
ALU32 sub
ALU32 sbb
ALU32 cmp
%macro LOGIC32 1
C32 G_ALU, F_LOGIC, %str(%1 [ebp+4] / eax), %1 [ebp + 4], eax
C32 G_ALU, F_LOGIC, %str(%1 [ebx+1] / dl), %1 [ebx + 1], dl
C32 G_ALU, F_LOGIC, %str(%1 ax / [ebp+0xe] crosses), %1 ax, [ebp + 0xE]
C32 G_ALU, F_LOGIC, %str(%1 edx / [ebx]), %1 edx, [ebx]
C32 G_ALU, F_LOGIC, %str(%1 dword [ebp+8] / imm8), %1 dword [ebp + 8], byte 0x7F
C32 G_ALU, F_LOGIC, %str(%1 byte [ebx+2] / imm8), %1 byte [ebx + 2], 0x81
C32 G_ALU, F_LOGIC, %str(%1 dword [ebx] / imm32), %1 dword [ebx], 0x80000001
%endmacro
LOGIC32 or
LOGIC32 and
LOGIC32 xor

; --- TEST ---
C32 G_TEST, F_LOGIC, "test [ebp],eax", test [ebp], eax
C32 G_TEST, F_LOGIC, "test [ebx+0xf],dx (crosses)", test [ebx + 0xF], dx
C32 G_TEST, F_LOGIC, "test byte [ebx+1],imm8", test byte [ebx + 1], 0x80
C32 G_TEST, F_LOGIC, "test dword [ebx+4],imm32", test dword [ebx + 4], 0x10000
C32 G_TEST, F_LOGIC, "test [ebx+3],ch", test [ebx + 3], ch

; --- NOT NEG INC DEC ---
C32 G_UNARY, F_NONE, "not dword [ebp]", not dword [ebp]
C32 G_UNARY, F_NONE, "not byte [ebx+0xf]", not byte [ebx + 0xF]
C32 G_UNARY, F_ARITH, "neg dword [ebp+0xe] (crosses)", neg dword [ebp + 0xE]
C32 G_UNARY, F_ARITH, "neg byte [ebx]", neg byte [ebx]
C32 G_UNARY, F_ARITH, "neg word [ebx+6]", neg word [ebx + 6]
C32 G_UNARY, F_ARITH, "inc dword [ebx+4]", inc dword [ebx + 4]
C32 G_UNARY, F_ARITH, "inc word [ebp+0xf] (crosses)", inc word [ebp + 0xF]
C32 G_UNARY, F_ARITH, "dec byte [ebx+3]", dec byte [ebx + 3]
C32 G_UNARY, F_ARITH, "dec dword [ebp+8]", dec dword [ebp + 8]

; --- LOCK'd read-modify-write, XCHG, XADD, CMPXCHG ---
C32 G_LOCK, F_ARITH, "lock add [ebp],eax", lock add [ebp], eax
C32 G_LOCK, F_LOGIC, "lock or [ebx+2],dl", lock or [ebx + 2], dl
C32 G_LOCK, F_ARITH, "lock sub dword [ebp+0xe],3 (crosses)", lock sub dword [ebp + 0xE], byte 3
C32 G_LOCK, F_LOGIC, "lock and word [ebx+6],imm16", lock and word [ebx + 6], 0xF0F0
C32 G_LOCK, F_LOGIC, "lock xor byte [ebx+1],imm8", lock xor byte [ebx + 1], 0x55
C32 G_LOCK, F_ARITH, "lock adc [ebx+8],ecx", lock adc [ebx + 8], ecx
C32 G_LOCK, F_ARITH, "lock sbb [ebx+8],ecx", lock sbb [ebx + 8], ecx
C32 G_LOCK, F_ARITH, "lock inc dword [ebx]", lock inc dword [ebx]
C32 G_LOCK, F_ARITH, "lock dec word [ebx+6]", lock dec word [ebx + 6]
C32 G_LOCK, F_NONE, "lock not byte [ebp+1]", lock not byte [ebp + 1]
C32 G_LOCK, F_ARITH, "lock neg dword [ebx+8]", lock neg dword [ebx + 8]
C32 G_LOCK, F_NONE, "xchg [ebp],eax", xchg [ebp], eax
C32 G_LOCK, F_NONE, "xchg [ebx+0xf],dx (crosses)", xchg [ebx + 0xF], dx
C32 G_LOCK, F_NONE, "xchg [ebp+3],cl", xchg [ebp + 3], cl
C32 G_LOCK, F_NONE, "lock xchg [ebx+4],ah", lock xchg [ebx + 4], ah
C32 G_LOCK, F_ARITH, "lock xadd [ebx],edx", lock xadd [ebx], edx
C32 G_LOCK, F_ARITH, "xadd [ebp+1],al", xadd [ebp + 1], al
C32 G_LOCK, F_ARITH, "lock cmpxchg [ebx],edx (differs)", lock cmpxchg [ebx], edx
B32 G_LOCK, F_ARITH, "lock cmpxchg [ebx+0xe],edx (equal, crosses)"
    mov eax, [ebx + 0xE]
    lock cmpxchg [ebx + 0xE], edx
E32
C32 G_LOCK, F_ARITH, "cmpxchg [ebp+2],cl", cmpxchg [ebp + 2], cl

; --- BT BTS BTR BTC ---
C32 G_BT, F_CF, "bt dword [ebp],5", bt dword [ebp], 5
C32 G_BT, F_CF, "bts dword [ebx+4],31", bts dword [ebx + 4], 31
C32 G_BT, F_CF, "btr [ebp],ecx", btr [ebp], ecx
C32 G_BT, F_CF, "lock btc word [ebx+2],3", lock btc word [ebx + 2], 3
B32 G_BT, F_CF, "btc [ebx],ecx (bit 45: the next dword)"
    mov ecx, 45
    btc [ebx], ecx
E32
B32 G_BT, F_CF, "lock bts [ebp+8],ecx (bit -9)"
    mov ecx, -9
    lock bts [ebp + 8], ecx
E32
B32 G_BT, F_CF, "bt [ebx],cx (bit 130, crosses)"
    mov ecx, 130
    bt [ebx], cx
E32

; --- MOVS STOS LODS ---
C32 G_STRING, F_NONE, "rep movsd (device to device)", rep movsd
B32 G_STRING, F_NONE, "rep movsb (RAM to device, crosses)"
    mov esi, RAM_SRC
    lea edi, [ebp - 0x20]
    mov ecx, 0x40
    rep movsb
E32
B32 G_STRING, F_NONE, "rep movsd (device to RAM, crosses)"
    lea esi, [ebp - 8]
    mov edi, RAM_DST
    mov ecx, 8
    rep movsd
E32
B32 G_STRING, F_NONE, "std; rep movsw (backwards)"
    std
    lea esi, [ebp + 0x1E]
    lea edi, [ebp + 0x3E]
    mov ecx, 9
    rep movsw
    cld
E32
B32 G_STRING, F_NONE, "rep stosd (crosses)"
    lea edi, [ebp - 0xC]
    mov ecx, 5
    rep stosd
E32
C32 G_STRING, F_NONE, "rep stosb", rep stosb
C32 G_STRING, F_NONE, "stosw", stosw
C32 G_STRING, F_NONE, "movsb", movsb
C32 G_STRING, F_NONE, "lodsd", lodsd
C32 G_STRING, F_NONE, "rep lodsb", rep lodsb
B32 G_STRING, F_NONE, "fs: movsd (source override)"
    mov esi, ebp
    fs movsd
E32

section .data.cases32
global emu_cases32_end
emu_cases32_end:

; ---------------------------------------------------------------- 32-bit harness
section .text
BITS 32

; uint32_t emu_run32(void (*fn)(), struct Regs32* r): runs fn with EAX..EBP and EFLAGS from *r
; and stores them back. Regs32: eax ebx ecx edx esi edi ebp eflags (8 dwords). cdecl.
global emu_run32
emu_run32:
    push ebp
    push ebx
    push esi
    push edi
    mov eax, [esp + 20]
    mov [run_fn], eax
    mov eax, [esp + 24]
    mov [run_regs], eax
    push dword [eax + 28]
    mov ebx, [eax + 4]
    mov ecx, [eax + 8]
    mov edx, [eax + 12]
    mov esi, [eax + 16]
    mov edi, [eax + 20]
    mov ebp, [eax + 24]
    mov eax, [eax]
    popfd
    call [run_fn]
    pushfd
    cld
    push eax
    mov eax, [run_regs]
    pop dword [eax]
    pop dword [eax + 28]
    mov [eax + 4], ebx
    mov [eax + 8], ecx
    mov [eax + 12], edx
    mov [eax + 16], esi
    mov [eax + 20], edi
    mov [eax + 24], ebp
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret

; ---------------------------------------------------------------- long mode and back
; void emu_run64_all(uint32_t cr3): loads a GDT with a 64-bit code segment, enables PAE, sets
; EFER.LME, loads CR3 (4-level tables built by the caller) and turns paging on, far-jumps to
; 64-bit code, runs every 64-bit case (run64_all), comes back to 32-bit protected mode with
; paging off and the library's GDT. Interrupts stay off throughout (no 64-bit IDT).
extern guest_gdt_desc
global emu_run64_all
emu_run64_all:
    push ebp
    push ebx
    push esi
    push edi
    mov eax, [esp + 20]
    mov [saved_esp], esp
    lgdt [gdt64_desc]
    jmp 0x08:.flat32
.flat32:
    mov cr3, eax
    mov eax, cr4
    or eax, 1 << 5                  ; PAE
    mov cr4, eax
    mov ecx, 0xC0000080             ; IA32_EFER
    rdmsr
    or eax, 1 << 8                  ; LME
    wrmsr
    mov eax, cr0
    or eax, 1 << 31                 ; PG: long mode is active from here (compatibility mode)
    mov cr0, eax
    jmp 0x18:.long64
BITS 64
.long64:
    call run64_all
    ; Back to compatibility mode (32-bit code segment 0x08), then out of long mode.
    push 0x08
    mov eax, .compat32
    push rax
    retfq
BITS 32
.compat32:
    mov eax, cr0
    and eax, ~(1 << 31)             ; paging off: leaves IA-32e mode
    mov cr0, eax
    mov ecx, 0xC0000080
    rdmsr
    and eax, ~(1 << 8)
    wrmsr
    mov eax, cr4
    and eax, ~(1 << 5)
    mov cr4, eax
    lgdt [guest_gdt_desc]
    jmp 0x08:.back
.back:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, [saved_esp]
    pop edi
    pop esi
    pop ebx
    pop ebp
    ret

; ---------------------------------------------------------------- 64-bit harness
BITS 64
; For every 64-bit case i and variant v (0/1: device with flags 0x2 / 0x8D7; 2/3: RAM): fill
; the window from emu_pattern and clear RAM_DST with plain MOVs, load the registers (RBX RBP
; R13 = base, RSI = base + 0x20, RDI = base + 0x40, the others fixed values), run the case,
; and store GPRs, RFLAGS, the window and RAM_DST[0..0x40) in emu_results64[i * 4 + v].
run64_all:
    mov dword [loop_i], 0
.case:
    mov eax, [loop_i]
    mov ecx, [emu_cases64_count]
    cmp eax, ecx
    jae .done
    mov dword [loop_v], 0
.variant:
    mov eax, [loop_i]
    imul eax, eax, 16
    add eax, emu_cases64
    mov ecx, [loop_v]
    mov edx, [rax]                  ; fn_dev
    mov r8, DEV64
    cmp ecx, 2
    jb .have_target
    mov edx, [rax + 4]              ; fn_ram
    mov r8, RAM32
.have_target:
    mov [cur_fn], rdx
    mov [cur_base], r8
    mov eax, [loop_i]
    shl eax, 2
    add eax, ecx
    imul eax, eax, SLOT64
    add eax, emu_results64
    mov [cur_slot], rax
    ; window and RAM_DST
    lea rdi, [r8 - WIN_BEFORE]
    mov esi, emu_pattern
    mov ecx, WIN_BYTES / 8
.fill:
    mov rax, [rsi]
    mov [rdi], rax
    add rsi, 8
    add rdi, 8
    dec ecx
    jnz .fill
    mov edi, RAM_DST
    mov ecx, 8
.clear:
    mov qword [rdi], 0
    add rdi, 8
    dec ecx
    jnz .clear
    ; registers and flags
    mov ecx, [loop_v]
    mov eax, 0x002
    test ecx, 1
    jz .flags
    mov eax, 0x8D7
.flags:
    push rax
    mov rbx, [cur_base]
    mov rbp, rbx
    mov r13, rbx
    lea rsi, [rbx + 0x20]
    lea rdi, [rbx + 0x40]
    mov rax, 0x0123456789ABCDEF
    mov ecx, 3
    mov rdx, 0xFEDCBA9876543210
    mov r8, 0x8877665544332211
    mov r9, 0x1122334455667788
    mov r10, 0x00000000FFFFFFFF
    mov r11, 0x8000000000000000
    mov r12d, 1
    mov r14d, 0x7F
    mov r15, -1
    popfq
    call [cur_fn]
    pushfq
    cld
    mov [tmp_rax], rax
    pop rax
    mov [tmp_flags], rax
    mov rax, [cur_slot]
    mov [rax + 8 * 1], rcx
    mov [rax + 8 * 2], rdx
    mov [rax + 8 * 3], rbx
    mov qword [rax + 8 * 4], 0      ; RSP: not compared
    mov [rax + 8 * 5], rbp
    mov [rax + 8 * 6], rsi
    mov [rax + 8 * 7], rdi
    mov [rax + 8 * 8], r8
    mov [rax + 8 * 9], r9
    mov [rax + 8 * 10], r10
    mov [rax + 8 * 11], r11
    mov [rax + 8 * 12], r12
    mov [rax + 8 * 13], r13
    mov [rax + 8 * 14], r14
    mov [rax + 8 * 15], r15
    mov rcx, [tmp_rax]
    mov [rax], rcx
    mov rcx, [tmp_flags]
    mov [rax + 8 * 16], rcx
    lea rdi, [rax + 8 * 17]
    mov rsi, [cur_base]
    sub rsi, WIN_BEFORE
    mov ecx, (WIN_BYTES + 0x40) / 8
.copy:
    cmp ecx, 8
    jne .copy_one
    mov esi, RAM_DST                ; after the window: RAM_DST
.copy_one:
    mov rax, [rsi]
    mov [rdi], rax
    add rsi, 8
    add rdi, 8
    dec ecx
    jnz .copy
    inc dword [loop_v]
    cmp dword [loop_v], 4
    jb .variant
    inc dword [loop_i]
    jmp .case
.done:
    ret

; ---------------------------------------------------------------- 64-bit cases
; C64 group, flagmask, "name", instruction...
%macro C64 4+
  [section .rodata]
  %%name: db %3, 0
  [section .data.cases64]
  dd %%fn, %%fn, %%name, %1 | (%2 << 8)
  [section .text]
  %%fn:
  %4
  ret
%endmacro
%macro B64 3
  [section .rodata]
  %%name: db %3, 0
  [section .data.cases64]
  dd %%fn, %%fn, %%name, %1 | (%2 << 8)
  [section .text]
  %%fn:
%endmacro
%macro E64 0
  ret
%endmacro
; A64: two copies with TGT = the device's linear address / the RAM target.
%macro A64 4+
  [section .rodata]
  %%name: db %3, 0
  [section .data.cases64]
  dd %%dev, %%ram, %%name, %1 | (%2 << 8)
  [section .text]
  %define TGT DEV64
  %%dev:
  %4
  ret
  %define TGT RAM32
  %%ram:
  %4
  ret
  %undef TGT
%endmacro

BITS 64
C64 G_MOV, F_NONE, "mov rax,[rbp]", mov rax, [rbp]
C64 G_MOV, F_NONE, "mov rax,[rbx+0xc] (crosses)", mov rax, [rbx + 0xC]
C64 G_MOV, F_NONE, "mov [rbp+8],rdx (crosses)", mov [rbp + 8], rdx
C64 G_MOV, F_NONE, "mov r9,[r13+0x10]", mov r9, [r13 + 0x10]
C64 G_MOV, F_NONE, "mov [r13+r12*8+8],r10", mov [r13 + r12 * 8 + 8], r10
C64 G_MOV, F_NONE, "mov r11d,[rbx+4] (zero-extends)", mov r11d, [rbx + 4]
C64 G_MOV, F_NONE, "mov r10w,[rbp+0xf] (crosses)", mov r10w, [rbp + 0xF]
C64 G_MOV, F_NONE, "mov r8b,[rbx+1]", mov r8b, [rbx + 1]
C64 G_MOV, F_NONE, "mov sil,[rbx+3] (REX: SIL)", mov sil, [rbx + 3]
C64 G_MOV, F_NONE, "mov [rbx+5],dil (REX: DIL)", mov [rbx + 5], dil
C64 G_MOV, F_NONE, "mov ah,[rbx+2] (no REX: AH)", mov ah, [rbx + 2]
C64 G_MOV, F_NONE, "mov [rbp+6],dh", mov [rbp + 6], dh
C64 G_MOV, F_NONE, "mov qword [rbp+0x10],-2", mov qword [rbp + 0x10], -2
C64 G_MOV, F_NONE, "mov dword [rbx],imm32", mov dword [rbx], 0x80000001
C64 G_MOV, F_NONE, "mov word [r13+0xe],imm16 (crosses)", mov word [r13 + 0xE], 0x7FFF
C64 G_MOV, F_NONE, "mov byte [rbx+0x1f],imm8", mov byte [rbx + 0x1F], 0xA5
C64 G_MOV, F_NONE, "mov eax,[ebx] (a32)", mov eax, [ebx]
C64 G_MOV, F_NONE, "fs: mov rax,[rbx]", mov rax, [fs:rbx]
B64 G_MOV, F_NONE, "ds: mov rcx,[rbx+8] (DS ignored)"
    db 0x3E                         ; DS override (NASM refuses to write it in 64-bit code)
    mov rcx, [rbx + 8]
E64
A64 G_MOV, F_NONE, "mov rax,[moffs64]", mov rax, [qword TGT]
A64 G_MOV, F_NONE, "mov [moffs64],eax", mov [qword TGT + 8], eax
A64 G_MOV, F_NONE, "mov al,[moffs64]", mov al, [qword TGT + 0xF]
A64 G_MOV, F_NONE, "mov [moffs64],rax (crosses)", mov [qword TGT + 0xC], rax
C64 G_MOVX, F_NONE, "movzx r8d,byte [rbx+7]", movzx r8d, byte [rbx + 7]
C64 G_MOVX, F_NONE, "movsx rax,word [rbp+0xf] (crosses)", movsx rax, word [rbp + 0xF]
C64 G_MOVX, F_NONE, "movsxd rdx,dword [rbx+4]", movsxd rdx, dword [rbx + 4]
C64 G_MOVX, F_NONE, "movsx r9,byte [rbx+0x11]", movsx r9, byte [rbx + 0x11]
C64 G_MOVX, F_NONE, "movzx r15w,byte [rbx]", movzx r15w, byte [rbx]

%macro ALU64 2
C64 G_ALU, %2, %str(%1 [rbp+8] / rax crosses), %1 [rbp + 8], rax
C64 G_ALU, %2, %str(%1 r10 / [rbx+0xc]), %1 r10, [rbx + 0xC]
C64 G_ALU, %2, %str(%1 qword [rbx] / imm32), %1 qword [rbx], 0x7FFFFFFF
C64 G_ALU, %2, %str(%1 byte [r13+1] / r8b), %1 byte [r13 + 1], r8b
C64 G_ALU, %2, %str(%1 dword [rbp+4] / -3), %1 dword [rbp + 4], byte -3
%endmacro
ALU64 add, F_ARITH
ALU64 or, F_LOGIC
ALU64 adc, F_ARITH
ALU64 sbb, F_ARITH
ALU64 and, F_LOGIC
ALU64 sub, F_ARITH
ALU64 xor, F_LOGIC
ALU64 cmp, F_ARITH
C64 G_TEST, F_LOGIC, "test [rbx],rdx", test [rbx], rdx
C64 G_TEST, F_LOGIC, "test qword [rbp+8],-1", test qword [rbp + 8], -1
C64 G_UNARY, F_NONE, "not qword [rbx]", not qword [rbx]
C64 G_UNARY, F_ARITH, "neg qword [rbp+0xc] (crosses)", neg qword [rbp + 0xC]
C64 G_UNARY, F_ARITH, "inc qword [rbx+8]", inc qword [rbx + 8]
C64 G_UNARY, F_ARITH, "dec byte [r13+2]", dec byte [r13 + 2]
C64 G_LOCK, F_ARITH, "lock add [rbp],rax", lock add [rbp], rax
C64 G_LOCK, F_ARITH, "lock xadd [rbx+8],rdx (crosses)", lock xadd [rbx + 8], rdx
C64 G_LOCK, F_ARITH, "lock cmpxchg [rbx],rdx", lock cmpxchg [rbx], rdx
B64 G_LOCK, F_ARITH, "lock cmpxchg [rbx],r9 (equal)"
    mov rax, [rbx]
    lock cmpxchg [rbx], r9
E64
C64 G_LOCK, F_NONE, "xchg [rbp+0xc],r9 (crosses)", xchg [rbp + 0xC], r9
C64 G_LOCK, F_NONE, "xchg [rbx],sil", xchg [rbx], sil
C64 G_BT, F_CF, "lock bts qword [rbx],63", lock bts qword [rbx], 63
C64 G_BT, F_CF, "lock btr [rbx+8],r12", lock btr [rbx + 8], r12
B64 G_BT, F_CF, "btc [rbx],r14 (bit 127)"
    mov r14d, 127
    btc [rbx], r14
E64
C64 G_STRING, F_NONE, "rep movsq (device to device)", rep movsq
B64 G_STRING, F_NONE, "rep movsb (RAM to device, crosses)"
    mov esi, RAM_SRC
    lea rdi, [rbp - 0x20]
    mov ecx, 0x40
    rep movsb
E64
B64 G_STRING, F_NONE, "rep movsd (device to RAM, crosses)"
    lea rsi, [rbp - 8]
    mov edi, RAM_DST
    mov ecx, 8
    rep movsd
E64
B64 G_STRING, F_NONE, "rep stosq (crosses)"
    lea rdi, [rbp - 8]
    mov ecx, 4
    rep stosq
E64
B64 G_STRING, F_NONE, "std; rep stosw"
    std
    lea rdi, [rbp + 0x12]
    mov ecx, 6
    rep stosw
    cld
E64
B64 G_STRING, F_NONE, "rep stosb (a32)"
    a32 rep stosb
E64
C64 G_STRING, F_NONE, "lodsq", lodsq
; R64 group, flags, "name", {bytes up to the disp32}, target offset, immediate size, immediate:
; RIP-relative by hand (NASM will not address an absolute constant RIP-relatively): the disp32
; is the target minus the address of the next instruction.
%macro R64 7
  [section .rodata]
  %%name: db %3, 0
  [section .data.cases64]
  dd %%dev, %%ram, %%name, %1 | (%2 << 8)
  [section .text]
  %%dev:
  db %4
  dd DEV64 + %5 - ($ + 4 + %6)
  %if %6 == 1
  db %7
  %elif %6 == 4
  dd %7
  %endif
  ret
  %%ram:
  db %4
  dd RAM32 + %5 - ($ + 4 + %6)
  %if %6 == 1
  db %7
  %elif %6 == 4
  dd %7
  %endif
  ret
%endmacro
R64 G_RIPREL, F_NONE, "mov rax,[rip+TGT]", {0x48, 0x8B, 0x05}, 0, 0, 0
R64 G_RIPREL, F_ARITH, "add [rip+TGT+8],edx", {0x01, 0x15}, 8, 0, 0
R64 G_RIPREL, F_NONE, "mov [rip+TGT+0xe],r9 (crosses)", {0x4C, 0x89, 0x0D}, 0xE, 0, 0
R64 G_RIPREL, F_NONE, "mov byte [rip+TGT+3],imm8", {0xC6, 0x05}, 3, 1, 0x3C
R64 G_RIPREL, F_LOGIC, "test dword [rip+TGT],imm32", {0xF7, 0x05}, 0, 4, 0x01010101
R64 G_RIPREL, F_ARITH, "sub r8,[rip+TGT+0x10]", {0x4C, 0x2B, 0x05}, 0x10, 0, 0

section .data.cases64
emu_cases64_end:
section .data
align 4
global emu_cases64_count
emu_cases64_count: dd (emu_cases64_end - emu_cases64) / 16
align 8
gdt64:
    dq 0
    dq 0x00CF9A000000FFFF           ; 0x08 code, 32-bit
    dq 0x00CF92000000FFFF           ; 0x10 data
    dq 0x00AF9A000000FFFF           ; 0x18 code, 64-bit (L = 1)
gdt64_end:
gdt64_desc:
    dw gdt64_end - gdt64 - 1
    dd gdt64

section .bss nobits alloc noexec write align=8
run_fn: resd 1
run_regs: resd 1
saved_esp: resd 1
loop_i: resd 1
loop_v: resd 1
alignb 8
cur_fn: resq 1
cur_base: resq 1
cur_slot: resq 1
tmp_rax: resq 1
tmp_flags: resq 1
global emu_results64
emu_results64: resb SLOT64 * 4 * 128
