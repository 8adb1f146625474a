// The emulator's memory side (hv/emulate/memory.h, execute.h, translate.h): page-crossing
// accesses split and translated per page, REP string instructions (count, direction, budget,
// a fault in the middle), #PF for a fetch or a data access the guest's own tables refuse (with
// the error code the CPU would give), and the refusal of unknown and truncated instructions.
#include <catch2/catch.hpp>

#include <cstring>
#include <map>

#include "emulate_fake_guest.h"
#include "hv/emulate/execute.h"
#include "hv/emulate/translate.h"

using emu_test::FakeGuest;
using hv::emu::CpuState;
using hv::emu::Fault;
using hv::emu::Mode;
using hv::emu::Regs;
using hv::emu::Result;

namespace {

Result run(FakeGuest& g, Regs& r, const std::vector<uint8_t>& bytes, Mode mode = Mode::k32, uint64_t at = 0x1000,
           uint64_t budget = 1024) {
  g.put(at, bytes);
  r.rip = at;
  CpuState cpu;
  cpu.mode = mode;
  return hv::emu::emulate(cpu, r, g, budget);
}

}  // namespace

TEST_CASE("emulate memory: a page-crossing access is two accesses, each page translated", "[emulate]") {
  FakeGuest g;
  g.page_map[0x7] = 0x50;  // linear 0x7000 -> gpa 0x50000
  g.page_map[0x8] = 0x90;  // linear 0x8000 -> gpa 0x90000 (not contiguous)
  Regs r;
  r.gpr[3] = 0x7FFE;
  r.gpr[0] = 0xA1B2C3D4;
  REQUIRE(run(g, r, {0x89, 0x03}).status == Result::Status::done);  // mov [ebx], eax
  REQUIRE(g.log.size() == 2);
  CHECK(g.log[0].write);
  CHECK(g.log[0].gpa == 0x50FFE);
  CHECK(g.log[0].size == 2);
  CHECK(g.log[1].gpa == 0x90000);
  CHECK(g.log[1].size == 2);
  CHECK(g.get_le(0x50FFE, 2) == 0xC3D4);
  CHECK(g.get_le(0x90000, 2) == 0xA1B2);
  // Read back across the boundary, 64-bit: 3 + 5 bytes.
  g.log.clear();
  g.put_le(0x50FFD, 0x112233, 3);
  g.put_le(0x90000, 0x4455667788ull, 5);
  r.gpr[3] = 0x7FFD;
  REQUIRE(run(g, r, {0x48, 0x8B, 0x03}, Mode::k64).status == Result::Status::done);
  CHECK(r.gpr[0] == 0x4455667788112233ull);
  REQUIRE(g.log.size() == 2);
  CHECK(g.log[0].size == 3);
  CHECK(g.log[1].size == 5);
}

TEST_CASE("emulate memory: #PF on the second page of a store writes neither page", "[emulate]") {
  FakeGuest g;
  g.not_present.insert(0x8);
  Regs r;
  r.gpr[3] = 0x7FFE;
  r.gpr[0] = 0xA1B2C3D4;
  const Regs before = r;
  const Result res = run(g, r, {0x89, 0x03});
  REQUIRE(res.status == Result::Status::fault);
  CHECK(res.fault.kind == Fault::Kind::page_fault);
  CHECK(res.fault.linear == 0x8000);
  CHECK(res.fault.error_code == hv::emu::pferr::kWrite);
  CHECK(g.log.empty());
  CHECK(r.rip == 0x1000);
  CHECK(r.gpr[0] == before.gpr[0]);
  // A read-modify-write whose read faults changes nothing either (and no flags).
  r.rflags = 0x2;
  const Result res2 = run(g, r, {0x01, 0x03});  // add [ebx], eax
  CHECK(res2.status == Result::Status::fault);
  CHECK(res2.fault.error_code == 0);  // the read faulted first
  CHECK(r.rflags == 0x2);
  CHECK(g.log.empty());
}

TEST_CASE("emulate memory: instruction fetch through the page map, #PF with I/D when the walk fails", "[emulate]") {
  FakeGuest g;
  // mov eax,[0x4000] (8B 05 disp32 in 32-bit code: 6 bytes) starting 3 bytes before a page
  // that is not present: the fetch of its 4th byte faults at 0x2000.
  g.not_present.insert(0x2);
  Regs r;
  const Result res = run(g, r, {0x8B, 0x05, 0x00}, Mode::k32, 0x1FFD);
  REQUIRE(res.status == Result::Status::fault);
  CHECK(res.fault.kind == Fault::Kind::page_fault);
  CHECK(res.fault.linear == 0x2000);
  CHECK((res.fault.error_code & hv::emu::pferr::kFetch) != 0);
  CHECK(r.rip == 0x1FFD);
  // An instruction that ends before the missing page is fine.
  g.put_le(0x4000, 0x99, 4);
  const Result ok = run(g, r, {0x8B, 0x03}, Mode::k32, 0x1FFE);  // mov eax,[ebx], ebx = 0
  CHECK(ok.status == Result::Status::done);
  // Code outside RAM (an MMIO page) is not fetched: stop, never guess.
  FakeGuest h;
  h.no_ram.insert(0x1);
  Regs q;
  const Result stop = run(h, q, {0x8B, 0x03}, Mode::k32, 0x1000);
  CHECK(stop.status == Result::Status::stop);
}

