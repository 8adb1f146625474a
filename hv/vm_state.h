// Everything a running VM's vCPUs and devices hold besides guest memory, as plain data: what a
// migration (hv/migrate.h, docs/migration.md) moves from the source VM to the target.
//
//   VcpuState   the general registers and CR2 (Vcpu::regs), XCR0, the MSR policy's state (the
//               switched MSRs' guest values, TSC offset and adjust, APIC base, MTRRs), DR0-DR3
//               and DR6 (in the CPU: VMX does not switch them), the VMCS guest-state area, the
//               CR0/CR4 read shadows, the TSC offset, the event the next entry injects (the
//               VM-entry interruption fields and hv's copy of it) and the guest interrupt
//               status of the hardware APIC path; and where hv held the vCPU (asleep in HLT,
//               still parked before its start).
//   DeviceState the chipset (8259 pair, PIT, RTC/NVRAM, IOAPIC, PCI host bridge, reset
//               controls, port 0x80), ACPI PM registers, fw_cfg's cursor, the 16550, every
//               local APIC (registers, timer, posted-interrupt words), the INIT/SIPI latches,
//               and the VM's guest-visible words (TSC origin, result, lowest-priority cursor).
//
// The x87/SSE/AVX registers (and MXCSR, the AVX-512 state where the CPU has it) are in
// VcpuState::fpu, an XSAVE area (FXSAVE without XSAVE): hv never touches them itself
// (-mgeneral-regs-only), so at the save they are the guest's, in the CPU. After the save the
// CPU's extended state is reset to its init state, so the target gets them from the saved area
// only (as it would on another CPU), not by luck from the CPU it happens to run on.
// Not here (docs/migration.md "What is not supported"): hv's own bookkeeping (statistics,
// timings), which the target starts afresh.
//
// Time: every timer deadline is kept in guest TSC (local APIC) or in ticks of the VM's clock
// derived from the guest TSC (PIT, RTC, ACPI PM timer); the target keeps the source's TSC
// origin and each vCPU's TSC offset, so the same values mean the same instants there.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/vmx/guest_regs.h"
#include "hv/devices/acpi_pm.h"
#include "hv/devices/fw_cfg.h"
#include "hv/devices/ioapic.h"
#include "hv/devices/pci_host.h"
#include "hv/devices/pic.h"
#include "hv/devices/pit.h"
#include "hv/devices/reset.h"
#include "hv/devices/rtc.h"
#include "hv/devices/uart.h"
#include "hv/devices/vlapic.h"
#include "hv/event_inject.h"
#include "hv/msr_policy.h"
#include "hv/vm_limits.h"

namespace hv {

class Vcpu;
class Vm;

struct VcpuState {
  static constexpr unsigned kMaxFields = 80;
  x86::vmx::GuestRegs regs = {};
  uint64_t xcr0 = 1;
  msr::State msrs;
  uint64_t dr[4] = {}, dr6 = 0;
  event::Pending event;
  bool reinjecting = false;
  unsigned field_count = 0;
  uint32_t field[kMaxFields] = {};  // VMCS encodings, in the order saved
  uint64_t value[kMaxFields] = {};
  bool halted = false;   // asleep in HLT (Vcpu::halt) when it was paused: sleeps again
  bool started = true;   // false: still parked (never started) in the source
  // The x87/SSE/AVX state: XSAVE standard format of `fpu_rfbm` (hv's XCR0, a superset of every
  // guest's), or FXSAVE format when fpu_rfbm is 0 (no XSAVE). fpu_bytes: 0 = not saved.
  static constexpr unsigned kFpuBytes = 4096;
  uint64_t fpu_rfbm = 0;
  uint32_t fpu_bytes = 0;
  alignas(64) uint8_t fpu[kFpuBytes] = {};
};
static_assert(offsetof(VcpuState, fpu) % 64 == 0, "XSAVE needs a 64-byte aligned area");

// On the vCPU's CPU, with its VMCS current, after its run loop returned at a safe point (no
// exit being handled: the pending event is in the VM-entry fields and Vcpu's copy).
void save_vcpu_state(Vcpu& vcpu, VcpuState& s);
// On the new vCPU's CPU right after Vcpu::init (its VMCS current, never entered): overwrites the
// start state setup_vmcs wrote. The VM's devices must be restored first (the hardware APIC
// path reads the local APIC's mode).
void restore_vcpu_state(Vcpu& vcpu, const VcpuState& s);
// The x87/SSE/AVX part of the two above, on their own: save_vcpu_state saves and then resets the
// CPU's extended state, restore_vcpu_state loads it. A migration that is abandoned gives the
// source's paused vCPU its registers back with restore_vcpu_fpu on the same CPU.
// skip (hv.migrate-test=lose-fpu): the restore is left out, so the guest's check must fail.
void save_vcpu_fpu(VcpuState& s);
void restore_vcpu_fpu(const VcpuState& s);
void set_fpu_restore_skipped_for_test(bool skip);

struct DeviceState {
  PicPair::State pic;
  Pit::State pit;
  Rtc::State rtc;
  Ioapic::State ioapic;
  PciHost::State pci;
  ResetControl::State reset_ctl;
  uint32_t post_code = 0;
  AcpiPm::State acpi_pm;
  FwCfg::State fw_cfg;
  Uart::State uart;
  Vlapic::State lapic[kMaxVcpus];
  uint32_t sipi[kMaxVcpus] = {};
  uint64_t tsc_origin = 0;
  bool result_valid = false;
  uint32_t result = 0;
  uint32_t lowest_priority_next = 0, apic_dropped = 0;
};

// Every vCPU of `vm` stopped (no device changes under the copy).
void save_devices(Vm& vm, DeviceState& s);
// Into a VM whose devices are set up (buses claimed, reset) and whose vCPUs have not started.
void restore_devices(Vm& vm, const DeviceState& s);

}  // namespace hv
