// Save and restore of a VM's vCPU and device state (see vm_state.h).
#include "hv/vm_state.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "arch/x86/vmx/instructions.h"
#include "arch/x86/xsave.h"
#include "arch/x86/vmx/vmcs_fields.h"
#include "hv/apicv.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {

// The VMCS fields that hold guest state or follow it at run time. The controls hv computes
// (pin/processor-based, exit, entry but for IA-32e mode, EPTP, MSR bitmap, VPID, host state) are
// the target's own, from its setup_vmcs; the interrupt- and NMI-window controls are recomputed
// before every entry (hv/irq_inject.cpp) and start off.
constexpr uint32_t kFields[] = {
    field::kGuestEsSel,       field::kGuestCsSel,      field::kGuestSsSel,      field::kGuestDsSel,
    field::kGuestFsSel,       field::kGuestGsSel,      field::kGuestLdtrSel,    field::kGuestTrSel,
    field::kGuestEsBase,      field::kGuestCsBase,     field::kGuestSsBase,     field::kGuestDsBase,
    field::kGuestFsBase,      field::kGuestGsBase,     field::kGuestLdtrBase,   field::kGuestTrBase,
    field::kGuestEsLimit,     field::kGuestCsLimit,    field::kGuestSsLimit,    field::kGuestDsLimit,
    field::kGuestFsLimit,     field::kGuestGsLimit,    field::kGuestLdtrLimit,  field::kGuestTrLimit,
    field::kGuestEsAr,        field::kGuestCsAr,       field::kGuestSsAr,       field::kGuestDsAr,
    field::kGuestFsAr,        field::kGuestGsAr,       field::kGuestLdtrAr,     field::kGuestTrAr,
    field::kGuestGdtrBase,    field::kGuestGdtrLimit,  field::kGuestIdtrBase,   field::kGuestIdtrLimit,
    field::kGuestCr0,         field::kGuestCr3,        field::kGuestCr4,        field::kGuestDr7,
    field::kGuestRsp,         field::kGuestRip,        field::kGuestRflags,     field::kGuestPendingDebug,
    field::kGuestSysenterCs,  field::kGuestSysenterEsp, field::kGuestSysenterEip, field::kGuestEfer,
    field::kGuestPat,         field::kGuestDebugCtl,   field::kGuestPdpte0,     field::kGuestPdpte0 + 2,
    field::kGuestPdpte0 + 4,  field::kGuestPdpte0 + 6, field::kGuestInterruptibility, field::kGuestActivityState,
    field::kCr0ReadShadow,    field::kCr4ReadShadow,   field::kTscOffset,       field::kEntryInterruptionInfo,
    field::kEntryExceptionErrorCode, field::kEntryInstructionLength,
};
constexpr unsigned kFieldCount = sizeof kFields / sizeof kFields[0];
static_assert(kFieldCount + 1 <= VcpuState::kMaxFields, "VcpuState::kMaxFields too small");

uint64_t read_dr(unsigned n) {
  uint64_t v = 0;
  switch (n) {
    case 0: asm volatile("mov %%dr0, %0" : "=r"(v)); break;
    case 1: asm volatile("mov %%dr1, %0" : "=r"(v)); break;
    case 2: asm volatile("mov %%dr2, %0" : "=r"(v)); break;
    case 3: asm volatile("mov %%dr3, %0" : "=r"(v)); break;
    default: asm volatile("mov %%dr6, %0" : "=r"(v)); break;
  }
  return v;
}

void write_dr(unsigned n, uint64_t v) {
  switch (n) {
    case 0: asm volatile("mov %0, %%dr0" ::"r"(v)); break;
    case 1: asm volatile("mov %0, %%dr1" ::"r"(v)); break;
    case 2: asm volatile("mov %0, %%dr2" ::"r"(v)); break;
    case 3: asm volatile("mov %0, %%dr3" ::"r"(v)); break;
    default: asm volatile("mov %0, %%dr6" ::"r"(v)); break;
  }
}

