#!/usr/bin/env python3
"""Check hv's framebuffer console against its serial log, by reading the screen back.

With an EGA text console (BIOS: "hv: console: framebuffer EGA text 80x25 ..."), the screen is
read from video memory instead (SCREEN.ega beside SCREEN.ppm: QEMU's `xp` dump of 0xB8000),
since QEMU draws text mode with its own VGA font.

usage: fb_ocr.py SCREEN.ppm SERIAL.log [--dump]

The screenshot (QEMU's `screendump`, binary PPM) is cut into 8x16 cells from the top left,
as hv's console lays them out (arch/x86/fb_console.cpp). A pixel is ink when any colour
channel is above half (hv draws light text on black). Each cell must be exactly one glyph of
hv's font (tools/font8x16.py, the source the kernel's font is generated from), else the check
fails: the font is ours, so there is no guessing.

The text read this way must be the end of hv's serial output: the serial log's lines from
hv's first line ("hv: hv N booting") on, wrapped at the screen's width, whose last rows
are the rows on the screen above the cursor (the console scrolls by half a screen, so the
screen holds between rows/2 and rows of the newest rows). Prints one "fb_ocr: ..." line.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import font8x16  # noqa: E402

CELL_W, CELL_H = font8x16.WIDTH, font8x16.HEIGHT


def read_ppm(path):
    data = open(path, "rb").read()
    # Header: P6 <ws> width <ws> height <ws> maxval <one ws> pixels; '#' comments possible.
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1
    if fields[0] != b"P6" or int(fields[3]) != 255:
        raise SystemExit(f"fb_ocr: FAIL {path}: not an 8-bit binary PPM")
    w, h = int(fields[1]), int(fields[2])
    pixels = data[pos:pos + w * h * 3]
    if len(pixels) != w * h * 3:
        raise SystemExit(f"fb_ocr: FAIL {path}: truncated")
    return w, h, pixels


def read_screen(w, h, pixels):
    """Returns (rows of text, list of unreadable cells as (row, col))."""
    by_bits = {bytes(rows): ch for ch, rows in font8x16.glyphs().items()}
    ink = bytes(1 if max(pixels[i:i + 3]) > 0x80 else 0 for i in range(0, len(pixels), 3))
    cols, nrows = w // CELL_W, h // CELL_H
    text, bad = [], []
    for r in range(nrows):
        line = []
        for c in range(cols):
            cell = bytearray(CELL_H)
            for y in range(CELL_H):
                base = (r * CELL_H + y) * w + c * CELL_W
                bits = 0
                for x in range(CELL_W):
                    if ink[base + x]:
                        bits |= 0x80 >> x
                cell[y] = bits
            ch = by_bits.get(bytes(cell))
            if ch is None:
                bad.append((r, c))
                ch = "\0"
            line.append(ch)
        text.append("".join(line))
    return text, bad


def serial_rows(log_path, cols):
    raw = open(log_path, "rb").read().decode("latin-1")
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", l).rstrip("\r") for l in raw.split("\n")]
    start = max((i for i, l in enumerate(lines) if re.match(r"^hv: hv [0-9.]+ booting", l)), default=None)
    if start is None:
        raise SystemExit("fb_ocr: FAIL no 'hv: hv N booting' line in the serial log")
    lines = lines[start:]
    while lines and lines[-1] == "":
        lines.pop()
    rows = []
    for l in lines:
        l = l.replace("\t", " ")  # not in hv's lines today; keeps the comparison simple
        rows += [l[i:i + cols] for i in range(0, len(l), cols)] or [""]
    return [r.rstrip(" ") for r in rows]


def read_ega(path, cols=80, rows=25):
    """Text of an EGA text screen from QEMU's `xp /2000hx 0xb8000` reply (SCREEN.ega):
    each cell a 16-bit word, character in the low byte, attribute in the high byte."""
    words = []
    for line in open(path):
        if re.match(r"^[0-9a-f]+:", line):
            words += [int(x, 16) for x in line.split(":", 1)[1].split()]
    if len(words) < cols * rows:
        raise SystemExit(f"fb_ocr: FAIL {path}: {len(words)} cells, expected {cols * rows}")
    text, bad = [], []
    for r in range(rows):
        line = ""
        for c in range(cols):
            ch = words[r * cols + c] & 0xFF
            if ch == 0 or ch == 0xFE or not 0x20 <= ch <= 0x7E:  # hv draws 0xFE for unprintable bytes
                bad.append((r, c))
                ch = 0x20
            line += chr(ch)
        text.append(line)
    return text, bad


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    log = open(argv[2], "rb").read().decode("latin-1")
    ega = re.search(r"^hv: console: framebuffer EGA text ([0-9]+)x([0-9]+)", log, re.M)
    if ega:
        # BIOS text mode: QEMU's screenshot shows its own VGA font, so read video memory.
        cols, nrows = int(ega.group(1)), int(ega.group(2))
        screen, bad = read_ega(argv[1][:-len(".ppm")] + ".ega", cols, nrows)
        w, h = cols, nrows
        kind = "EGA text"
    else:
        w, h, pixels = read_ppm(argv[1])
        screen, bad = read_screen(w, h, pixels)
        cols = w // CELL_W
        kind = "framebuffer"
    if "--dump" in argv:
        for row in screen:
            print(row.replace("\0", "\u2592").rstrip())
    if bad:
        r, c = bad[0]
        print(f"fb_ocr: FAIL {len(bad)} of {len(screen) * cols} cells match no glyph of hv's font "
              f"(first at row {r}, column {c}); {w}x{h}")
        return 1
    shown = [row.rstrip(" ") for row in screen]
    while shown and shown[-1] == "":
        shown.pop()
    expected = serial_rows(argv[2], cols)
    n = len(shown)
    if n < min(len(screen) // 2, len(expected)) or n == 0:
        print(f"fb_ocr: FAIL only {n} text rows on a {len(screen)}-row screen ({w}x{h})")
        return 1
    tail = expected[-n:]
    if shown != tail:
        first = next(i for i in range(n) if i >= len(tail) or shown[i] != tail[i])
        print(f"fb_ocr: screen row {first}: {shown[first]!r}")
        print(f"fb_ocr: serial row   : {tail[first] if first < len(tail) else None!r}")
        print(f"fb_ocr: FAIL the screen differs from the serial log's last {n} rows at screen row {first} ({w}x{h})")
        return 1
    print(f"fb_ocr: {kind} {w}x{h}, {cols}x{len(screen)} cells: all {n} text rows equal the serial log's last {n} rows "
          f"(of {len(expected)}); last: {shown[-1]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
