// The event-delivery rules (see event_inject.h).
#include "hv/event_inject.h"

namespace hv::event {

Class exception_class(uint8_t vector) {
  switch (vector) {
    case kDf: return Class::kDoubleFault;
    case kPf: return Class::kPageFault;
    // Contributory: #DE, #TS, #NP, #SS, #GP and, since CET, #CP (SDM Vol. 3A, table
    // "Interrupt and Exception Classes"). #VE is a page-fault-like class of its own in the SDM
    // (treated as benign before it) that hv never injects; everything else is benign.
    case kDe:
    case kTs:
    case kNp:
    case kSs:
    case kGp:
    case kCp: return Class::kContributory;
    default: return Class::kBenign;
  }
}

bool has_error_code(uint8_t vector) {
  switch (vector) {
    case kDf:
    case kTs:
    case kNp:
    case kSs:
    case kGp:
    case kPf:
    case kAc:
    case kCp: return true;
    default: return false;
  }
}

bool sets_rf(uint8_t vector) {
  switch (vector) {
    case kDe:
    case kBr:
    case kUd:
    case kNm:
    case kTs:
    case kNp:
    case kSs:
    case kGp:
    case kPf:
    case kMf:
    case kAc:
    case kXm:
    case kVe:
    case kCp: return true;
    default: return false;  // #DB (trap as hv injects it), #BP, #OF (traps), #DF, #MC (aborts), NMI
  }
}

Outcome combine(const Pending& first, uint8_t second) {
  if (!first.valid() || info_type(first.info) != Type::kHardwareException) return Outcome::kSerial;
  const Class a = exception_class(info_vector(first.info)), b = exception_class(second);
  switch (a) {
    case Class::kBenign: return Outcome::kSerial;
    case Class::kContributory: return b == Class::kContributory ? Outcome::kDoubleFault : Outcome::kSerial;
    case Class::kPageFault:
      return b == Class::kContributory || b == Class::kPageFault ? Outcome::kDoubleFault : Outcome::kSerial;
    case Class::kDoubleFault:
      // "If another contributory or page fault exception occurs while attempting to call the
      // double-fault handler, the processor enters shutdown mode." A benign one (#DB, #NM...)
      // is handled serially, as the table's first column says for benign second exceptions.
      return b == Class::kContributory || b == Class::kPageFault || b == Class::kDoubleFault ? Outcome::kTripleFault
                                                                                            : Outcome::kSerial;
  }
  return Outcome::kSerial;
}

Pending raise(const Pending& current, uint8_t vector, bool error_code_present, uint32_t error_code, bool* triple) {
  *triple = false;
  Pending p;
  switch (combine(current, vector)) {
    case Outcome::kSerial:
      p.info = make_info(vector, Type::kHardwareException, error_code_present);
      p.error_code = error_code_present ? error_code : 0;
      break;
    case Outcome::kDoubleFault:
      p.info = make_info(kDf, Type::kHardwareException, true);
      p.error_code = 0;
      break;
    case Outcome::kTripleFault: *triple = true; break;
  }
  return p;
}

Pending from_idt_vectoring(uint32_t vectoring_info, uint32_t error_code, uint32_t exit_instruction_length) {
  Pending p;
  if (!(vectoring_info & kInfoValid)) return p;
  p.info = vectoring_info & (kInfoValid | kInfoErrorCode | 0x7FFu);
  p.error_code = (vectoring_info & kInfoErrorCode) ? error_code : 0;
  const Type t = info_type(vectoring_info);
  if (t == Type::kSoftwareInterrupt || t == Type::kPrivilegedSoftwareException || t == Type::kSoftwareException)
    p.instruction_length = exit_instruction_length;
  return p;
}

const char* vector_name(uint8_t vector) {
  static const char* const names[32] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                        "#DF", "vector", "#TS", "#NP", "#SS", "#GP", "#PF", "vector",
                                        "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "vector", "vector",
                                        "vector", "vector", "vector", "vector", "#HV", "#VC", "#SX", "vector"};
  return vector < 32 ? names[vector] : "vector";
}

}  // namespace hv::event
