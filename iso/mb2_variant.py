#!/usr/bin/env python3
"""Make hv-vbe.elf from hv.elf by swapping one multiboot2 header for another of the same size.

usage: mb2_variant.py IN.elf FROM.bin TO.bin OUT.elf

FROM.bin and TO.bin are boot/multiboot2_header.asm's .multiboot2 section assembled without and
with HV_MB2_FRAMEBUFFER (iso/CMakeLists.txt). The header is linked into the start of .text
(boot/kernel.ld), so it is found the way a loader finds it: 8-byte aligned within the first
32 KiB of the file. FROM.bin must occur there exactly once (the build's header is the one we
think it is) and TO.bin must be as long (nothing else in the file moves); else the build fails.
"""
import sys


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    elf = bytearray(open(argv[1], "rb").read())
    old = open(argv[2], "rb").read()
    new = open(argv[3], "rb").read()
    if len(old) != len(new) or not old:
        print(f"mb2_variant: headers differ in size ({len(old)} vs {len(new)} bytes)", file=sys.stderr)
        return 1
    hits = [off for off in range(0, min(len(elf), 32768) - len(old) + 1, 8) if elf[off:off + len(old)] == old]
    if len(hits) != 1:
        print(f"mb2_variant: {argv[1]}: the multiboot2 header occurs {len(hits)} times in the first 32 KiB, "
              "expected once", file=sys.stderr)
        return 1
    elf[hits[0]:hits[0] + len(new)] = new
    with open(argv[4], "wb") as f:
        f.write(elf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
