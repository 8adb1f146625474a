#!/usr/bin/env python3
"""Synthetic kernel images that hv's Linux loaders must refuse (hv/linux_boot.h, hv/pvh_boot.h),
for the boot scenarios guest-linux-reject-*: each is small and is wrong in exactly one way.

  linux-truncated.bin   a bzImage header (protocol 2.15, 64-bit entry) whose setup sectors and
                        syssize reach beyond the file: a truncated download
  linux-bigmem.bin      a complete bzImage whose init_size (1 GiB from 16 MiB) is more RAM than
                        the VM has
  pvh-nonote.elf        an ELF64 x86-64 executable without the XEN_ELFNOTE_PHYS32_ENTRY note
  pvh-truncated.elf     an ELF64 with the note whose loadable segment reaches beyond the file

Usage: make_bad_kernels.py OUTDIR
"""
import os
import struct
import sys


def bzimage(code_bytes, init_size, cut=0):
    sects = 1
    b = bytearray((sects + 1) * 512 + code_bytes)
    b[0x1F1] = sects
    struct.pack_into("<I", b, 0x1F4, code_bytes // 16)     # syssize
    struct.pack_into("<H", b, 0x1FE, 0xAA55)               # boot_flag
    b[0x200:0x202] = bytes([0xEB, 0x6A])                   # jump over the header (ends at 0x26C)
    b[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", b, 0x206, 0x020F)               # protocol 2.15
    b[0x211] = 0x01                                        # LOADED_HIGH
    struct.pack_into("<I", b, 0x22C, 0x7FFFFFFF)           # initrd_addr_max
    struct.pack_into("<I", b, 0x230, 0x200000)             # kernel_alignment
    b[0x234] = 1                                           # relocatable
    struct.pack_into("<H", b, 0x236, 0x7F)                 # xloadflags: 64-bit entry and more
    struct.pack_into("<I", b, 0x238, 2047)                 # cmdline_size
    struct.pack_into("<Q", b, 0x258, 0x1000000)            # pref_address
    struct.pack_into("<I", b, 0x260, init_size)            # init_size
    # The "kernel": HLT loops (never run: hv refuses these images before any vCPU starts).
    for i in range((sects + 1) * 512, len(b)):
        b[i] = 0xF4
    return bytes(b[: len(b) - cut])


def elf64(with_note, seg_filesz):
    phnum = 2 if with_note else 1
    phoff = 64
    note_off = 0x100
    note = b""
    if with_note:
        desc = struct.pack("<Q", 0x1000000)
        note = struct.pack("<III", 4, len(desc), 18) + b"Xen\0" + desc
    code_off = 0x1000
    file_bytes = code_off + 0x1000
    b = bytearray(file_bytes)
    b[0:16] = bytes([0x7F, ord("E"), ord("L"), ord("F"), 2, 1, 1]) + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", b, 16, 2, 62, 1, 0x1000000, phoff, 0, 0, 64, 56, phnum, 0, 0, 0)
    # PT_LOAD at 16 MiB.
    struct.pack_into("<IIQQQQQQ", b, phoff, 1, 5, code_off, 0xFFFFFFFF81000000, 0x1000000, seg_filesz, seg_filesz, 0x1000)
    if with_note:
        struct.pack_into("<IIQQQQQQ", b, phoff + 56, 4, 4, note_off, 0, 0, len(note), len(note), 4)
        b[note_off : note_off + len(note)] = note
    for i in range(code_off, file_bytes):
        b[i] = 0xF4
    return bytes(b)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    images = {
        "linux-truncated.bin": bzimage(64 * 1024, 0x400000, cut=4096),
        "linux-bigmem.bin": bzimage(64 * 1024, 1 << 30),
        "pvh-nonote.elf": elf64(False, 0x1000),
        "pvh-truncated.elf": elf64(True, 0x100000),
    }
    for name, data in images.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
