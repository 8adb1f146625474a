// The hardware path of the local APIC (see apicv.h).
#include "hv/apicv.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "arch/x86/idt.h"
#include "arch/x86/log.h"
#include "arch/x86/percpu.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/apicv_policy.h"
#include "hv/cmdline.h"
#include "hv/devices/vlapic_mmio.h"
#include "hv/exit.h"
#include "hv/irq.h"
#include "hv/irq_inject.h"
#include "hv/vcpu.h"
#include "hv/vm.h"
#include "hv/vm_run_state.h"
#include "hv/vm_runner.h"
#include "mmu/spte.h"

namespace hv {

using namespace x86::vmx;

namespace {

using apicv::x2apic_read_virtualized;
using apicv::x2apic_write_virtualized;

// MSR bitmap bit for `msr` (0x800-0x8FF: the low range), reads at 0, writes at 2048; 1 = exit.
void set_intercept(uint8_t* bitmap, uint32_t msr, bool write, bool intercept) {
  uint8_t& b = bitmap[(write ? 2048 : 0) + msr / 8];
  const uint8_t bit = static_cast<uint8_t>(1u << (msr % 8));
  b = intercept ? static_cast<uint8_t>(b | bit) : static_cast<uint8_t>(b & ~bit);
}

void posted_handler(x86::idt::InterruptFrame*) { x86::apic::eoi(); }

int g_enabled = -1;  // -1: not decided yet
bool g_posted = false;
bool g_access = false;  // "virtualize APIC accesses" for the xAPIC page
bool g_access_vid = false;  // and virtual-interrupt delivery kept on there (else TPR threshold)
bool g_guard = true;  // the IF = 0 guard (hv.apicv-guard, apicv_policy.h)
const char* g_why = "";

}  // namespace

bool apicv_enabled(const Capabilities& c) {
  if (g_enabled >= 0) return g_enabled != 0;
  char mode[8] = {};
  const bool asked = cmdline::get("hv.apicv", mode, sizeof mode);
  const bool off = asked && mode[0] == 'o' && mode[1] == 'f';
  if (off) {
    g_enabled = 0;
    g_why = "hv.apicv=off: the software LAPIC path";
  } else if (!c.apicv()) {
    g_enabled = 0;
    g_why = asked ? "hv.apicv=on, but the CPU lacks a control it needs: the software LAPIC path"
                  : "the CPU lacks a control it needs: the software LAPIC path";
  } else {
    g_enabled = 1;
    g_posted = c.apicv_posted();
    // hv.apicv-access=off|tpr|vid (apicv.h). Default: vid where the CPU also offers posted
    // interrupts (a current CPU), else off: the CPU without them that hv is tested on, Bochs
    // 2.7, gets each virtualized mode wrong in one conformance check of guest-lapic (vid: a
    // self-IPI through the ICR, virtualized without an exit, is delivered with IF = 0 when a
    // physical interrupt arrives; tpr: PPR reads are served from the page, where the SDM
    // makes them exit, so a PPR read after a TPR write is stale).
    char acc[8] = {};
    const bool acc_set = cmdline::get("hv.apicv-access", acc, sizeof acc);
    const bool want = acc_set ? !(acc[0] == 'o' && acc[1] == 'f') : g_posted;
    g_access = c.virtualize_apic_accesses && want;
    g_access_vid = g_posted || !acc_set || acc[0] == 'v' || (acc[0] == 'o' && acc[1] == 'n');
    g_guard = cmdline::get_number("hv.apicv-guard", 1) != 0;
    g_why = asked ? (g_posted ? "hv.apicv=on: TPR shadow, virtual-interrupt delivery, x2APIC and APIC-register "
                                "virtualization, posted interrupts"
                              : "hv.apicv=on: TPR shadow, virtual-interrupt delivery, x2APIC and APIC-register "
                                "virtualization; no posted interrupts on this CPU: IPIs kick")
                  : (g_posted ? "default where the CPU offers it: TPR shadow, virtual-interrupt delivery, x2APIC "
                                "and APIC-register virtualization, posted interrupts"
                              : "default where the CPU offers it: TPR shadow, virtual-interrupt delivery, x2APIC "
                                "and APIC-register virtualization; no posted interrupts on this CPU: IPIs kick");
  }
  return g_enabled != 0;
}

bool apicv_posted(const Capabilities& c) { return apicv_enabled(c) && g_posted; }

bool apicv_apic_accesses() { return g_enabled > 0 && g_access; }

bool apicv_ack_exit_forced() { return cmdline::get_number("hv.apicv-ack-exit", 0) != 0; }

void apicv_init(const Capabilities& c) {
  const bool on = apicv_enabled(c);
  x86::log::info("apicv: %s (%s)", on ? "on" : "off", g_why);
  if (on)
    x86::log::info("apicv: xAPIC page: %s",
                   !g_access ? (!c.virtualize_apic_accesses ? "emulated at every access (the CPU lacks \"virtualize APIC accesses\")"
                                : g_posted ? "emulated at every access (hv.apicv-access=off)"
                                           : "emulated at every access (default without posted interrupts; hv.apicv-access=vid|tpr "
                                             "virtualizes it)")
                   : g_access_vid ? "virtualized with virtual-interrupt delivery (APIC-access page)"
                                  : "virtualized, TPR shadow and threshold, hv injects (APIC-access page)");
  if (on)
    x86::log::info("apicv: IF=0 guard %s", g_guard ? "on: SELF_IPI exits, and every EOI while a vector waits behind another"
                                                  : "off (hv.apicv-guard=0): the CPU recognizes virtual interrupts on its own");
  if (on && !g_posted && apicv_ack_exit_forced() && c.ack_interrupt_on_exit)
    x86::log::info("apicv: acknowledge interrupt on exit forced (hv.apicv-ack-exit=1)");
  x86::idt::set_handler(kPostedVector, posted_handler);
}

const char* apicv_setup_vmcs(Vcpu& vcpu) {
  Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  const uint64_t page = reinterpret_cast<uint64_t>(l.page());  // identity-mapped: also the physical address
  const uint64_t desc = reinterpret_cast<uint64_t>(&l.posted_desc());
  if ((page & 0xFFF) || (desc & 0x3F)) return "the virtual-APIC page or the posted-interrupt descriptor is misaligned";
  vmwrite(field::kVirtualApicAddr, page);
  vmwrite(field::kTprThreshold, 0);
  // The APIC-access page (the VM's, mapped at the xAPIC base); the control follows the mode.
  if (const uint64_t access = vcpu.vm().lapic_mmio.access_page_hpa()) vmwrite(field::kApicAccessAddr, access);
  if (vcpu.apicv.posted) {
    vmwrite(field::kPostedIntrNotificationVector, kPostedVector);
    vmwrite(field::kPostedIntrDescAddr, desc);
  }
  for (unsigned i = 0; i < 4; i++) vmwrite(field::kEoiExitBitmap0 + 2 * i, 0);
  vmwrite(field::kGuestInterruptStatus, 0);
  vcpu.apicv.eoi_exit[0] = vcpu.apicv.eoi_exit[1] = vcpu.apicv.eoi_exit[2] = vcpu.apicv.eoi_exit[3] = 0;
  vcpu.apicv.x2apic = false;
  vcpu.apicv.xapic_access = false;
  vcpu.apicv.vid = true;  // vmcs_setup sets it with the others
  vcpu.apicv.tpr_threshold = 0;
  vcpu.apicv.status = 0;
  // The controls as apicv_mode_changed finds them: both off (vmcs_setup sets neither).
  const uint64_t p2 = vmread(field::kSecondaryControls);
  vmwrite(field::kSecondaryControls, p2 & ~uint64_t{proc2::kVirtualizeX2apic | proc2::kVirtualizeApicAccesses});
  apicv_mode_changed(vcpu);
  return nullptr;
}

void apicv_mode_changed(Vcpu& vcpu) {
  if (!vcpu.apicv.on || !vcpu.msrs.bitmap_pa) return;
  const Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  const bool x2 = l.x2apic();
  // "Virtualize APIC accesses" only for an enabled APIC in xAPIC mode (VM entry forbids it
  // together with "virtualize x2APIC mode"; a disabled APIC's page is not the APIC).
  // The APIC-access page is mapped at the default base only: a vCPU that moved its APIC
  // (IA32_APIC_BASE) reaches it through EPT violations at its own base (vlapic_mmio.h).
  const bool access = !x2 && l.hw_enabled() && vcpu.vm().lapic_mmio.access_page_hpa() != 0 &&
                      LapicMmio::window(vcpu) == LapicMmio::kBase;
  // Virtual-interrupt delivery everywhere but on a virtualized xAPIC page in "tpr" mode
  // (posted interrupts need it, so they keep it on: g_access_vid).
  const bool vid = !access || g_access_vid;
  if (x2 == vcpu.apicv.x2apic && access == vcpu.apicv.xapic_access && vid == vcpu.apicv.vid) return;
  uint64_t p2 = vmread(field::kSecondaryControls);
  if (x2 != vcpu.apicv.x2apic) {
    // With "virtualize x2APIC mode" off, an MSR the bitmap lets through would reach the real
    // x2APIC: every bit of the range is set again before the control is cleared.
    uint8_t* bitmap = reinterpret_cast<uint8_t*>(vcpu.msrs.bitmap_pa);
    for (uint32_t m = apic::kX2apicMsrBase; m <= apic::kX2apicMsrLast; m++) {
      set_intercept(bitmap, m, false, !(x2 && x2apic_read_virtualized(m)));
      set_intercept(bitmap, m, true, !(x2 && x2apic_write_virtualized(m, g_guard)));
    }
    p2 = x2 ? p2 | proc2::kVirtualizeX2apic : p2 & ~uint64_t{proc2::kVirtualizeX2apic};
  }
  p2 = access ? p2 | proc2::kVirtualizeApicAccesses : p2 & ~uint64_t{proc2::kVirtualizeApicAccesses};
  p2 = vid ? p2 | proc2::kVirtualInterruptDelivery : p2 & ~uint64_t{proc2::kVirtualInterruptDelivery};
  vmwrite(field::kSecondaryControls, p2);
  if (vid != vcpu.apicv.vid) {
    // The page holds IRR/ISR either way (one register store): only who delivers changes. A
    // vector the CPU acknowledged stays in the ISR; the next entry computes RVI/SVI again.
    vmwrite(field::kTprThreshold, 0);
    vcpu.apicv.tpr_threshold = 0;
  }
  vcpu.apicv.vid = vid;
  // Leaving xAPIC mode: the raw page shows again where the guest may look (all ones).
  if (vcpu.apicv.xapic_access && !access) vcpu.vm().lapic_mmio.refill_access_page();
  vcpu.apicv.x2apic = x2;
  vcpu.apicv.xapic_access = access;
}

namespace {
// The EOI-exit bitmap, written where it changed: the TMR (level-triggered vectors, whose EOIs
// the IOAPIC must see) or, for the IF = 0 guard, every vector (apicv_policy.h).
void write_eoi_exit_bitmap(Vcpu& vcpu, const Vlapic& l, bool all) {
  for (unsigned i = 0; i < 4; i++) {
    const uint64_t q = apicv::eoi_exit_quad(l.tmr_quad(i), all);
    if (q != vcpu.apicv.eoi_exit[i]) {
      vmwrite(field::kEoiExitBitmap0 + 2 * i, q);
      vcpu.apicv.eoi_exit[i] = q;
    }
  }
}
}  // namespace

void apicv_before_entry(Vcpu& vcpu) {
  Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  l.sync_posted();
  if (!vcpu.apicv.vid) {
    l.refresh_ppr();
    // The EOI-exit bitmap before the vectors can be delivered (a level-triggered vector reached
    // the IRR only through sync_posted just now, or on this CPU).
    write_eoi_exit_bitmap(vcpu, l, false);
    // TPR shadow without virtual-interrupt delivery: hv injects (hv/irq_inject.cpp), and a
    // guest TPR write that unmasks a vector waiting in the IRR must exit (reason 43) so hv can:
    // the threshold is that vector's class while the TPR alone holds it back (SDM 29.1.2).
    const uint8_t th = apicv::tpr_threshold(l);
    if (th != vcpu.apicv.tpr_threshold) {
      vmwrite(field::kTprThreshold, th);
      vcpu.apicv.tpr_threshold = th;
    }
    return;
  }
  // One pass over the IRR and ISR words gives RVI and SVI (apicv::guest_interrupt_status: the
  // highest IRR and ISR vectors) and the copy the CPU starts from, which an exit compares the
  // page with (apicv_vectoring): one load of each word per entry instead of three scans.
  // The IRR with acquire loads, as Vlapic::highest_irr reads it (other CPUs set its bits).
  const uint32_t* page = l.page();
  int irr_top = -1, isr_top = -1;
  for (int i = 7; i >= 0; i--) {
    const uint32_t irr = mmu::atomic_load(&page[(apic::kIrr + 16 * i) / 4], mmu::Order::acquire);
    const uint32_t isr = page[(apic::kIsr + 16 * i) / 4];
    vcpu.apicv.irr_entry[i] = irr;
    vcpu.apicv.isr_entry[i] = isr;
    if (irr_top < 0 && irr) irr_top = i * 32 + 31 - __builtin_clz(irr);
    if (isr_top < 0 && isr) isr_top = i * 32 + 31 - __builtin_clz(isr);
  }
  // The EOI-exit bitmap before the vectors can be delivered: the TMR, or with the IF = 0 guard
  // every vector while one waits behind another (its EOI would make it recognized in the guest).
  write_eoi_exit_bitmap(vcpu, l, g_guard && apicv::vector_waits_behind(vcpu.apicv.irr_entry, vcpu.apicv.isr_entry));
  // PPR from the TPR and the highest ISR vector just found (Vlapic::ppr, without its scan).
  const uint32_t ppr = Vlapic::ppr_of(page[apic::kTpr / 4], isr_top);
  if (page[apic::kPpr / 4] != ppr) l.page()[apic::kPpr / 4] = ppr;
  const uint16_t status = static_cast<uint16_t>((irr_top < 0 ? 0 : irr_top) | (isr_top < 0 ? 0 : isr_top) << 8);
  const unsigned rvi = status & 0xFF;
  if (rvi && (rvi & 0xF0) > (ppr & 0xF0)) vcpu.apicv.entries_with_vector++;
  // Compared with the field, not with what hv wrote last: the CPU rewrites RVI and SVI itself
  // when it delivers a virtual interrupt, so a cached copy goes stale (an EOI emulated by hv then
  // a re-delivered vector would compute the very status hv wrote before the delivery, and the
  // CPU would keep the SVI/RVI of after it: the vector never delivered).
  if (status != vmread(field::kGuestInterruptStatus)) vmwrite(field::kGuestInterruptStatus, status);
  vcpu.apicv.status = status;
}

uint32_t apicv_vectoring(Vcpu& vcpu, uint32_t vectoring) {
  if (!vcpu.apicv.on || !vcpu.apicv.vid) return vectoring;  // hv's own injections: re-injected
  apicv::VectoringCheck c;
  c.vectoring = vectoring;
  c.svi = static_cast<uint8_t>(vmread(field::kGuestInterruptStatus) >> 8);
  constexpr uint64_t kRflagsIf = 1u << 9, kBlockingSti = 1u << 0, kBlockingMovSs = 1u << 1;
  c.if_set = (vmread(field::kGuestRflags) & kRflagsIf) != 0;
  c.shadow = (vmread(field::kGuestInterruptibility) & (kBlockingSti | kBlockingMovSs)) != 0;
  uint32_t* page = vcpu.vm().lapic[vcpu.index()].page();
  if (c.svi >= 16) {
    uint32_t irr[8], isr[8];
    for (unsigned i = 0; i < 8; i++) {
      irr[i] = mmu::atomic_load(&page[(apic::kIrr + 16 * i) / 4], mmu::Order::relaxed);
      isr[i] = page[(apic::kIsr + 16 * i) / 4];
    }
    c.svi_delivered = apicv::svi_delivered_this_run(c.svi, vcpu.apicv.irr_entry, vcpu.apicv.isr_entry, irr, isr);
  }
  if (c.svi_delivered) {
    // An EPT violation names the linear address it accessed: inside the IDT, the entry's
    // vector is the event's (16-byte gates in IA-32e mode, 8 in protected mode, 4 in real mode).
    const uint32_t basic = static_cast<uint32_t>(vmread(field::kExitReason)) & 0xFFFF;
    if (basic == kExitEptViolation && (vmread(field::kExitQualification) & ept_qual::kLinearValid)) {
      const uint64_t lin = vmread(field::kGuestLinearAddress), base = vmread(field::kGuestIdtrBase);
      const uint64_t limit = vmread(field::kGuestIdtrLimit);
      const bool lma = (vmread(field::kGuestEfer) >> 10) & 1, pe = vmread(field::kGuestCr0) & 1;
      const unsigned size = lma ? 16 : pe ? 8 : 4;
      if (lin >= base && lin - base <= limit && (lin - base) / size < 256) c.idt_vector = static_cast<int>((lin - base) / size);
    }
  }
  const int v = apicv::abandoned_virtual_interrupt(c);
  if (v >= 0) {
    // Undo the CPU's acknowledgement (the guest saw nothing of it yet): back into the IRR, out
    // of the ISR; the next entry recomputes RVI, SVI and PPR from the page and the CPU delivers
    // it again when the guest can take it. The IRR word with an atomic OR, as a sender's accept.
    const unsigned w = static_cast<unsigned>(v) / 32;
    const uint32_t bit = 1u << (v % 32);
    __atomic_fetch_or(&page[(apic::kIrr + 16 * w) / 4], bit, __ATOMIC_RELEASE);
    page[(apic::kIsr + 16 * w) / 4] &= ~bit;
    vcpu.apicv.vectoring_fixes++;
    return 0;
  }
  // An external interrupt cannot be injected while the guest blocks interrupts (VM entry
  // refuses it, SDM 26.3.1.5): such a report can only be Bochs's stale one for a virtual
  // interrupt it delivered with IF = 0, already accounted for above or not undoable; drop it
  // rather than fail the entry.
  if (((vectoring >> 8) & 7) == 0 && (!c.if_set || c.shadow)) {
    vcpu.apicv.vectoring_dropped++;
    return 0;
  }
  return vectoring;
}

bool apicv_notify(VmRunState& run, unsigned vcpu, bool level) {
  if (level || !g_posted) {
    // Without posted interrupts the CPU never looks at the PIR: the kick's exit makes the
    // target fold it before its next entry (an exit per IPI, as on the software path).
    wake_vcpu(run, vcpu);
    return false;
  }
  run.post_wake(vcpu);
  // As wake_vcpu: the PIR bit and the wake-up before the IPI (an x2APIC ICR write is not
  // serializing). Pairs with the CPU's posted-interrupt processing (a locked access to the
  // descriptor) or, in root mode, with sync_posted's acquire exchanges.
  mmu::atomic_thread_fence(mmu::Order::seq_cst);
  const unsigned cpu = run.cpu_of(vcpu);
  if (cpu != x86::cpu_index()) x86::apic::send_fixed(x86::percpu(cpu).apic_id, kPostedVector);
  return true;
}

void apicv_report(Vcpu& vcpu) {
  Vcpu& v = vcpu;
  if (vcpu.apicv.on)
    x86::log::info("vm%u: vcpu%u: lapic: hardware path%s, %lu entries with a vector for the CPU to deliver, %lu injected "
                   "by hv, %lu EOI-induced exits (%lu for the IF=0 guard), %lu APIC-write exits, %lu external-interrupt exits acknowledged, %lu "
                   "abandoned virtual-interrupt deliveries undone (%lu unusable IDT-vectoring reports dropped); xAPIC "
                   "page %s, %lu APIC-access exits, %lu TPR-below-threshold exits; from other vCPUs and devices %lu vectors "
                   "posted with the notification vector, %lu with a kick",
                   v.vm().id(), vcpu.index(), vcpu.apicv.posted ? " with posted interrupts" : "",
                   vcpu.apicv.entries_with_vector, vcpu.interrupts_injected(), vcpu.apicv.eoi_exits, vcpu.apicv.guard_eoi_exits,
                   vcpu.apicv.apic_write_exits, vcpu.apicv.acked_exits, vcpu.apicv.vectoring_fixes,
                   vcpu.apicv.vectoring_dropped,
                   !v.vm().lapic_mmio.access_page_hpa() ? "emulated"
                   : g_access_vid                      ? "virtualized"
                                                       : "virtualized (TPR shadow and threshold, hv injects)",
                   vcpu.apicv.apic_access_exits, vcpu.apicv.tpr_threshold_exits,
                   v.vm().lapic[vcpu.index()].remote_posted(), v.vm().lapic[vcpu.index()].remote_kicked());
  else
    x86::log::info("vm%u: vcpu%u: lapic: software path, %lu vectors injected by hv", v.vm().id(), vcpu.index(),
                   vcpu.interrupts_injected());
}

// Trap-like (SDM 30.4.3.3): the write is done in the page, RIP is past the instruction; hv
// carries out what it means, as the software path does for the same register.
void handle_apic_write(Vcpu& vcpu, const ExitInfo& e) {
  vcpu.apicv.apic_write_exits++;
  Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  const unsigned off = static_cast<unsigned>(e.qualification & 0xFF0);
  uint64_t v = l.page()[off >> 2];
  if (off == apic::kIcrLow && l.x2apic()) v |= static_cast<uint64_t>(l.page()[(off + 4) >> 2]) << 32;
  WriteEffect fx;
  l.write_stored(off, v, guest_tsc_now(vcpu), fx);
  lapic_apply(vcpu, fx);
}

// An access to the APIC-access page that the CPU does not virtualize (fault-like, SDM 29.4:
// the current count, reserved offsets, other sizes, and every access type but a linear read
// or write of the instruction at RIP). The qualification gives the page offset (11:0) and the
// access type (15:12: 0 linear read, 1 linear write, 2 fetch, 3 during event delivery, 10/15
// guest-physical); the page is at the xAPIC base (LapicMmio::kBase), so the instruction is
// emulated as an access there, which reaches the xAPIC page's MMIO device: what the exit
// would have been without the control.
void handle_apic_access(Vcpu& vcpu, const ExitInfo& e) {
  vcpu.apicv.apic_access_exits++;
  const unsigned offset = static_cast<unsigned>(e.qualification & 0xFFF), type = (e.qualification >> 12) & 0xF;
  const uint64_t gpa = LapicMmio::kBase + offset;
  if (type > 1) {
    // Instruction fetch, event delivery (an IDT, stack or TSS there) or a guest-physical
    // access (the guest's page walk): none is an instruction to emulate. Only a guest that
    // put those on its APIC page gets here, and only it stops (as without the control).
    vcpu.stop(true, "APIC-access exit of type %u at the APIC page offset 0x%x (rip 0x%lx): not an access hv emulates",
              type, offset, vmread(field::kGuestRip));
    return;
  }
  emulate_device_access(vcpu, gpa, type == 1 ? mmu::spte::kAccWrite : mmu::spte::kAccRead, "the local APIC's");
}

// EOI-induced (trap-like, SDM 30.1.4): the CPU has already cleared the ISR bit; the IOAPIC
// gets the EOI of the level-triggered vector.
// An edge-triggered vector's EOI exits only for the IF = 0 guard (apicv_policy.h): nothing
// to do but let the next entry evaluate with the guest's IF in view. A real LAPIC broadcasts
// only level-triggered EOIs, so the IOAPIC hears of no other.
void handle_virtualized_eoi(Vcpu& vcpu, const ExitInfo& e) {
  vcpu.apicv.eoi_exits++;
  const uint8_t v = static_cast<uint8_t>(e.qualification & 0xFF);
  if ((vcpu.vm().lapic[vcpu.index()].tmr_quad(v / 64) >> (v % 64)) & 1)
    ioapic_eoi(vcpu.vm(), v);
  else
    vcpu.apicv.guard_eoi_exits++;
}

// Only without virtual-interrupt delivery (the xAPIC page in "tpr" mode), trap-like: the guest
// lowered its TPR below the class of a vector waiting in the IRR; the next entry injects it.
void handle_tpr_below_threshold(Vcpu& vcpu, const ExitInfo&) { vcpu.apicv.tpr_threshold_exits++; }

}  // namespace hv
