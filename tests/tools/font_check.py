#!/usr/bin/env python3
"""arch/x86/font8x16.cpp is exactly what tools/font8x16.py generates (the kernel draws with
the C++ table, tests/boot/fb_ocr.py reads the screen with the Python one: they must agree),
and every glyph is distinct (checked by the generator itself)."""
import io
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import font8x16  # noqa: E402

buf = io.StringIO()
font8x16.emit_cpp(buf)
with open(os.path.join(ROOT, "arch", "x86", "font8x16.cpp")) as f:
    committed = f.read()
if committed != buf.getvalue():
    print("FAIL: arch/x86/font8x16.cpp differs from tools/font8x16.py's output; "
          "run: python3 tools/font8x16.py > arch/x86/font8x16.cpp")
    sys.exit(1)
print(f"PASS: font8x16.cpp matches its generator ({len(font8x16.glyphs())} distinct glyphs)")