TEST_CASE("emulate memory: the #PF error code from a guest page walk", "[emulate]") {
  // 32-bit paging, a page directory at 0x10000 whose entry 0 is not present; another with a
  // reserved bit (PAE, NXE off: bit 63 reserved).
  std::map<uint64_t, uint64_t> mem;
  auto read = [](void* ctx, uint64_t gpa, unsigned size, uint64_t* v) {
    auto& m = *static_cast<std::map<uint64_t, uint64_t>*>(ctx);
    const auto it = m.find(gpa);
    *v = it == m.end() ? 0 : it->second;
    (void)size;
    return true;
  };
  hv::GuestPaging p;
  p.cr0 = (1u << 31) | 1;
  p.cr3 = 0x10000;
  hv::emu::TranslateHint none;
  auto t = hv::emu::translate_linear(p, read, &mem, none, 0x1234, hv::emu::AccessKind::write, 3);
  CHECK(t.fault.kind == Fault::Kind::page_fault);
  CHECK(t.fault.error_code == (hv::emu::pferr::kWrite | hv::emu::pferr::kUser));
  CHECK(t.fault.linear == 0x1234);
  // Without NX (32-bit paging), a fetch fault has no I/D bit; with PAE + NXE it does.
  t = hv::emu::translate_linear(p, read, &mem, none, 0x1234, hv::emu::AccessKind::fetch, 0);
  CHECK(t.fault.error_code == 0);
  p.cr4 = 1u << 5;              // PAE
  p.efer = 1u << 11;            // NXE
  p.pdptes_valid = true;
  p.pdpte[0] = 0x20000 | 1;
  mem[0x20000] = 0x30000 | 1;   // PDE -> PT
  mem[0x30000 + 8] = (1ull << 51) | 0x40000 | 1;  // PTE of 0x1000 with a reserved address bit (MAXPHYADDR 36)
  t = hv::emu::translate_linear(p, read, &mem, none, 0x1000, hv::emu::AccessKind::fetch, 0);
  CHECK(t.fault.kind == Fault::Kind::page_fault);
  CHECK(t.fault.error_code == (hv::emu::pferr::kPresent | hv::emu::pferr::kReserved | hv::emu::pferr::kFetch));
  t = hv::emu::translate_linear(p, read, &mem, none, 0x0000, hv::emu::AccessKind::read, 0);
  CHECK(t.fault.kind == Fault::Kind::page_fault);
  CHECK(t.fault.error_code == 0);
  // The exit's own translation wins for its page.
  hv::emu::TranslateHint hint{true, 0x1FF0, 0xABC000};
  t = hv::emu::translate_linear(p, read, &mem, hint, 0x1008, hv::emu::AccessKind::read, 0);
  CHECK(!t.fault);
  CHECK(t.gpa == 0xABC008);
  // A non-canonical address in IA-32e mode is #GP(0).
  p.efer |= 1u << 10;
  t = hv::emu::translate_linear(p, read, &mem, none, 0x0000800000000000ull, hv::emu::AccessKind::read, 0);
  CHECK(t.fault.kind == Fault::Kind::exception);
  CHECK(t.fault.vector == 13);
}

