// LINT1, the chipset's NMI line (issue 11; hv/devices/nmi_button.h, docs/guest-platform.md
// section 8): the platform presses an "NMI button" again and again - under hv `hv.nmi-ms=N`,
// bare under QEMU TCG the monitor command `nmi` (the scenario's qemu_monitor= key) - and each
// press reaches every CPU's local APIC through its LVT LINT1. The guest checks that the LVT
// decides what a press does. Groups, in order (each vCPU takes part, vCPU 0 leads):
//   nmi      LINT1 unmasked in NMI mode (delivery mode 100b): NMIs arrive through IDT vector 2
//            (at least 2 on every vCPU; vCPU 0 measures the time between two of them: the
//            press period P, whatever the platform's clock)
//   masked   the same entry with the mask bit set: no NMI and no interrupt for 3 P
//   fixed    LINT1 unmasked in fixed mode with vector 0x41: the vector arrives (IRR -> handler,
//            EOI), no NMI; proves presses went on while the entry was masked, so "masked" could
//            have failed
// The 8259 and IOAPIC are masked first, LINT0 masked, so only LINT1 reaches the IDT. Timeouts
// are in TSC cycles from the PIT (chipset_time.h): 20 s for the first NMIs, 4 P + 1 s for the vector.
#include "tests/guests/chipset_time.h"
#include "tests/guests/lib/guest.h"
#include "tests/guests/lib/irq.h"

const char guest_name[] = "lint1";

