// The kernel logger (see log.h): formatting, prefixes, one lock around the console.
#include "arch/x86/log.h"

#include "arch/x86/fb_console.h"
#include "arch/x86/format.h"
#include "arch/x86/percpu.h"
#include "arch/x86/serial.h"
#include "arch/x86/spinlock.h"

namespace x86::log {
namespace {

// The console lock: x86::serial::write() is not locked itself, so this lock is what keeps the
// lines of different CPUs from interleaving on the UART. It guards the console device, not
// data, so it is stated on the one function that writes (console_write) rather than on a
// variable. Interrupt handlers may log: it is only held with interrupts off (emit()).
x86::SpinLock g_lock;

// Every line goes to the UART and, when there is one, to the framebuffer console (the same
// text, so a photo of the screen says what the serial log says).
void console_write(const char* line, size_t n, x86::fbcon::Colour colour) REQUIRES(g_lock) {
  x86::serial::write(line, n);
  x86::fbcon::write(line, n, colour);
}

// raw() left the console in the middle of a line (its last byte was not '\n'): the next line
// of emit() starts on a new line, so hv's own lines always begin at the start of a line even
// while a raw guest console prints a prompt.
bool g_raw_midline GUARDED_BY(g_lock) = false;

// Both flags are read on every CPU at any time and written rarely (boot; panic): relaxed
// atomics, since neither orders anything else (the console lock does that).
int g_level = static_cast<int>(Level::info);  // a Level (atomics need an integer)
bool g_panic = false;

const char* level_tag(Level lvl) {
  switch (lvl) {
    case Level::error: return "error: ";
    case Level::warn: return "warning: ";
    case Level::debug: return "debug: ";
    default: return "";
  }
}

}  // namespace

void set_level(Level max) { __atomic_store_n(&g_level, static_cast<int>(max), __ATOMIC_RELAXED); }
Level level() { return static_cast<Level>(__atomic_load_n(&g_level, __ATOMIC_RELAXED)); }

void enter_panic_mode() { __atomic_store_n(&g_panic, true, __ATOMIC_RELAXED); }

namespace {

void emit(bool plain, Level lvl, const char* fmt, va_list ap) {
  char line[640];
  const unsigned cpu = x86::cpu_index();
  size_t n = (cpu && !plain) ? x86::format(line, sizeof line, "hv: cpu%u: %s", cpu, level_tag(lvl))
                             : x86::format(line, sizeof line, "hv: %s", plain ? "" : level_tag(lvl));
  n += x86::vformat(line + n, sizeof line - n, fmt, ap);
  if (n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';

  // Interrupt handlers may log, so keep interrupts off while holding the lock.
  const bool irq = x86::interrupts_enabled();
  x86::cli();
  if (__atomic_load_n(&g_panic, __ATOMIC_RELAXED)) {
    // Give the other CPUs a moment, then take the console regardless (this CPU may even
    // hold it already: a fault inside the logger).
    g_lock.lock_or_break(1u << 24);
  } else {
    g_lock.lock(cpu);
  }
  if (g_raw_midline) {
    x86::serial::write("\n", 1);
    g_raw_midline = false;
  }
  console_write(line, n,
                plain || lvl == Level::info || lvl == Level::debug ? x86::fbcon::Colour::normal
                : lvl == Level::warn                              ? x86::fbcon::Colour::warning
                                                                  : x86::fbcon::Colour::error);
  g_lock.unlock();
  if (irq) x86::sti();
}

}  // namespace

void raw(const char* bytes, unsigned n) {
  const unsigned cpu = x86::cpu_index();
  const bool irq = x86::interrupts_enabled();
  x86::cli();
  if (__atomic_load_n(&g_panic, __ATOMIC_RELAXED)) {
    g_lock.lock_or_break(1u << 24);
  } else {
    g_lock.lock(cpu);
  }
  x86::serial::write(bytes, n);
  if (n) g_raw_midline = bytes[n - 1] != '\n';
  g_lock.unlock();
  if (irq) x86::sti();
}

void vprint(Level lvl, const char* fmt, va_list ap) {
  if (static_cast<int>(lvl) > static_cast<int>(level())) return;
  emit(false, lvl, fmt, ap);
}

void plain(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  emit(true, Level::error, fmt, ap);
  va_end(ap);
}

void print(Level lvl, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprint(lvl, fmt, ap);
  va_end(ap);
}

#define HV_LOG_LEVEL_FN(name, lvl)     \
  void name(const char* fmt, ...) {    \
    va_list ap;                        \
    va_start(ap, fmt);                 \
    vprint(lvl, fmt, ap);              \
    va_end(ap);                        \
  }
HV_LOG_LEVEL_FN(error, Level::error)
HV_LOG_LEVEL_FN(warn, Level::warn)
HV_LOG_LEVEL_FN(info, Level::info)
HV_LOG_LEVEL_FN(debug, Level::debug)
#undef HV_LOG_LEVEL_FN

}  // namespace x86::log