TEST_CASE("emulate memory: REP MOVS and STOS, both directions, address size, budget", "[emulate]") {
  FakeGuest g;
  for (unsigned k = 0; k < 64; k++) g.phys[0x5000 + k] = static_cast<uint8_t>(k + 1);
  Regs r;
  r.gpr[6] = 0x5000;  // esi
  r.gpr[7] = 0x6000;  // edi
  r.gpr[1] = 16;      // ecx
  REQUIRE(run(g, r, {0xF3, 0xA5}).status == Result::Status::done);  // rep movsd
  for (unsigned k = 0; k < 64; k++) CHECK(g.byte(0x6000 + k) == k + 1);
  CHECK(r.gpr[1] == 0);
  CHECK(r.gpr[6] == 0x5040);
  CHECK(r.gpr[7] == 0x6040);
  CHECK(r.rip == 0x1002);
  // Backwards (DF = 1) rep stosb of 8 bytes ending at 0x7007.
  r.rflags = 0x2 | (1u << 10);
  r.gpr[0] = 0x5A;
  r.gpr[7] = 0x7007;
  r.gpr[1] = 8;
  REQUIRE(run(g, r, {0xF3, 0xAA}).status == Result::Status::done);
  for (unsigned k = 0; k < 8; k++) CHECK(g.byte(0x7000 + k) == 0x5A);
  CHECK(g.byte(0x6FFF) == 0);
  CHECK(r.gpr[7] == 0x6FFF);
  // A count of zero does nothing but skip the instruction.
  g.log.clear();
  r.gpr[1] = 0;
  REQUIRE(run(g, r, {0xF3, 0xAA}).status == Result::Status::done);
  CHECK(g.log.empty());
  CHECK(r.rip == 0x1002);
  // 16-bit address size: CX/DI wrap at 64 KiB and the high halves stay.
  r.rflags = 0x2;
  r.gpr[1] = 0xABCD0000 | 2;
  r.gpr[7] = 0x1234FFFF;
  REQUIRE(run(g, r, {0x67, 0xF3, 0xAA}).status == Result::Status::done);
  CHECK(g.byte(0xFFFF) == 0x5A);
  CHECK(g.byte(0x0000) == 0x5A);
  CHECK(r.gpr[1] == 0xABCD0000);
  CHECK(r.gpr[7] == 0x12340001);
  // The budget: 10 of 25 iterations, RIP stays so the guest re-executes the rest.
  r.gpr[1] = 25;
  r.gpr[7] = 0x8000;
  const Result part = run(g, r, {0xF3, 0xAA}, Mode::k32, 0x1000, 10);
  REQUIRE(part.status == Result::Status::done);
  CHECK(part.iterations == 10);
  CHECK(r.gpr[1] == 15);
  CHECK(r.rip == 0x1000);
  CHECK(run(g, r, {0xF3, 0xAA}).status == Result::Status::done);
  CHECK(r.gpr[1] == 0);
  CHECK(r.gpr[7] == 0x8019);
  CHECK(r.rip == 0x1002);
}

TEST_CASE("emulate memory: a #PF in the middle of REP MOVS keeps the iterations done", "[emulate]") {
  FakeGuest g;
  g.not_present.insert(0x9);
  Regs r;
  r.gpr[6] = 0x5000;
  r.gpr[7] = 0x8FF8;  // 2 dwords fit before the missing page
  r.gpr[1] = 4;
  const Result res = run(g, r, {0xF3, 0xA5});
  REQUIRE(res.status == Result::Status::fault);
  CHECK(res.fault.linear == 0x9000);
  CHECK(res.iterations == 2);
  CHECK(r.gpr[1] == 2);
  CHECK(r.gpr[7] == 0x9000);
  CHECK(r.gpr[6] == 0x5008);
  CHECK(r.rip == 0x1000);  // the guest resumes the instruction after its #PF handler
}

TEST_CASE("emulate memory: refusals and exceptions of the decoder", "[emulate]") {
  FakeGuest g;
  Regs r;
  const Result unknown = run(g, r, {0x0F, 0x0B});
  CHECK(unknown.status == Result::Status::refused);
  CHECK(unknown.decode == hv::emu::DecodeStatus::unknown);
  CHECK(unknown.nbytes == 15);
  const Result lock = run(g, r, {0xF0, 0x8B, 0x00});
  CHECK(lock.status == Result::Status::fault);
  CHECK(lock.fault.vector == 6);
  std::vector<uint8_t> longer(15, 0x66);
  longer.push_back(0x8B);
  const Result too_long = run(g, r, longer);
  CHECK(too_long.status == Result::Status::fault);
  CHECK(too_long.fault.vector == 13);
  // Truncated by a page the guest cannot fetch: that is the guest's #PF, not a refusal.
  g.not_present.insert(0x2);
  const Result cut = run(g, r, {0x8B}, Mode::k32, 0x1FFF);
  CHECK(cut.status == Result::Status::fault);
  CHECK(cut.fault.linear == 0x2000);
  CHECK(r.rip == 0x1FFF);
}

TEST_CASE("emulate memory: XCHG and LOCK'd RMW are one read then one write of the same bytes", "[emulate]") {
  FakeGuest g;
  g.put_le(0x4000, 5, 4);
  Regs r;
  r.gpr[3] = 0x4000;
  r.gpr[0] = 7;
  REQUIRE(run(g, r, {0xF0, 0x01, 0x03}).status == Result::Status::done);  // lock add [ebx], eax
  REQUIRE(g.log.size() == 2);
  CHECK(!g.log[0].write);
  CHECK(g.log[1].write);
  CHECK(g.log[1].gpa == 0x4000);
  CHECK(g.log[1].value == 12);
  g.log.clear();
  REQUIRE(run(g, r, {0x87, 0x03}).status == Result::Status::done);  // xchg [ebx], eax
  REQUIRE(g.log.size() == 2);
  CHECK(g.log[1].value == 7);
  CHECK(r.gpr[0] == 12);
}