// The init state loaded after a save: an XSAVE header with XSTATE_BV 0 puts every requested
// component in its init state; MXCSR (which XRSTOR and FXRSTOR load from the legacy area
// whatever XSTATE_BV says) and the x87 control word hold their reset values.
alignas(64) uint8_t g_init_area[VcpuState::kFpuBytes];
bool g_init_ready = false;  // written before the first save by whichever CPU; same bytes every time
bool g_skip_fpu_restore = false;

void prepare_init_area() {
  if (__atomic_load_n(&g_init_ready, __ATOMIC_ACQUIRE)) return;
  const uint16_t fcw = 0x037F;
  const uint32_t mxcsr = 0x1F80;
  memcpy(g_init_area, &fcw, sizeof fcw);
  memcpy(g_init_area + 24, &mxcsr, sizeof mxcsr);
  // Pairs with the acquire above: another CPU that sees the flag sees the bytes (identical
  // bytes written twice by two racing CPUs are harmless).
  __atomic_store_n(&g_init_ready, true, __ATOMIC_RELEASE);
}

void xsave_to(void* area, uint64_t rfbm) {
  asm volatile("xsave64 (%0)" ::"r"(area), "a"(static_cast<uint32_t>(rfbm)), "d"(static_cast<uint32_t>(rfbm >> 32))
               : "memory");
}
void xrstor_from(const void* area, uint64_t rfbm) {
  asm volatile("xrstor64 (%0)" ::"r"(area), "a"(static_cast<uint32_t>(rfbm)), "d"(static_cast<uint32_t>(rfbm >> 32))
               : "memory");
}

}  // namespace

void set_fpu_restore_skipped_for_test(bool skip) { g_skip_fpu_restore = skip; }

void save_vcpu_fpu(VcpuState& s) {
  prepare_init_area();
  const uint64_t rfbm = x86::xsave::host_xcr0();  // XCR0 in root mode: every component a guest may use
  // Standard format: the header's reserved bytes must be zero for the XRSTOR that reads it.
  memset(s.fpu, 0, sizeof s.fpu);
  if (rfbm) {
    const uint32_t size = x86::cpuid(0xD, 0).ebx;  // the area for the current XCR0
    if (size > sizeof s.fpu) {
      // Not expected (hv's XCR0 has no AMX/PKRU); keep the registers in the CPU rather than lose them.
      x86::log::error("migration: the XSAVE area (%u bytes) exceeds VcpuState::fpu (%u): the x87/SSE/AVX state stays in "
                      "the CPU",
                      size, VcpuState::kFpuBytes);
      s.fpu_bytes = 0;
      return;
    }
    xsave_to(s.fpu, rfbm);
    s.fpu_rfbm = rfbm;
    s.fpu_bytes = size;
    xrstor_from(g_init_area, rfbm);
  } else {
    asm volatile("fxsave64 (%0)" ::"r"(s.fpu) : "memory");
    s.fpu_rfbm = 0;
    s.fpu_bytes = 512;
    asm volatile("fninit; fxrstor64 (%0)" ::"r"(g_init_area) : "memory");
  }
}

void restore_vcpu_fpu(const VcpuState& s) {
  if (!s.fpu_bytes || g_skip_fpu_restore) return;
  if (s.fpu_rfbm)
    xrstor_from(s.fpu, s.fpu_rfbm);
  else
    asm volatile("fxrstor64 (%0)" ::"r"(s.fpu) : "memory");
}

