#!/usr/bin/env python3
"""Send commands to a QEMU human monitor on a unix socket (tools/hv's screendump hook).

usage: qemu_monitor.py SOCKET [--wait-shutdown SECONDS] COMMAND...
       qemu_monitor.py SOCKET --every MS [--after LOG REGEX] COMMAND...

--wait-shutdown polls `info status` until the guest has shut down (QEMU runs with
-action shutdown=pause, so it stays alive with the last picture on the screen), then the
commands run in order; a command is done when the monitor prints its next "(qemu)" prompt.
A command written save:FILE:COMMAND has its reply written to FILE.

--every (a scenario's qemu_monitor=CMD@MS key) waits for the socket to appear (QEMU is starting),
then, once LOG has a line matching REGEX (--after; the guest says it is ready), sends the
commands every MS milliseconds until QEMU goes away: e.g. `nmi`, the NMI button, which reaches
every CPU's LVT LINT1.
"""
import re
import socket
import sys
import time


def read_until_prompt(sock, timeout=10.0):
    sock.settimeout(timeout)
    buf = b""
    while not buf.rstrip().endswith(b"(qemu)"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


def command(sock, text):
    sock.sendall(text.encode() + b"\n")
    if text == "quit":
        return ""
    return read_until_prompt(sock)


def every(path, period_ms, after, commands):
    deadline = time.monotonic() + 30
    sock = None
    while sock is None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        except OSError:
            sock = None
            if time.monotonic() > deadline:
                print(f"qemu_monitor: no monitor at {path}", file=sys.stderr)
                return 1
            time.sleep(0.05)
    sent = 0
    try:
        read_until_prompt(sock)
        if after:
            log, regex = after
            pattern = re.compile(regex)
            while True:
                try:
                    with open(log, errors="replace") as f:
                        if any(pattern.search(line) for line in f):
                            break
                except OSError:
                    pass
                time.sleep(0.05)
        while True:
            for text in commands:
                command(sock, text)
                sent += 1
            time.sleep(period_ms / 1000.0)
    except OSError:  # QEMU exited: the socket closed
        print(f"qemu_monitor: sent {sent} commands every {period_ms} ms until QEMU ended")
        return 0


def main(argv):
    if len(argv) >= 4 and argv[2] == "--every":
        args = argv[4:]
        after = None
        if args[:1] == ["--after"]:
            after, args = (args[1], args[2]), args[3:]
        return every(argv[1], float(argv[3]), after, args)
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, args = argv[1], argv[2:]
    wait = 0.0
    if args[:1] == ["--wait-shutdown"]:
        wait, args = float(args[1]), args[2:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    read_until_prompt(sock)
    deadline = time.monotonic() + wait
    while wait:
        status = command(sock, "info status")
        if "shutdown" in status or "paused" in status:
            print("qemu_monitor: " + " ".join(status.split("\n")[1:2]).strip())
            break
        if time.monotonic() > deadline:
            print(f"qemu_monitor: no shutdown within {wait} s: {status!r}", file=sys.stderr)
            return 1
        time.sleep(0.1)
    for text in args:
        save = None
        if text.startswith("save:"):  # save:FILE:COMMAND writes COMMAND's reply to FILE
            _, save, text = text.split(":", 2)
        out = command(sock, text)
        if save:
            with open(save, "w") as f:
                f.write(out.replace("\r", ""))
        # The monitor echoes the command with line-editing escapes: show only what follows.
        reply = out.rsplit("\r\n", 1)[0].split("\r\n", 1)[1:] if "\r\n" in out else []
        print(f"qemu_monitor: {text}: {' '.join(reply).strip() or 'done'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
