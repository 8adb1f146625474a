#!/usr/bin/env python3
"""console_relay.py --log FILE --emu-out FILE [--done REGEX] [--send-after REGEX]
                   [--pty-in-file FILE]... -- COMMAND...

The interactive serial console of `tools/hv run --guest linux` (without --guest-cmd).

It opens a pseudo-terminal, starts COMMAND (an emulator) with every "@PTY@" in its words
replaced by the pty's path (QEMU: `-serial @PTY@`; for Bochs, whose bochsrc says
`com1: mode=term, dev=@PTY@`, the file is named with --pty-in-file), so
that the emulated COM1 is the pty, and then relays: what the machine sends goes to this
terminal and to the log file; what the user types goes to the machine.

Keys: Ctrl-A x quits (the emulator is stopped); Ctrl-A Ctrl-A sends one Ctrl-A. When stdin is
a terminal it is put in raw mode (and restored on exit), so Ctrl-C, Ctrl-D, arrows, tab all
reach the guest's shell. When stdin is not a terminal (a pipe, a test), its bytes are held
back until the console shows a line matching --send-after (default: /init's "ready" line),
then sent as they come; end of input is not the end of the session.

The session ends when the emulator exits, on Ctrl-A x, or a few seconds after a console line
matches --done (the machine powered off but the emulator did not exit by itself). The exit
status is 0 (Ctrl-A x is a normal way to end), 1 when the emulator could not start.
"""
import argparse
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
import tty

CTRL_A = 0x01


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--emu-out", required=True)
    ap.add_argument("--done", default=r"^hv: (power off|reset) \(status|reboot: Power down")
    ap.add_argument("--send-after", default=r"hv-init: ready")
    ap.add_argument("--pty-in-file", action="append", default=[],
                    help="a file (e.g. a bochsrc) in which @PTY@ is replaced too, before the start")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        sys.exit("console_relay: no emulator command")

    master, slave = pty.openpty()
    tty.setraw(slave)  # the machine's bytes as they are: no echo, no CR/LF translation
    path = os.ttyname(slave)
    cmd = [w.replace("@PTY@", path) for w in cmd]
    for f in a.pty_in_file:
        text = open(f).read()
        open(f, "w").write(text.replace("@PTY@", path))
    with open(a.emu_out, "wb") as out:
        emu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    # The slave stays open here too: the emulator may open and close it, and a pty whose slave
    # side is closed by everyone gives EIO on the master.
    stdin_fd = sys.stdin.fileno()
    interactive = os.isatty(stdin_fd)
    saved = termios.tcgetattr(stdin_fd) if interactive else None
    if interactive:
        tty.setraw(stdin_fd)
        os.write(1, b"hv: console: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A\r\n")
    done_re, ready_re = re.compile(a.done), re.compile(a.send_after)
    log = open(a.log, "wb")
    line = b""
    ready = interactive
    pending = b""
    stdin_open = True
    escape = False
    done_at = None
    quit_key = False
    try:
        while emu.poll() is None:
            if done_at is not None and time.monotonic() - done_at > 5:
                break
            fds = [master] + ([stdin_fd] if stdin_open else [])
            r, _, _ = select.select(fds, [], [], 0.2)
            if master in r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    data = b""
                if data:
                    log.write(data)
                    log.flush()
                    os.write(1, data.replace(b"\n", b"\r\n") if interactive else data)
                    line += data
                    *complete, line = line.split(b"\n")
                    for l in complete:
                        text = l.decode(errors="replace").rstrip("\r")
                        if not ready and ready_re.search(re.sub(r"^vm[0-9]+: ", "", text)):
                            ready = True
                        if done_re.search(text) and done_at is None:
                            done_at = time.monotonic()
            if stdin_open and stdin_fd in r:
                data = os.read(stdin_fd, 1024)
                if not data:
                    stdin_open = False
                out = b""
                for b in data:
                    if interactive and escape:
                        escape = False
                        if b in (ord("x"), ord("X")):
                            quit_key = True
                            raise KeyboardInterrupt
                        out += bytes([b]) if b == CTRL_A else bytes([CTRL_A, b])
                    elif interactive and b == CTRL_A:
                        escape = True
                    else:
                        out += bytes([b])
                pending += out
            if ready and pending:
                os.write(master, pending)
                pending = b""
    except KeyboardInterrupt:
        pass
    finally:
        if interactive:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if emu.poll() is None:
            emu.send_signal(signal.SIGTERM)
            try:
                emu.wait(3)
            except subprocess.TimeoutExpired:
                emu.kill()
                emu.wait()
        log.close()
    if quit_key:
        print("\nhv: console: quit (Ctrl-A x)")
    if emu.returncode not in (None, 0) and not quit_key and os.path.getsize(a.log) == 0:
        print(f"hv: console: the emulator ended with status {emu.returncode} and sent nothing "
              f"(its output: {a.emu_out})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