namespace {

constexpr unsigned kMaxCpus = 4;
constexpr uint8_t kFixedVector = 0x41;
constexpr uint32_t kModeNmi = 4u << 8;

volatile uint32_t g_nmis[kMaxCpus];
volatile uint64_t g_nmi_tsc[kMaxCpus][4];
volatile uint32_t g_vectors[kMaxCpus];  // kFixedVector taken
volatile uint32_t g_others[kMaxCpus];   // any other vector (spurious 0xFF excepted)
uint64_t g_tsc_hz = 0;
uint64_t g_period = 0;  // TSC cycles between two presses, measured by vCPU 0

unsigned self_index() {
  const unsigned id = lapic::id();
  return id < kMaxCpus ? id : kMaxCpus - 1;
}

extern "C" void lint1_nmi(uint32_t) {
  const unsigned i = self_index();
  const uint32_t n = g_nmis[i];
  if (n < 4) g_nmi_tsc[i][n] = rdtsc();
  g_nmis[i] = n + 1;
}
asm(R"(
    .text
    .balign 16
    .globl lint1_nmi_stub
lint1_nmi_stub:
    pushal
    cld
    pushl 40(%esp)
    call lint1_nmi
    addl $4, %esp
    popal
    iret
)");
extern "C" char lint1_nmi_stub[];

void on_irq(uint8_t v) {
  if (v == 0xFF) return;  // spurious: no EOI
  const unsigned i = self_index();
  if (v == kFixedVector) g_vectors[i] = g_vectors[i] + 1;
  else g_others[i] = g_others[i] + 1;
  lapic::eoi();
}

struct __attribute__((packed)) IdtDesc {
  uint16_t limit;
  uint32_t base;
};

// irq_install's IDT (vectors 32-255 to on_irq) with vector 2 ours.
void load_idt_with_nmi() {
  irq_load();
  IdtDesc d;
  asm volatile("sidt %0" : "=m"(d));
  uint64_t* idt = reinterpret_cast<uint64_t*>(d.base);
  const uint32_t off = reinterpret_cast<uint32_t>(lint1_nmi_stub);
  idt[2] = (off & 0xFFFF) | (0x08ull << 16) | (0x8E00ull << 32) | (static_cast<uint64_t>(off >> 16) << 48);
}

// Waits until `*counter` reaches `want` or `cycles` pass; true if it did. IF = 1 meanwhile.
bool wait_count(volatile uint32_t* counter, uint32_t want, uint64_t cycles) {
  const uint64_t t0 = rdtsc();
  asm volatile("sti" ::: "memory");
  bool ok = false;
  while (rdtsc() - t0 < cycles) {
    if (*counter >= want) {
      ok = true;
      break;
    }
    cpu_relax();
  }
  asm volatile("cli" ::: "memory");
  return ok || *counter >= want;
}

void report(const char* name, unsigned index, unsigned before) {
  barrier();
  if (index == 0) check_group(name, before);
}

// Every vCPU runs this; vCPU 0 leads (the period) and reports.
void run(unsigned index) {
  if (index != 0) {
    probe([] {});  // the library's GDT (selector 0x08 of the gates) on this vCPU too
    load_idt_with_nmi();
  }
  lapic::enable();  // software-enabled, LINT0/LINT1/timer/error masked
  barrier();

  // --- nmi ---
  unsigned before = checks_failed();
  lapic::write(lapic::kLvtLint1, kModeNmi);
  CHECK(lapic::read(lapic::kLvtLint1) == kModeNmi);
  const bool got = wait_count(&g_nmis[index], 2, 20 * g_tsc_hz);
  if (!got) gprintf("lint1: vcpu%u: %u NMIs within 20 s of LINT1 in NMI mode, expected 2\n", index, g_nmis[index]);
  CHECK(got);
  CHECK(g_vectors[index] == 0 && g_others[index] == 0);
  if (index == 0 && got) {
    g_period = g_nmi_tsc[0][1] - g_nmi_tsc[0][0];
    gprintf("lint1: press period %llu us\n", div64(g_period * 1000000ull, g_tsc_hz));
  }
  report("nmi", index, before);
  if (!g_period) return;  // nothing to time the other groups with

  // --- masked ---
  before = checks_failed();
  lapic::write(lapic::kLvtLint1, kModeNmi | lapic::kMasked);
  const uint32_t nmis = g_nmis[index];
  // 3 periods: at least two presses come meanwhile (the fixed group proves they do).
  const bool leaked = wait_count(&g_nmis[index], nmis + 1, 3 * g_period);
  if (leaked) gprintf("lint1: vcpu%u: an NMI came through a masked LINT1\n", index);
  CHECK(!leaked);
  CHECK(g_vectors[index] == 0 && g_others[index] == 0);
  report("masked", index, before);

  // --- fixed ---
  before = checks_failed();
  const uint32_t nmis2 = g_nmis[index];
  lapic::write(lapic::kLvtLint1, kFixedVector);
  const bool vec = wait_count(&g_vectors[index], 1, 4 * g_period + g_tsc_hz);
  lapic::write(lapic::kLvtLint1, lapic::kMasked);
  if (!vec) gprintf("lint1: vcpu%u: vector 0x%x never came from LINT1 in fixed mode\n", index, kFixedVector);
  CHECK(vec);
  CHECK(g_nmis[index] == nmis2);
  CHECK(g_others[index] == 0);
  CHECK(!lapic::bit(lapic::kIsr, kFixedVector));
  report("fixed", index, before);
}

}  // namespace

void guest_test() {
  // The BIOS leaves the 8259 and LINT0 in virtual-wire mode: mask them first.
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
  irq_install(on_irq);
  load_idt_with_nmi();
  lapic::enable();
  ioapic::mask_all();
  g_tsc_hz = tsc_hz_from_pit();
  CHECK(g_tsc_hz != 0);
  if (!g_tsc_hz) return;
  const unsigned n = vcpu_count() < kMaxCpus ? vcpu_count() : kMaxCpus;
  gprintf("lint1: %s, %u vCPU%s\n", under_hv() ? "under hv" : "bare", n, n == 1 ? "" : "s");
  gprintf("lint1: ready for presses\n");
  if (n > 1) smp_start(run);
  run(0);
  if (n > 1) smp_wait_done();
  if (checks_failed()) gprintf("lint1: %u checks failed\n", checks_failed());
}
