// The kernel logger: one line per call on the serial console, with a level and a CPU prefix.
//
// Line format: "hv: " [ "cpuN: " when not on CPU 0 ] [ "error: " | "warning: " | "debug: " ]
// message. The boot tests match the "hv: ..." lines that CPU 0 prints at info level, so those
// carry no extra prefix; plain() prints "hv: " + message on any CPU at any level, for the
// lines whose exact prefix the tests rely on wherever they come from ("hv: result: ..."). Lines are formatted into a buffer first and written under one lock,
// so lines from different CPUs never interleave.
#pragma once

#include <stdarg.h>

namespace x86::log {

enum class Level : int { error = 0, warn = 1, info = 2, debug = 3 };

// Messages above `max` are dropped (default: info).
void set_level(Level max);
Level level();

void vprint(Level lvl, const char* fmt, va_list ap);
void print(Level lvl, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void plain(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Bytes as they are, with no prefix and no line buffering, to the serial console only (the
// framebuffer console shows whole lines), under the console lock so that they never land
// inside another CPU's line; the next logged line starts on a new line when they did not end
// one. For the raw guest console (hv.console=raw, hv/devices/uart.h).
void raw(const char* bytes, unsigned n);

// The machine is going down (panic, fatal exception): from now on this CPU takes the console
// lock even if it has to break it, so the last lines always get out.
void enter_panic_mode();

}  // namespace x86::log
