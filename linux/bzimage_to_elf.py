#!/usr/bin/env python3
"""bzimage_to_elf.py BZIMAGE OUT_ELF: the uncompressed kernel ELF (vmlinux) from a bzImage.

Our own script (never Linux's scripts/extract-vmlinux). The facts it relies on, from the x86
boot protocol (Documentation/x86/boot.rst):
- the setup header starts at 0x1f1; "HdrS" at 0x202 and the protocol version at 0x206;
- setup_sects at 0x1f1 (0 means 4): the protected-mode part starts at (setup_sects + 1) * 512;
- payload_offset (0x248) and payload_length (0x24c), protocol 2.08 and later: the compressed
  kernel inside the protected-mode part.
Debian's cloud kernel compresses with LZ4 in the legacy frame format (magic 02 21 4c 18); the
kernel build appends the uncompressed size as 4 little-endian bytes. The `lz4` tool decodes the
legacy frame (and stops at the trailing size word); we check the result against that size, that
it is an x86-64 ELF, and that it has the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, type 18, owner
"Xen") that hv's PVH loader needs. Then the ELF is stripped (its symbols are 10+ MiB that GRUB
would otherwise read into the emulated machine on every boot).
"""
import shutil
import struct
import subprocess
import sys

LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
XEN_ELFNOTE_PHYS32_ENTRY = 18


def die(msg):
    sys.exit(f"bzimage_to_elf: error: {msg}")


def payload(image: bytes) -> bytes:
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        die("not a bzImage (no 'HdrS' setup header signature at 0x202)")
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        die(f"boot protocol {version >> 8}.{version & 0xff} has no payload fields (needs 2.08+)")
    setup_sects = image[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", image, 0x248)
    start = pm_start + off
    if length == 0 or start + length > len(image):
        die(f"payload at 0x{start:x}+0x{length:x} lies outside the {len(image)}-byte file (truncated?)")
    data = image[start:start + length]
    if data[:4] != LZ4_LEGACY_MAGIC:
        die(f"payload starts with {data[:4].hex()}, not the LZ4 legacy frame magic 02214c18 "
            "(another compression: add its decoder here)")
    return data


def elf_notes(elf: bytes):
    """(owner, type, desc) of every note in the PT_NOTE segments of an ELF64 file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        die("the decompressed kernel is not a little-endian ELF64 file")
    machine = struct.unpack_from("<H", elf, 18)[0]
    if machine != 62:
        die(f"the decompressed kernel is for ELF machine {machine}, not x86-64 (62)")
    phoff, = struct.unpack_from("<Q", elf, 32)
    phentsize, phnum = struct.unpack_from("<HH", elf, 54)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0").decode(errors="replace")
            dpos = pos + 12 + ((namesz + 3) & ~3)
            yield name, ntype, elf[dpos:dpos + descsz]
            pos = dpos + ((descsz + 3) & ~3)


def pvh_entry(elf: bytes):
    for name, ntype, desc in elf_notes(elf):
        if name == "Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY and len(desc) >= 4:
            return struct.unpack_from("<I", desc)[0]
    return None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    image = open(src, "rb").read()
    data = payload(image)
    want = struct.unpack_from("<I", data, len(data) - 4)[0]
    lz4 = shutil.which("lz4")
    if not lz4:
        die("the lz4 tool is missing (tools/hv setup installs the Debian package lz4)")
    run = subprocess.run([lz4, "-d", "-c", "-q"], input=data[:-4], capture_output=True)
    elf = run.stdout
    if run.returncode != 0 or len(elf) != want:
        die(f"lz4 gave {len(elf)} bytes (exit {run.returncode}: {run.stderr.decode().strip()}), "
            f"the image says {want}")
    entry = pvh_entry(elf)
    if entry is None:
        die("the kernel ELF has no XEN_ELFNOTE_PHYS32_ENTRY note (built without CONFIG_PVH?)")
    tmp = out + ".tmp"
    open(tmp, "wb").write(elf)
    strip = shutil.which("llvm-strip") or shutil.which("strip")
    if not strip:
        die("no strip tool (llvm-strip or strip)")
    subprocess.run([strip, "--strip-all", tmp], check=True)
    stripped = open(tmp, "rb").read()
    if pvh_entry(stripped) != entry:
        die("stripping lost the PVH note")
    shutil.move(tmp, out)
    print(f"bzimage_to_elf: {out}: {len(stripped)} bytes (of {len(elf)} unstripped), "
          f"PVH entry 0x{entry:x}")


if __name__ == "__main__":
    main()
