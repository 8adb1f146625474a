// hv's event trace: the per-CPU rings (see trace.h).
#include "hv/trace.h"

#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/string.h"
#include "arch/x86/timer.h"
#include "hv/cmdline.h"
#include "mmu/atomic.h"

namespace hv::trace {

uint32_t g_mask = 0;

namespace {

constexpr uint64_t kDefaultKib = 1024;
constexpr uint64_t kMaxKib = 64 * 1024;

struct Ring {
  Record* rec = nullptr;
  uint64_t capacity = 0;
  mmu::Atomic<uint64_t> count{0};    // records written; published with release (trace.h)
  mmu::Atomic<uint64_t> dropped{0};  // records that found the ring full
};
Ring g_rings[x86::kMaxCpus];
unsigned g_cpus = 0;

struct Name {
  const char* name;
  uint32_t bit;
};
constexpr Name kCats[] = {{"exit", kCatExit}, {"fault", kCatFault}, {"irq", kCatIrq},
                          {"flush", kCatFlush}, {"mmu", kCatMmu}, {"hcall", kCatHcall}};

// "exit,fault" or "all": the mask; unknown names are reported and ignored.
uint32_t parse_mask(char* list) {
  uint32_t mask = 0;
  for (char* p = list; *p;) {
    char* word = p;
    while (*p && *p != ',') p++;
    if (*p) *p++ = 0;
    if (!*word) continue;
    if (!strcmp(word, "all")) {
      for (const Name& n : kCats) mask |= n.bit;
      continue;
    }
    bool known = false;
    for (const Name& n : kCats) {
      if (!strcmp(word, n.name)) {
        mask |= n.bit;
        known = true;
      }
    }
    if (!known) x86::log::warn("hv.trace: unknown category \"%s\" ignored (exit, fault, irq, flush, mmu, hcall, all)", word);
  }
  return mask;
}

}  // namespace

void init(unsigned cpus) {
  char list[128];
  if (!cmdline::get("hv.trace", list, sizeof list) || !list[0]) return;
  const uint32_t mask = parse_mask(list);
  if (!mask) return;
  uint64_t kib = cmdline::get_number("hv.trace-kib", kDefaultKib);
  if (kib < 4) kib = 4;
  if (kib > kMaxKib) kib = kMaxKib;
  const uint64_t pages = (kib * 1024 + x86::pmm::k4K - 1) / x86::pmm::k4K;
  g_cpus = cpus > x86::kMaxCpus ? x86::kMaxCpus : cpus;
  for (unsigned c = 0; c < g_cpus; c++) {
    const uint64_t pa = x86::pmm::alloc_aligned(pages, x86::pmm::k4K, false);
    if (!pa) {
      x86::log::warn("hv.trace: no memory for a %lu KiB ring on cpu%u: tracing off", kib, c);
      return;  // g_mask stays 0: no ring is ever written
    }
    g_rings[c].rec = reinterpret_cast<Record*>(pa);  // hv's memory is identity-mapped
    g_rings[c].capacity = pages * x86::pmm::k4K / sizeof(Record);
  }
  g_mask = mask;
  x86::log::info("trace: on (hv.trace=%s: mask 0x%x), %lu records per CPU on %u CPUs", list, mask,
                 g_rings[0].capacity, g_cpus);
}

void record(uint8_t type, uint32_t vm, uint8_t vcpu, uint64_t tsc, uint64_t a, uint64_t b) {
  const unsigned cpu = x86::cpu_index();
  if (cpu >= g_cpus) return;
  Ring& r = g_rings[cpu];
  // Only this CPU writes its ring: a relaxed load of our own count is exact.
  const uint64_t n = r.count.load(mmu::Order::relaxed);
  if (n >= r.capacity) {
    r.dropped.fetch_add(1, mmu::Order::relaxed);
    return;
  }
  r.rec[n] = Record{tsc, type, static_cast<uint8_t>(cpu), vcpu, 0, vm, a, b};
  // Release: the record is complete before a reader that sees the new count reads it.
  r.count.store(n + 1, mmu::Order::release);
}

void print_all() {
  if (!g_mask) return;
  if (!cmdline::get_number("hv.trace-drain", 1)) {
    // hv.trace-drain=0: recorded, not printed (tools/hv bench --guest measures what recording costs).
    for (unsigned c = 0; c < g_cpus; c++)
      x86::log::plain("trace: cpu%u: %lu records, %lu dropped (not printed: hv.trace-drain=0)", c,
                      g_rings[c].count.load(mmu::Order::acquire), g_rings[c].dropped.load(mmu::Order::relaxed));
    return;
  }
  x86::log::plain("trace: begin tsc_khz=%lu cpus=%u mask=0x%x", x86::timer::tsc_khz(), g_cpus, g_mask);
  for (unsigned c = 0; c < g_cpus; c++) {
    Ring& r = g_rings[c];
    // Acquire: pairs with record()'s release store; records below `n` are complete.
    const uint64_t n = r.count.load(mmu::Order::acquire);
    // Several records per line, each "type.vm.vcpu.dtsc.a.b" in hex with the TSC as the delta
    // from the CPU's previous record: the serial line (115200 baud on Bochs and real machines)
    // is what limits how much trace a run can afford, so every byte counts.
    char line[240];
    size_t len = 0;
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; i++) {
      const Record& e = r.rec[i];
      char one[96];
      const size_t k = x86::format(one, sizeof one, " %x.%x.%x.%lx.%lx.%lx", e.type, e.vm, e.vcpu, e.tsc - prev, e.a, e.b);
      prev = e.tsc;
      if (len + k >= sizeof line) {
        line[len] = 0;
        x86::log::plain("trace: C %x%s", c, line);
        len = 0;
      }
      memcpy(line + len, one, k);
      len += k;
    }
    if (len) {
      line[len] = 0;
      x86::log::plain("trace: C %x%s", c, line);
    }
    x86::log::plain("trace: cpu%u: %lu records, %lu dropped", c, n, r.dropped.load(mmu::Order::relaxed));
  }
  x86::log::plain("trace: end");
}

}  // namespace hv::trace
