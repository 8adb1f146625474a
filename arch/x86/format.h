// A small printf-style formatter for the kernel (no libc).
//
// Supports %d %i %u %x %X %p %s %c %%, the flags '-' and '0', a field width, a precision for
// strings (%.*s and %.12s), and the length modifiers l, ll and z. Output is truncated to the
// buffer and always NUL-terminated; the return value is the length that was written.
#pragma once

#include <stdarg.h>
#include <stddef.h>

namespace x86 {

size_t vformat(char* buf, size_t size, const char* fmt, va_list ap);
size_t format(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

}  // namespace x86
