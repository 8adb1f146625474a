// The rules for delivering events to a guest, as pure code (no VMCS access; the host unit tests
// compile it: tests/unit/event_inject_test.cpp). hv/vcpu.cpp applies them.
//
// Two questions come up whenever hv injects an exception:
//   1. An event may already be waiting to be injected at the next VM entry: the one whose
//      delivery caused this VM exit (IDT-vectoring information, re-injected generically by
//      hv/exit_dispatch.cpp). If a handler then raises an exception, the SDM's table
//      "Conditions for Generating a Double Fault" (Vol. 3A, 6.15, interrupt 8) decides what the
//      guest gets: the new exception (handled serially), a #DF, or - when the first event was a
//      #DF - a triple fault (shutdown; hv stops the VM with a report).
//   2. Does the pushed RFLAGS image carry RF? Hardware sets RF in the image it pushes for every
//      fault-class exception except an instruction-breakpoint #DB (SDM Vol. 3B, 17.3.1.1), so
//      that the handler's IRET does not hit the same instruction breakpoint again. VM entry
//      pushes the guest RFLAGS field as it is, so hv sets RF there itself (sets_rf()).
#pragma once

#include <stdint.h>

namespace hv::event {

// Exception vectors hv names.
inline constexpr uint8_t kDe = 0, kDb = 1, kNmi = 2, kBp = 3, kOf = 4, kBr = 5, kUd = 6, kNm = 7, kDf = 8;
inline constexpr uint8_t kTs = 10, kNp = 11, kSs = 12, kGp = 13, kPf = 14, kMf = 16, kAc = 17, kMc = 18;
inline constexpr uint8_t kXm = 19, kVe = 20, kCp = 21;

// Interruption types of the VM-entry interruption-information and IDT-vectoring fields
// (SDM Vol. 3C, 25.8.3 and 28.2.4).
enum class Type : uint8_t {
  kExternalInterrupt = 0,
  kNmi = 2,
  kHardwareException = 3,
  kSoftwareInterrupt = 4,        // INT n
  kPrivilegedSoftwareException = 5,  // INT1 (ICEBP)
  kSoftwareException = 6,        // INT3, INTO
  kOther = 7,
};

// Fields of the interruption-information format (shared by both fields).
inline constexpr uint32_t kInfoValid = 1u << 31;
inline constexpr uint32_t kInfoErrorCode = 1u << 11;
inline constexpr uint8_t info_vector(uint32_t info) { return static_cast<uint8_t>(info & 0xFF); }
inline constexpr Type info_type(uint32_t info) { return static_cast<Type>((info >> 8) & 7); }
inline constexpr uint32_t make_info(uint8_t vector, Type type, bool error_code) {
  return vector | (static_cast<uint32_t>(type) << 8) | (error_code ? kInfoErrorCode : 0) | kInfoValid;
}

// The double-fault classes of SDM Vol. 3A, table "Interrupt and Exception Classes".
enum class Class : uint8_t { kBenign, kContributory, kPageFault, kDoubleFault };
Class exception_class(uint8_t vector);

// Exceptions that push an error code in protected mode (8, 10-14, 17, 21; #CP only with CET).
bool has_error_code(uint8_t vector);

// Whether a hardware exception with this vector is a fault in the SDM's sense, so that its
// pushed RFLAGS image must carry RF = 1. #DB counts as not a fault here: hv injects #DB only
// for traps (single-step, data breakpoints), never for an instruction breakpoint, which the CPU
// delivers itself. Traps (#BP, #OF) and aborts (#DF, #MC) get no RF.
bool sets_rf(uint8_t vector);

// An event waiting for the next VM entry: interruption information (kInfoValid set), error
// code, instruction length (software interrupts and exceptions).
struct Pending {
  uint32_t info = 0;
  uint32_t error_code = 0;
  uint32_t instruction_length = 0;
  bool valid() const { return (info & kInfoValid) != 0; }
};

enum class Outcome : uint8_t {
  kSerial,       // deliver the new exception (the first event is dropped: see combine())
  kDoubleFault,  // deliver #DF with error code 0
  kTripleFault,  // shutdown: the VM stops
};

// What the guest gets when hardware exception `second` is raised while `first` (valid) is being
// delivered. Only a first event of type hardware exception takes part in the double-fault
// table; the new exception is delivered serially after any other first event (an INT n, an
// external interrupt, an NMI): as on hardware, the faulting delivery is abandoned and the
// exception's frame points at the instruction that started it, so INT n runs again after the
// handler returns.
Outcome combine(const Pending& first, uint8_t second);

// The Pending that results from raising hardware exception `vector` (with error code if the
// vector has one) on top of `current` (which may be invalid): what combine() decided. On a
// triple fault the result is invalid and *triple is set.
Pending raise(const Pending& current, uint8_t vector, bool has_error_code, uint32_t error_code, bool* triple);

// The IDT-vectoring information of an exit turned into the event to re-inject (SDM 28.2.4:
// bits 30:12 of the vectoring field are not part of the entry format and are cleared; the
// instruction length matters only for software interrupts and exceptions).
Pending from_idt_vectoring(uint32_t vectoring_info, uint32_t error_code, uint32_t exit_instruction_length);

// Short name of an exception vector ("#GP"), or "vector" for the others.
const char* vector_name(uint8_t vector);

}  // namespace hv::event
