// What the emulator needs from the machine it emulates for: the guest's registers (a plain
// struct the caller fills and writes back), its mode and segment bases, and guest memory through
// one interface, GuestAccess, with two steps that the caller implements:
//   translate(): guest-linear -> guest-physical with the guest's own paging (or its refusal:
//     a #PF to inject, a #GP, or a reason to stop);
//   read_phys()/write_phys(): one access that lies inside one 4 KiB guest page, to wherever that
//     guest-physical address leads (RAM, an MMIO device, the unbacked-memory policy, a
//     read-only slot that drops writes); fetch_phys() for instruction bytes, from RAM only.
// The split of an access at page boundaries and the order of faults against side effects are
// the emulator's (memory.h), so every backend gets them right by construction. hv implements
// the interface for a VMX vCPU (hv/exit_ept.cpp); the host tests with a fake guest memory.
#pragma once

#include <stdint.h>

#include "hv/emulate/insn.h"

namespace hv::emu {

struct Regs {
  uint64_t gpr[16] = {};  // RAX RCX RDX RBX RSP RBP RSI RDI R8-R15
  uint64_t rip = 0;
  uint64_t rflags = 2;
};

struct CpuState {
  Mode mode = Mode::k32;
  uint64_t seg_base[6] = {};  // ES CS SS DS FS GS (in 64-bit mode only FS and GS are used)
  unsigned cpl = 0;
};

enum class AccessKind : uint8_t { read, write, fetch };

// Page-fault error code bits (SDM vol. 3A, "Interrupt 14").
namespace pferr {
inline constexpr uint32_t kPresent = 1u << 0;
inline constexpr uint32_t kWrite = 1u << 1;
inline constexpr uint32_t kUser = 1u << 2;
inline constexpr uint32_t kReserved = 1u << 3;
inline constexpr uint32_t kFetch = 1u << 4;
}  // namespace pferr

// Why an access or the whole emulation did not complete.
struct Fault {
  enum class Kind : uint8_t {
    none,
    page_fault,  // inject #PF(error_code) with CR2 = linear
    exception,   // inject `vector` (with error_code if has_error)
    stop,        // cannot be completed exactly (e.g. a guest page table outside RAM): stop the vCPU
  };
  Kind kind = Kind::none;
  uint8_t vector = 0;
  bool has_error = false;
  uint32_t error_code = 0;
  uint64_t linear = 0;
  const char* why = nullptr;  // stop: the reason (static text)
  explicit operator bool() const { return kind != Kind::none; }
};

class GuestAccess {
 public:
  struct Translation {
    Fault fault;       // none: gpa is valid
    uint64_t gpa = 0;
  };
  // Translates `linear` for an access of `kind` at privilege `cpl` (the #PF error code is the
  // implementation's: P, W/R, U/S, RSVD, I/D).
  virtual Translation translate(uint64_t linear, AccessKind kind, unsigned cpl) = 0;
  // One data access of `size` bytes (1..8) inside one guest page. Reads always produce a value
  // (unbacked memory reads as all ones); writes may be dropped by the backend's policy.
  virtual void read_phys(uint64_t gpa, unsigned size, uint8_t* out) = 0;
  virtual void write_phys(uint64_t gpa, unsigned size, const uint8_t* in) = 0;
  // Instruction bytes inside one guest page: from RAM only (code in MMIO or unbacked memory is
  // not emulated); false when the range is not RAM.
  virtual bool fetch_phys(uint64_t gpa, unsigned size, uint8_t* out) = 0;

 protected:
  ~GuestAccess() = default;
};

}  // namespace hv::emu
