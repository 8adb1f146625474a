#!/usr/bin/env python3
"""mkinitramfs.py OUT.cpio --busybox FILE --init FILE [--bin FILE ...]: the initramfs of hv's
Linux guest, an uncompressed cpio archive in the "newc" format, written by us (no cpio tool,
no root privileges: device nodes are just archive entries).

Contents: the directory skeleton; /bin/busybox and a symbolic link for every applet it lists
(`busybox --list-full`: it is static, so the host runs it); /init (ours); /dev/console and
/dev/null etc. as device nodes, because the kernel opens /dev/console for init before anything
could mount devtmpfs; each --bin FILE as /bin/NAME.

newc format (the kernel's initramfs reader): each entry is the ASCII magic "070701", then 13
fields of 8 hex digits (ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
rdevmajor, rdevminor, namesize including its NUL, check = 0), the name and its NUL padded to a
multiple of 4, then the data padded to a multiple of 4. The entry named "TRAILER!!!" ends it.
Every timestamp is 0 and inode numbers count up, so the same inputs give the same bytes.
"""
import argparse
import os
import stat
import subprocess
import sys


class Cpio:
    def __init__(self, f):
        self.f, self.ino = f, 0

    def entry(self, name, mode, data=b"", nlink=1, rdev=(0, 0)):
        self.ino += 1
        nameb = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0]
        head = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.f.write(head + nameb)
        self.f.write(b"\0" * (-(len(head) + len(nameb)) % 4))
        self.f.write(data)
        self.f.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self.entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name, data, mode=0o755):
        self.entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self.entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self.entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self):
        self.entry("TRAILER!!!", 0)
        self.f.write(b"\0" * (-self.f.tell() % 512))


def applets(busybox):
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        sys.exit(f"mkinitramfs: error: '{busybox} --list-full' failed: {out.stderr.strip()}")
    return sorted(set(line.strip() for line in out.stdout.splitlines() if line.strip()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--busybox", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--bin", action="append", default=[])
    a = ap.parse_args()

    links = [p for p in applets(a.busybox) if p != "bin/busybox"]
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root", "etc", "mnt"}
    for p in links:
        d = os.path.dirname(p)
        while d:
            dirs.add(d)
            d = os.path.dirname(d)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        c = Cpio(f)
        for d in sorted(dirs):
            c.dir(d)
        c.chardev("dev/console", 5, 1)
        c.chardev("dev/null", 1, 3, 0o666)
        c.chardev("dev/ttyS0", 4, 64)
        c.file("bin/busybox", open(a.busybox, "rb").read())
        for p in links:
            if os.path.basename(p) in {os.path.basename(b) for b in a.bin}:
                continue  # one of our programs has the name
            c.symlink(p, "/bin/busybox")
        c.file("init", open(a.init, "rb").read())
        c.file("etc/profile", b"export PS1='hv-guest:\\w\\$ '\n", 0o644)
        for b in a.bin:
            c.file("bin/" + os.path.basename(b), open(b, "rb").read())
        c.finish()
        size = f.tell()
    os.replace(tmp, a.out)
    print(f"mkinitramfs: {a.out}: {size} bytes, busybox with {len(links)} applet links, "
          f"{len(a.bin)} program(s) of ours")


if __name__ == "__main__":
    main()
