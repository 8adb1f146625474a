// INIT-SIPI-SIPI bring-up of the APs (see smp.h), following the MP initialisation sequence of
// the Intel SDM Vol. 3A, 9.4.4: INIT, wait 10 ms, SIPI, wait 200 us, a second SIPI if the AP
// has not started yet.
#include "arch/x86/smp.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/gdt.h"
#include "arch/x86/idt.h"
#include "arch/x86/log.h"
#include "arch/x86/paging.h"
#include "arch/x86/percpu.h"
#include "arch/x86/pmm.h"
#include "arch/x86/string.h"
#include "arch/x86/timer.h"

extern "C" {
extern const uint8_t ap_trampoline_start[];
extern const uint8_t ap_trampoline_end[];
extern uint64_t boot_gdt[];
void ap_entry64();

// Handed to the AP being started (boot/entry.asm reads them in ap_entry64).
volatile uint64_t ap_boot_stack;
volatile uint32_t ap_boot_cpu;
[[noreturn]] void ap_main(uint32_t cpu);
}

namespace x86::smp {
namespace {

constexpr unsigned kStackPages = 4;  // 16 KiB kernel stack per AP
constexpr unsigned kIstPages = gdt::kIstCount * gdt::kIstStackSize / 4096;

// Mirrors the parameter block at the start of boot/ap_trampoline.asm.
struct [[gnu::packed]] ApTrampolineParams {
  uint8_t jmp[14];
  uint16_t gdt_limit;
  uint64_t gdt_base;
  uint32_t cr3;
  uint32_t reserved;
  uint32_t entry;
  uint16_t selector;
};
static_assert(__builtin_offsetof(ApTrampolineParams, gdt_limit) == 0x0E, "trampoline layout");
static_assert(__builtin_offsetof(ApTrampolineParams, cr3) == 0x18, "trampoline layout");
static_assert(__builtin_offsetof(ApTrampolineParams, entry) == 0x20, "trampoline layout");

unsigned g_online = 1;          // the BSP
volatile uint32_t g_started;    // index of the last AP that reported in
ApIdleHook g_idle_hook = nullptr;

constexpr uint8_t kPingVector = 0xF0;
uint32_t g_pings[x86::kMaxCpus];

void ping_handler(idt::InterruptFrame*) {
  __atomic_fetch_add(&g_pings[x86::cpu_index()], 1u, __ATOMIC_RELEASE);
  apic::eoi();
}

bool wait_started(uint32_t cpu, uint64_t us) {
  const uint64_t step = 10;
  for (uint64_t t = 0; t < us; t += step) {
    // Acquire: pairs with the release store at the end of ap_main's setup.
    if (__atomic_load_n(&g_started, __ATOMIC_ACQUIRE) == cpu) return true;
    timer::udelay(step);
  }
  return __atomic_load_n(&g_started, __ATOMIC_ACQUIRE) == cpu;
}

}  // namespace

unsigned cpus_online() { return __atomic_load_n(&g_online, __ATOMIC_ACQUIRE); }

void set_ap_idle_hook(ApIdleHook hook) { g_idle_hook = hook; }

unsigned ping_aps(uint64_t timeout_us) {
  const unsigned n = cpus_online();
  uint32_t before[x86::kMaxCpus];
  for (unsigned cpu = 1; cpu < n; cpu++) {
    before[cpu] = __atomic_load_n(&g_pings[cpu], __ATOMIC_ACQUIRE);
    apic::send_fixed(x86::percpu(cpu).apic_id, kPingVector);
  }
  unsigned answered = 0;
  const uint64_t deadline = timer::now_us() + timeout_us;
  for (unsigned cpu = 1; cpu < n; cpu++) {
    while (__atomic_load_n(&g_pings[cpu], __ATOMIC_ACQUIRE) == before[cpu] && timer::now_us() < deadline)
      x86::cpu_relax();
    if (__atomic_load_n(&g_pings[cpu], __ATOMIC_ACQUIRE) != before[cpu]) answered++;
  }
  return answered;
}

Result start_aps(const uint32_t* apic_ids, unsigned count) {
  Result r{count, 1, nullptr};
  const uint64_t page = pmm::trampoline_page();
  const size_t size = static_cast<size_t>(ap_trampoline_end - ap_trampoline_start);
  if (count <= 1) return r;
  if (!page) {
    r.error = "no free page below 640 KiB for the AP trampoline";
    return r;
  }
  memcpy(reinterpret_cast<void*>(page), ap_trampoline_start, size);
  auto* params = reinterpret_cast<ApTrampolineParams*>(page);
  params->gdt_limit = 3 * 8 - 1;
  params->gdt_base = reinterpret_cast<uint64_t>(boot_gdt);
  params->cr3 = static_cast<uint32_t>(paging::kernel_cr3());
  params->entry = static_cast<uint32_t>(reinterpret_cast<uint64_t>(&ap_entry64));
  params->selector = gdt::kCodeSelector;
  log::debug("smp: trampoline at 0x%lx (%zu bytes)", page, size);

  idt::set_handler(kPingVector, ping_handler);
  const uint32_t self = apic::id();
  unsigned next = 1;
  for (unsigned i = 0; i < count; i++) {
    const uint32_t target = apic_ids[i];
    if (target == self) continue;
    if (next >= x86::kMaxCpus) break;
    if (!apic::x2apic_mode() && target > 0xFE) {
      log::warn("smp: apic id %u needs x2APIC mode, skipped", target);
      continue;
    }
    const uint64_t stack = pmm::alloc_pages(kStackPages + kIstPages);
    if (!stack) {
      r.error = "out of memory for AP stacks";
      break;
    }
    x86::PerCpu& pc = x86::percpu(next);
    pc.apic_id = target;
    pc.stack_top = stack + kStackPages * 4096;
    ap_boot_stack = pc.stack_top;
    ap_boot_cpu = next;
    // The AP reads ap_boot_* and its PerCpu after the SIPI: the IPI is sent by an uncached/
    // serialising APIC write (MMIO or WRMSR), which orders these stores before it.
    asm volatile("mfence" ::: "memory");

    apic::send_init(target);
    timer::udelay(10000);
    apic::send_sipi(target, static_cast<uint8_t>(page >> 12));
    if (!wait_started(next, 200)) {
      apic::send_sipi(target, static_cast<uint8_t>(page >> 12));
      if (!wait_started(next, 500000)) {
        log::warn("smp: cpu with apic id %u did not come up", target);
        continue;  // its stack stays allocated: the AP might still wake up and use it
      }
    }
    __atomic_fetch_add(&g_online, 1u, __ATOMIC_RELEASE);
    r.online++;
    next++;
  }
  return r;
}

}  // namespace x86::smp

extern "C" void ap_main(uint32_t cpu) {
  using namespace x86;
  x86::PerCpu& pc = x86::percpu(cpu);
  x86::percpu_init_this_cpu(cpu, pc.apic_id, pc.stack_top);
  gdt::init_this_cpu(cpu, pc.stack_top);  // IST stacks sit right above the kernel stack
  idt::load_this_cpu();
  apic::init_ap();
  const uint32_t id = apic::id();
  pc.online = true;
  // Release: the BSP's acquire in wait_started() sees a fully set-up CPU.
  __atomic_store_n(&smp::g_started, cpu, __ATOMIC_RELEASE);
  log::info("online, apic id %u", id);
  for (;;) {
    if (smp::g_idle_hook) smp::g_idle_hook(cpu);
    // STI's one-instruction interrupt shadow covers the HLT: no wake-up is lost between them.
    asm volatile("sti; hlt; cli" ::: "memory");
  }
}
