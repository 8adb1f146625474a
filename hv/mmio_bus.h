// A VM's MMIO bus: guest-physical ranges [gpa, gpa + len) claimed by device models, each with
// read(offset, size) and write(offset, size, value). hv/exit_ept.cpp consults it when an EPT
// violation hits an address that no memslot backs: the instruction is emulated (hv/emulate/)
// and its accesses go to the device that claims them; an access no device claims gets the
// unbacked-memory policy (loads all ones, stores dropped, both counted: docs/hypercalls.md).
// A memslot wins over a device: the device is asked only where no slot is.
//
// Devices see accesses of 1 to 8 bytes that lie inside one guest page and inside their range
// (an access that crosses a page boundary reaches them as two accesses, one per page - the
// emulator splits it: hv/emulate/memory.h); an access that straddles the end of a region is
// treated whole as unbacked.
//
// Locking: regions are added before any vCPU of the VM runs and not changed while it runs (the
// runner's start of the vCPUs orders the additions before every lookup), so lookups take no
// lock. `lock` serializes the emulated instructions of all vCPUs of the VM that touch
// emulated memory: the exit handler holds it across one whole instruction, so a read-modify-
// write (XCHG, LOCK'd forms) is atomic with respect to every device, and devices need no lock
// of their own for their state.
#pragma once

#include <stdint.h>

#include "arch/x86/spinlock.h"

namespace hv {

class Vcpu;

class MmioDevice {
 public:
  virtual const char* name() const = 0;
  // Called with the bus's lock held (MmioBus::read/write), on the CPU of `vcpu`, the vCPU whose
  // instruction made the access (a device with per-vCPU state, the local APIC, needs to know).
  virtual uint64_t mmio_read(Vcpu& vcpu, uint64_t offset, unsigned size) = 0;
  virtual void mmio_write(Vcpu& vcpu, uint64_t offset, unsigned size, uint64_t value) = 0;

 protected:
  ~MmioDevice() = default;
};

class MmioBus {
 public:
  static constexpr unsigned kMaxRegions = 8;

  // Claims [gpa, gpa + len) for `dev`; false when full or overlapping. Only while no vCPU of
  // the VM runs.
  bool add(uint64_t gpa, uint64_t len, MmioDevice* dev);
  void clear() { count_ = 0; }
  // The region that holds all of [gpa, gpa + size), or -1.
  int find(uint64_t gpa, unsigned size) const;
  uint64_t read(Vcpu& vcpu, int region, uint64_t gpa, unsigned size) REQUIRES(lock);
  void write(Vcpu& vcpu, int region, uint64_t gpa, unsigned size, uint64_t value) REQUIRES(lock);
  unsigned count() const { return count_; }

  x86::SpinLock lock;

 private:
  struct Region {
    uint64_t gpa;
    uint64_t len;
    MmioDevice* dev;
  };
  Region regions_[kMaxRegions] = {};
  unsigned count_ = 0;
};

}  // namespace hv
