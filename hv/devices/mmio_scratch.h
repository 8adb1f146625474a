// The scratch MMIO device of the test guests: 8 KiB at guest-physical HV_SCRATCH_MMIO_GPA
// (tests/guests/lib/hv_abi.h; two 4 KiB pages, so accesses that cross its page boundary are
// emulated in two parts) that behave like RAM - a load returns what the last store wrote -
// but every access is an emulated MMIO access, since no memslot backs the range. It exists so
// the conformance guest guest-emulate (tests/guests/guest_emulate.cpp) can run every encoding
// the emulator knows against a device and compare the result with the CPU running the same
// instruction on RAM. Its contents start as zeros when the VM is created.
#pragma once

#include <stdint.h>

#include "hv/mmio_bus.h"

namespace hv {

class Vm;

class ScratchMmio final : public MmioDevice {
 public:
  static constexpr uint64_t kBytes = 8192;
  const char* name() const override { return "scratch"; }
  uint64_t mmio_read(Vcpu& vcpu, uint64_t offset, unsigned size) override;
  void mmio_write(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) override;
  void reset();

 private:
  uint8_t bytes_[kBytes] = {};
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  struct State {
    uint8_t bytes[kBytes] = {};
  };
  void save(State& s) const;
  void restore(const State& s);
};

// Registers a fresh scratch device at HV_SCRATCH_MMIO_GPA on `vm`'s bus (one device per VM id).
// Before the VM's vCPUs run.
// `reset` false: keep the device's bytes (a migration target: the device is per VM number, the
// source's and the target's are one).
void add_scratch_mmio(Vm& vm, bool reset = true);

}  // namespace hv
