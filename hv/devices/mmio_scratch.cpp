// The scratch MMIO device (see mmio_scratch.h).
#include "hv/devices/mmio_scratch.h"

#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "hv/vm.h"
#include "hv/vm_limits.h"
#include "tests/guests/lib/hv_abi.h"

namespace hv {

static_assert(ScratchMmio::kBytes == HV_SCRATCH_MMIO_BYTES);
static_assert((HV_SCRATCH_MMIO_GPA & 0xFFF) == 0, "page-aligned, so the device spans exactly two pages");

uint64_t ScratchMmio::mmio_read(Vcpu&, uint64_t offset, unsigned size) {
  uint64_t v = 0;
  for (unsigned k = 0; k < size && offset + k < kBytes; k++) v |= static_cast<uint64_t>(bytes_[offset + k]) << (8 * k);
  return v;
}

void ScratchMmio::mmio_write(Vcpu&, uint64_t offset, unsigned size, uint64_t value) {
  for (unsigned k = 0; k < size && offset + k < kBytes; k++) bytes_[offset + k] = static_cast<uint8_t>(value >> (8 * k));
}

void ScratchMmio::reset() { memset(bytes_, 0, sizeof bytes_); }

void add_scratch_mmio(Vm& vm, bool reset) {
  // One device per VM id (ids are 1..kMaxVms for multiboot guests); reset for each new VM.
  static ScratchMmio devices[kMaxVms + 1];
  const unsigned i = vm.id() <= kMaxVms ? vm.id() : 0;
  if (reset) devices[i].reset();
  if (!vm.mmio.add(HV_SCRATCH_MMIO_GPA, HV_SCRATCH_MMIO_BYTES, &devices[i]))
    x86::log::warn("vm%u: the scratch MMIO device could not be added", vm.id());
}

// --- migration state (see the header) ---

void ScratchMmio::save(State& s) const { memcpy(s.bytes, bytes_, sizeof s.bytes); }

void ScratchMmio::restore(const State& s) { memcpy(bytes_, s.bytes, sizeof bytes_); }

}  // namespace hv