void save_vcpu_state(Vcpu& v, VcpuState& s) {
  s.regs = v.regs;
  s.xcr0 = v.xcr0;
  s.msrs = v.msrs.state;
  // DR0-DR3 and DR6 are the guest's while it runs and VMX leaves them in the CPU (hv never
  // writes them, hv/vmcs_setup.cpp): read them on the vCPU's CPU.
  for (unsigned i = 0; i < 4; i++) s.dr[i] = read_dr(i);
  s.dr6 = read_dr(6);
  s.event = v.event_;
  s.reinjecting = v.reinjecting_;
  s.halted = v.halted_at_pause_;
  save_vcpu_fpu(s);
  s.field_count = 0;
  for (unsigned i = 0; i < kFieldCount; i++) {
    s.field[s.field_count] = kFields[i];
    s.value[s.field_count++] = vmread(kFields[i]);
  }
  // The hardware APIC path: RVI/SVI, which the CPU itself updates as it delivers.
  if (v.apicv.on) {
    s.field[s.field_count] = field::kGuestInterruptStatus;
    s.value[s.field_count++] = vmread(field::kGuestInterruptStatus);
  }
}

void restore_vcpu_state(Vcpu& v, const VcpuState& s) {
  v.regs = s.regs;
  v.xcr0 = s.xcr0;
  v.msrs.state = s.msrs;
  for (unsigned i = 0; i < 4; i++) write_dr(i, s.dr[i]);
  write_dr(6, s.dr6);
  restore_vcpu_fpu(s);
  v.event_ = s.event;
  v.reinjecting_ = s.reinjecting;
  for (unsigned i = 0; i < s.field_count; i++) {
    if (s.field[i] == field::kGuestInterruptStatus && !v.apicv.on) continue;
    vmwrite(s.field[i], s.value[i]);
  }
  // The "IA-32e mode guest" entry control follows EFER.LMA (as after every exit).
  v.sync_ia32e_mode();
  // The hardware APIC path follows the local APIC's mode (x2APIC: the MSR bitmap and the
  // "virtualize x2APIC mode" control); setup_vmcs saw the restored APIC already, this is for a
  // mode that setup_vmcs could not know (and is a no-op otherwise).
  apicv_mode_changed(v);
  v.resume_halted_ = s.halted;
}

void save_devices(Vm& vm, DeviceState& s) {
  Chipset& c = vm.chipset;
  c.pic.save(s.pic);
  c.pit.save(s.pit);
  c.rtc.save(s.rtc);
  c.ioapic.save(s.ioapic);
  c.pci.save(s.pci);
  c.reset_ctl.save(s.reset_ctl);
  s.post_code = c.post_code.load(mmu::Order::relaxed);
  vm.acpi_pm.save(s.acpi_pm);
  vm.fw_cfg.save(s.fw_cfg);
  vm.uart.save(s.uart);
  for (unsigned i = 0; i < kMaxVcpus; i++) {
    vm.lapic[i].save(s.lapic[i]);
    s.sipi[i] = vm.sipi[i].raw();
  }
  s.tsc_origin = vm.tsc_origin;
  s.result_valid = vm.result_valid();
  s.result = vm.result();
  s.lowest_priority_next = vm.lowest_priority_next.load(mmu::Order::relaxed);
  s.apic_dropped = vm.apic_dropped.load(mmu::Order::relaxed);
}

void restore_devices(Vm& vm, const DeviceState& s) {
  Chipset& c = vm.chipset;
  c.pic.restore(s.pic);
  c.pit.restore(s.pit);
  c.rtc.restore(s.rtc);
  c.ioapic.restore(s.ioapic);
  c.pci.restore(s.pci);
  c.reset_ctl.restore(s.reset_ctl);
  c.post_code.store(s.post_code, mmu::Order::relaxed);
  vm.acpi_pm.restore(s.acpi_pm);
  vm.fw_cfg.restore(s.fw_cfg);
  vm.uart.restore(s.uart);
  for (unsigned i = 0; i < kMaxVcpus; i++) {
    vm.lapic[i].restore(s.lapic[i]);
    vm.sipi[i].restore_raw(s.sipi[i]);
  }
  vm.tsc_origin = s.tsc_origin;
  vm.report_result_reset();
  if (s.result_valid) vm.report_result(s.result);
  vm.lowest_priority_next.store(s.lowest_priority_next, mmu::Order::relaxed);
  vm.apic_dropped.store(s.apic_dropped, mmu::Order::relaxed);
}

}  // namespace hv
