// RDMSR/WRMSR exits and the kernel side of the MSR policy (hv/msr_policy.h): the VMCS backend
// of the policy, the MSR bitmap, and the switching of the MSRs the VMCS does not hold
// (hv/vcpu_msrs.h says why it is done by hand, around every guest slice).
#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/pmm.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/apicv.h"
#include "hv/exit.h"
#include "hv/guest_phys_bits.h"
#include "hv/irq_inject.h"
#include "hv/devices/vlapic_mmio.h"
#include "hv/vcpu.h"
#include "hv/vcpu_msrs.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {
constexpr uint8_t kGp = 13;

uint32_t vmcs_field(msr::Field f) {
  switch (f) {
    case msr::Field::kFsBase: return field::kGuestFsBase;
    case msr::Field::kGsBase: return field::kGuestGsBase;
    case msr::Field::kSysenterCs: return field::kGuestSysenterCs;
    case msr::Field::kSysenterEsp: return field::kGuestSysenterEsp;
    case msr::Field::kSysenterEip: return field::kGuestSysenterEip;
    case msr::Field::kEfer: return field::kGuestEfer;
    case msr::Field::kPat: return field::kGuestPat;
    case msr::Field::kDebugCtl: return field::kGuestDebugCtl;
    case msr::Field::kCr0: return field::kGuestCr0;
    case msr::Field::kTscOffset: return field::kTscOffset;
  }
  return 0;
}

uint64_t backend_get(void*, msr::Field f) { return vmread(vmcs_field(f)); }
void backend_set(void*, msr::Field f, uint64_t v) { vmwrite(vmcs_field(f), v); }
// IBPB for the guest: the barrier is the same whoever asks for it.
void backend_pred_cmd(void*, uint64_t v) { x86::wrmsr(msr::kPredCmd, v); }
constexpr msr::Backend kVmcsBackend{nullptr, backend_get, backend_set, backend_pred_cmd};

// MSR bitmap (SDM 25.6.9): read-low, read-high, write-low, write-high, 1 KiB each; low =
// 0..0x1FFF, high = 0xC0000000..0xC0001FFF; a set bit makes the access exit.
void allow_direct(uint8_t* bitmap, uint32_t index, bool write) {
  unsigned base = write ? 2048 : 0;
  if (index >= 0xC0000000u) {
    base += 1024;
    index -= 0xC0000000u;
  }
  if (index >= 0x2000) return;
  bitmap[base + index / 8] &= static_cast<uint8_t>(~(1u << (index % 8)));
}
}  // namespace

const char* init_vcpu_msrs(Vcpu& vcpu, bool use_bitmap, bool rdtscp) {
  VcpuMsrs& m = vcpu.msrs;
  m = VcpuMsrs{};
  msr::Config& c = m.config;
  c.phys_bits = guest_phys_bits();
  c.bsp = vcpu.index() == 0;
  c.rdtscp = rdtscp;
  c.x2apic = vcpu.features().x2apic;
  const bool has7 = x86::cpuid(0).eax >= 7;
  const uint32_t edx7 = has7 ? x86::cpuid(7, 0).edx : 0;
  c.spec_ctrl = (edx7 >> 26) & 1;
  c.stibp = c.spec_ctrl && ((edx7 >> 27) & 1);
  c.ssbd = c.spec_ctrl && ((edx7 >> 31) & 1);
  c.arch_capabilities = (edx7 >> 29) & 1;
  if (c.arch_capabilities) c.arch_capabilities_value = x86::rdmsr(msr::kArchCapabilities);
  msr::reset(m.state, c, 0 - vcpu.vm().tsc_origin);

  m.host_kernel_gs_base = x86::rdmsr(msr::kKernelGsBase);
  m.host_star = x86::rdmsr(msr::kStar);
  m.host_lstar = x86::rdmsr(msr::kLstar);
  m.host_cstar = x86::rdmsr(msr::kCstar);
  m.host_sfmask = x86::rdmsr(msr::kSfmask);
  if (c.rdtscp) m.host_tsc_aux = x86::rdmsr(msr::kTscAux);
  if (c.spec_ctrl) m.host_spec_ctrl = x86::rdmsr(msr::kSpecCtrl);

  if (use_bitmap) {
    m.bitmap_pa = x86::pmm::alloc_4k(false);
    if (!m.bitmap_pa) return "out of memory for the MSR bitmap";
    uint8_t* bitmap = reinterpret_cast<uint8_t*>(m.bitmap_pa);
    for (unsigned i = 0; i < 4096; i++) bitmap[i] = 0xFF;
    unsigned n = 0;
    const msr::Info* tab = msr::table(n);
    for (unsigned i = 0; i < n; i++) {
      for (uint32_t idx = tab[i].index; idx < tab[i].index + tab[i].count; idx++) {
        if (msr::find(c, idx) != &tab[i]) continue;  // not on this host
        if (tab[i].read_direct) allow_direct(bitmap, idx, false);
        if (tab[i].write_direct) allow_direct(bitmap, idx, true);
      }
    }
  }
  return nullptr;
}

