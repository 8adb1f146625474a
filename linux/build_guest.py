#!/usr/bin/env python3
"""build_guest.py --root DIR --out DIR --init FILE [--bin FILE ...]: the Linux guest's build
products from the unpacked Debian packages in --root (tools/hv setup fills build/linux/root):

  OUT/vmlinuz          the kernel package's bzImage, copied
  OUT/vmlinux          the ELF inside it, stripped, with the PVH note (bzimage_to_elf.py)
  OUT/initramfs.cpio   busybox, its applet links, /init and our programs (mkinitramfs.py)

Run on every kernel-preset build (linux/CMakeLists.txt); each product is remade only when one
of its inputs is newer. Without --root it prints one line and makes nothing, so that the rest
of the build never needs the Linux packages.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def stale(out, inputs):
    if not os.path.exists(out):
        return True
    t = os.path.getmtime(out)
    return any(os.path.getmtime(i) > t for i in inputs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--bin", action="append", default=[])
    a = ap.parse_args()

    kernels = sorted(glob.glob(os.path.join(a.root, "boot", "vmlinuz-*")))
    busybox = os.path.join(a.root, "bin", "busybox")
    if not kernels or not os.path.exists(busybox):
        print(f"linux: no kernel or busybox under {a.root}: `tools/hv setup` fetches them; "
              "the Linux guest is not built")
        return 0
    if len(kernels) > 1:
        sys.exit(f"linux: error: more than one kernel under {a.root}/boot: {kernels} "
                 "(remove build/linux and run tools/hv setup)")
    kernel = kernels[0]
    os.makedirs(a.out, exist_ok=True)
    vmlinuz = os.path.join(a.out, "vmlinuz")
    vmlinux = os.path.join(a.out, "vmlinux")
    cpio = os.path.join(a.out, "initramfs.cpio")
    me = [os.path.abspath(__file__)]
    if stale(vmlinuz, [kernel]):
        shutil.copyfile(kernel, vmlinuz)
        print(f"linux: {vmlinuz} from {os.path.basename(kernel)}")
    if stale(vmlinux, [vmlinuz, os.path.join(HERE, "bzimage_to_elf.py")] + me):
        subprocess.run([sys.executable, os.path.join(HERE, "bzimage_to_elf.py"), vmlinuz, vmlinux],
                       check=True)
    tool = os.path.join(HERE, "mkinitramfs.py")
    if stale(cpio, [busybox, a.init, tool] + a.bin + me):
        cmd = [sys.executable, tool, cpio, "--busybox", busybox, "--init", a.init]
        for b in a.bin:
            cmd += ["--bin", b]
        subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
