#!/usr/bin/env python3
"""hv.elf may not contain instructions that read state hv leaves to its guests.

The exit fast path's guest-mode loop (hv/fast_entry.h) runs hv's code with the guest's switched
MSRs and XCR0 still loaded (hv/vcpu_msrs.h: KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, TSC_AUX).
That is only sound while hv's own code never uses them: no SYSCALL/SYSRET/SYSENTER/SYSEXIT, no
SWAPGS, no RDTSCP or RDPID (TSC_AUX), and no vector register at all (XCR0; the kernel is built
with -mgeneral-regs-only, and the explicit XSAVE/XRSTOR/FXSAVE state switch is allowed). Run
after every link of hv.elf (hv/CMakeLists.txt): a hit fails the build and names the function.

usage: check_kernel_insns.py OBJDUMP ELF
"""
import re
import subprocess
import sys

FORBIDDEN_MNEMONICS = {"syscall", "sysret", "sysretq", "sysretl", "sysenter", "sysexit", "sysexitq",
                       "swapgs", "rdtscp", "rdpid"}
VECTOR_REGISTER = re.compile(r"%[xyz]mm[0-9]+")
FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    objdump, elf = sys.argv[1], sys.argv[2]
    out = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", elf], check=True, capture_output=True,
                         text=True).stdout
    hits, function, checked = [], "?", 0
    for line in out.splitlines():
        m = FUNCTION.match(line)
        if m:
            function = m.group(1)
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip().endswith(":"):
            continue
        checked += 1
        insn = " ".join(p.strip() for p in parts[1:])  # llvm-objdump puts a tab before the operands
        mnemonic = insn.split(" ", 1)[0]
        if mnemonic in FORBIDDEN_MNEMONICS or VECTOR_REGISTER.search(insn):
            hits.append(f"{function}: {parts[0].strip()} {insn}")
    if checked == 0:
        sys.exit(f"check_kernel_insns: no instructions found in {elf} (is {objdump} an x86 objdump?)")
    if hits:
        print(f"check_kernel_insns: {elf} uses state the guest-mode loop leaves to the guest "
              "(hv/fast_entry.h):", file=sys.stderr)
        for h in hits:
            print("  " + h, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
