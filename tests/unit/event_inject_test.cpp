// The event-delivery rules hv applies when it injects exceptions (hv/event_inject.h): the SDM's
// double-fault table over every pair of exception vectors, the error-code and RF rules, and
// how IDT-vectoring information becomes the event to re-inject.
#include <catch2/catch.hpp>

#include <set>

#include "hv/event_inject.h"

using namespace hv::event;

namespace {
// SDM Vol. 3A, table "Interrupt and Exception Classes", written out independently of the code.
const std::set<int> kContributory = {0, 10, 11, 12, 13, 21};
enum class C { benign, contributory, pf, df };
C cls(int v) {
  if (v == 8) return C::df;
  if (v == 14) return C::pf;
  return kContributory.count(v) ? C::contributory : C::benign;
}
// Table "Conditions for Generating a Double Fault", plus the shutdown rule of interrupt 8.
Outcome expected(int first, int second) {
  const C a = cls(first), b = cls(second);
  if (a == C::contributory && b == C::contributory) return Outcome::kDoubleFault;
  if (a == C::pf && (b == C::contributory || b == C::pf)) return Outcome::kDoubleFault;
  if (a == C::df && (b == C::contributory || b == C::pf || b == C::df)) return Outcome::kTripleFault;
  return Outcome::kSerial;
}
Pending hw(uint8_t v, uint32_t ec = 0) {
  Pending p;
  p.info = make_info(v, Type::kHardwareException, has_error_code(v));
  p.error_code = ec;
  return p;
}
}  // namespace

TEST_CASE("event_inject: the double-fault table over every pair of exception vectors", "[event_inject]") {
  unsigned df = 0, triple = 0, serial = 0;
  for (int a = 0; a < 32; a++) {
    for (int b = 0; b < 32; b++) {
      INFO("first " << a << " second " << b);
      const Outcome o = combine(hw(static_cast<uint8_t>(a)), static_cast<uint8_t>(b));
      CHECK(o == expected(a, b));
      bool t = false;
      const Pending r = raise(hw(static_cast<uint8_t>(a)), static_cast<uint8_t>(b), true, 0x1234, &t);
      switch (o) {
        case Outcome::kSerial:
          serial++;
          CHECK(!t);
          CHECK(info_vector(r.info) == b);
          CHECK(info_type(r.info) == Type::kHardwareException);
          CHECK(r.error_code == 0x1234);
          break;
        case Outcome::kDoubleFault:
          df++;
          CHECK(!t);
          CHECK(info_vector(r.info) == kDf);
          CHECK((r.info & kInfoErrorCode) != 0);
          CHECK(r.error_code == 0);  // #DF always pushes error code 0
          break;
        case Outcome::kTripleFault:
          triple++;
          CHECK(t);
          CHECK(!r.valid());
          break;
      }
    }
  }
  // 6 contributory x 6 contributory + #PF x (6 contributory + #PF) = 43 double faults; #DF x
  // (6 + #PF + #DF) = 8 triple faults.
  CHECK(df == 43);
  CHECK(triple == 8);
  CHECK(serial == 32 * 32 - 43 - 8);
}

TEST_CASE("event_inject: a fault during an interrupt, an NMI or INT n is delivered serially", "[event_inject]") {
  for (Type t : {Type::kExternalInterrupt, Type::kNmi, Type::kSoftwareInterrupt, Type::kSoftwareException,
                 Type::kPrivilegedSoftwareException}) {
    Pending p;
    p.info = make_info(t == Type::kNmi ? 2 : 13, t, false);
    for (uint8_t v : {uint8_t{13}, uint8_t{14}, uint8_t{11}, uint8_t{6}}) CHECK(combine(p, v) == Outcome::kSerial);
  }
  // Nothing pending: the exception itself.
  bool t = true;
  const Pending r = raise(Pending{}, 6, false, 0, &t);
  CHECK(!t);
  CHECK(r.info == (6u | (3u << 8) | kInfoValid));
}

TEST_CASE("event_inject: error codes and RF", "[event_inject]") {
  const std::set<int> with_ec = {8, 10, 11, 12, 13, 14, 17, 21};
  // SDM Vol. 3A, table "Exceptions and Interrupts": faults (RF = 1 in the pushed image).
  const std::set<int> faults = {0, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21};
  for (int v = 0; v < 32; v++) {
    INFO("vector " << v);
    CHECK(has_error_code(static_cast<uint8_t>(v)) == (with_ec.count(v) == 1));
    CHECK(sets_rf(static_cast<uint8_t>(v)) == (faults.count(v) == 1));
  }
  CHECK(!sets_rf(kDb));  // hv injects #DB only as a trap
  CHECK(!sets_rf(kBp));
  CHECK(!sets_rf(kDf));
}

TEST_CASE("event_inject: IDT-vectoring information becomes the event to re-inject", "[event_inject]") {
  // A #PF with error code 2 (bit 12 "undefined" set, as the CPU may leave it).
  Pending p = from_idt_vectoring(0x80000B0E | (1u << 12), 2, 3);
  CHECK(p.valid());
  CHECK(p.info == 0x80000B0E);
  CHECK(p.error_code == 2);
  CHECK(p.instruction_length == 0);  // hardware exceptions carry no length
  // INT 0x80 (software interrupt): the length of the INT instruction is re-injected with it.
  p = from_idt_vectoring(0x80000480, 0x55, 2);
  CHECK(p.info == 0x80000480);
  CHECK(p.error_code == 0);  // no error code bit: the field is ignored
  CHECK(p.instruction_length == 2);
  // INT3 (software exception) and an NMI.
  CHECK(from_idt_vectoring(0x80000603, 0, 1).instruction_length == 1);
  p = from_idt_vectoring(0x80000202, 0, 5);
  CHECK(info_type(p.info) == Type::kNmi);
  CHECK(p.instruction_length == 0);
  // Not valid: nothing to re-inject.
  CHECK(!from_idt_vectoring(0x00000B0E, 0, 0).valid());
}
