// The kernel logger (see log.h): formatting, prefixes, one lock around the console.
#include "arch/x86/log.h"

#include "arch/x86/format.h"
#include "arch/x86/percpu.h"
#include "arch/x86/serial.h"
#include "arch/x86/spinlock.h"

namespace x86::log {
namespace {

x86::SpinLock g_lock;
Level g_level = Level::info;
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

void set_level(Level max) { g_level = max; }
Level level() { return g_level; }

void enter_panic_mode() { g_panic = true; }

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
  if (g_panic) {
    // Give the other CPUs a moment, then take the console regardless (this CPU may even
    // hold it already: a fault inside the logger).
    if (!g_lock.held_by(cpu) && !g_lock.try_lock_for(cpu, 1u << 24)) g_lock.steal(cpu);
  } else {
    g_lock.lock(cpu);
  }
  x86::serial::write(line, n);
  g_lock.unlock();
  if (irq) x86::sti();
}

}  // namespace

void vprint(Level lvl, const char* fmt, va_list ap) {
  if (static_cast<int>(lvl) > static_cast<int>(g_level)) return;
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
