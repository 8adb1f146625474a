// The framebuffer console: hv's log lines drawn with the built-in font (font8x16.h) on the
// framebuffer GRUB hands over in the multiboot2 framebuffer tag, so a machine without a serial
// port still shows what hv says (and a photo of the screen is a bug report).
//
// Formats: direct RGB (tag type 1) with 32, 24, 16 or 15 bits per pixel, the colour fields
// where the tag says; EGA text mode (type 2) as a fallback (80x25 cells of character +
// attribute). Indexed colour (type 0) is not drawn.
//
// Scrolling: the console keeps a copy of its text (one byte per cell) and never reads the
// framebuffer back (reads of video memory are slow on real hardware: uncached or
// write-combined). When the last row is full it moves the newest half of the screen to the
// top and redraws only the cells whose character changed, so a scroll costs about one screen
// of stores every rows/2 lines rather than one screen per line.
//
// Locking: write() is called by the logger with its console lock held (x86::log), which is
// what serializes it; the console has no lock of its own.
#pragma once

#include <stddef.h>

#include "arch/x86/multiboot2.h"

namespace x86::fbcon {

enum class Colour { normal, warning, error };

// Takes the framebuffer described by the tag. Returns nullptr when the console is active,
// else why not ("indexed colour framebuffer", "8 bpp not supported", ...). Clears the screen.
const char* init(const mb2::Framebuffer& fb);
bool active();

// Text geometry and pixel format, for the boot log line ("1024x768x32 at 0x..., 128x48 cells").
void describe(char* buf, size_t size);

// Draws n bytes: '\n' ends a row, '\r' is ignored, '\t' moves to the next multiple of 8, other
// bytes outside 0x20..0x7E show as a hollow box; long lines wrap. Caller holds the log's
// console lock.
void write(const char* text, size_t n, Colour colour);

}  // namespace x86::fbcon