// When the vCPU is done (on its own CPU, after its last exit): every switched MSR must hold
// hv's value again. Checked against the real registers and reported when the guest had set any
// of them to a value of its own, so a guest that leaves its values behind (guest-msr does)
// shows that none of them stayed in root mode.
void release_vcpu_msrs(Vcpu& vcpu) {
  VcpuMsrs& m = vcpu.msrs;
  if (m.bitmap_pa) {
    struct Item {
      const char* name;
      uint32_t index;
      uint64_t guest, host;
      bool present;
    };
    const msr::State& s = m.state;
    const Item items[] = {
        {"KERNEL_GS_BASE", msr::kKernelGsBase, s.kernel_gs_base, m.host_kernel_gs_base, true},
        {"STAR", msr::kStar, s.star, m.host_star, true},
        {"LSTAR", msr::kLstar, s.lstar, m.host_lstar, true},
        {"CSTAR", msr::kCstar, s.cstar, m.host_cstar, true},
        {"FMASK", msr::kSfmask, s.sfmask, m.host_sfmask, true},
        {"TSC_AUX", msr::kTscAux, s.tsc_aux, m.host_tsc_aux, m.config.rdtscp},
        {"SPEC_CTRL", msr::kSpecCtrl, s.spec_ctrl, m.host_spec_ctrl, m.config.spec_ctrl},
    };
    unsigned differ = 0, leaked = 0;
    for (const Item& it : items) {
      if (!it.present) continue;
      if (it.guest != it.host) differ++;
      const uint64_t now = x86::rdmsr(it.index);
      if (now != it.host) {
        leaked++;
        x86::log::error("vm%u: vcpu%u: %s holds 0x%lx in root mode, not hv's 0x%lx", vcpu.vm().id(), vcpu.index(), it.name,
                        now, it.host);
      }
    }
    if (differ)
      x86::log::info("vm%u: vcpu%u: switched MSRs: %u guest value(s) differ from hv's; after the last exit %s", vcpu.vm().id(),
                     vcpu.index(), differ, leaked ? "GUEST VALUES LEFT IN ROOT MODE" : "all hold hv's values");
    x86::pmm::free_4k(m.bitmap_pa);
  }
  m.bitmap_pa = 0;
}

// The local APIC's MSRs: the x2APIC registers 0x800-0x8FF (only in x2APIC mode, else #GP, as
// are the reserved ones and writes the SDM forbids: hv/devices/vlapic.cpp) and
// IA32_TSC_DEADLINE (with the TSC-deadline timer advertised). True when `index` is one of them;
// *ok says whether the access succeeded.
static bool lapic_msr_read(Vcpu& vcpu, uint32_t index, uint64_t& v, bool* ok) {
  Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  if (index >= apic::kX2apicMsrBase && index <= apic::kX2apicMsrLast) {
    *ok = l.x2apic() && l.read((index - apic::kX2apicMsrBase) << 4, guest_tsc_now(vcpu), v);
    return true;
  }
  if (index == apic::kTscDeadlineMsr) {
    *ok = vcpu.features().tsc_deadline;
    v = *ok ? l.tsc_deadline_msr() : 0;
    return true;
  }
  return false;
}

static bool lapic_msr_write(Vcpu& vcpu, uint32_t index, uint64_t v, bool* ok) {
  Vlapic& l = vcpu.vm().lapic[vcpu.index()];
  if (index >= apic::kX2apicMsrBase && index <= apic::kX2apicMsrLast) {
    WriteEffect fx;
    *ok = l.x2apic() && l.write((index - apic::kX2apicMsrBase) << 4, v, guest_tsc_now(vcpu), fx);
    if (*ok) lapic_apply(vcpu, fx);
    return true;
  }
  if (index == apic::kTscDeadlineMsr) {
    *ok = vcpu.features().tsc_deadline;
    if (*ok) l.set_tsc_deadline_msr(v);
    return true;
  }
  return false;
}

void handle_rdmsr(Vcpu& vcpu, const ExitInfo&) {
  x86::vmx::GuestRegs& r = vcpu.regs;
  const uint32_t index = static_cast<uint32_t>(r.rcx);
  uint64_t v = 0;
  bool ok = false;
  if (lapic_msr_read(vcpu, index, v, &ok)) {
    if (!ok) {
      vcpu.inject_exception(kGp, true, 0);
      return;
    }
  } else if (!msr::read(vcpu.msrs.config, vcpu.msrs.state, kVmcsBackend, index, x86::rdtsc(), v)) {
    vcpu.inject_exception(kGp, true, 0);
    return;
  }
  r.rax = static_cast<uint32_t>(v);
  r.rdx = v >> 32;
  vcpu.skip_instruction();
}

void handle_wrmsr(Vcpu& vcpu, const ExitInfo&) {
  x86::vmx::GuestRegs& r = vcpu.regs;
  const uint32_t index = static_cast<uint32_t>(r.rcx);
  const uint64_t v = (r.rdx << 32) | static_cast<uint32_t>(r.rax);
  bool ok = false;
  if (lapic_msr_write(vcpu, index, v, &ok)) {
    if (!ok) {
      vcpu.inject_exception(kGp, true, 0);
      return;
    }
  } else if (!msr::write(vcpu.msrs.config, vcpu.msrs.state, kVmcsBackend, index, v, x86::rdtsc())) {
    vcpu.inject_exception(kGp, true, 0);
    return;
  } else if (index == msr::kApicBase) {
    // The policy accepted the transition; the LAPIC follows its mode.
    const uint64_t b = vcpu.msrs.state.apic_base;
    vcpu.vm().lapic[vcpu.index()].set_mode((b & msr::kApicBaseEnable) != 0, (b & msr::kApicBaseExtd) != 0);
    apicv_mode_changed(vcpu);  // hv/apicv.h: x2APIC virtualization follows the mode (and the base)
    vcpu.vm().lapic_mmio.check_base(vcpu);  // the xAPIC page follows the base (vlapic_mmio.h)
  }
  vcpu.skip_instruction();
}

}  // namespace hv
