// Port I/O exits, dispatched through the VM's I/O bus (hv/io_bus.h), and hv's own small port
// devices (hv/guest_ports.h).
//
// IN/OUT: the device that claimed the port gets the access (unclaimed: reads all ones, writes
// dropped); RIP moves past the instruction before the device runs, so a device may stop the
// vCPU (exit and result ports).
//
// INS/OUTS (string I/O, with or without REP): each element goes through the bus like an IN or
// OUT, and its memory side is the guest's: the linear address is the segment base plus rSI
// (OUTS: DS or the override the exit's instruction information names) or rDI (INS: always
// ES), masked to the address size; it is translated with the guest's own page tables
// (hv/guest_walk.h) and reached only through the VM's memslots. The address size and the
// segment come from the VM-exit instruction-information field (IA32_VMX_BASIC bit 54 says the
// CPU fills it for INS/OUTS); without it hv assumes the mode's default address size and DS.
// RFLAGS.DF picks the direction; rSI/rDI (and rCX with REP) are updated per element at the
// address size, as the instruction does. Outcomes:
//   - the guest's translation fails (not present, reserved bit): hv injects #PF with CR2 = the
//     linear address and the error code the CPU would give (W for INS, U at CPL 3, P|RSVD for
//     a reserved bit); the registers show the elements already done, as for a fault in the
//     middle of a REP string instruction.
//   - a paging structure outside guest RAM, a non-canonical address: the vCPU stops with a
//     report (no architectural answer hv can give honestly).
//   - guest-physical memory without a slot, or a read-only slot written by INS: the unbacked
//     policy of docs/hypercalls.md (reads all ones, writes dropped, counted).
//   - REP with more than kStringBudget elements: hv does that many, leaves RIP on the
//     instruction and resumes the guest, which executes it again for the rest (REP string
//     instructions are restartable by design), so one exit stays bounded.
// Not checked: segment limits and types, alignment checks, I/O permission (the CPU checked
// CPL/IOPL and the TSS bitmap before the exit).
#include "arch/x86/log.h"
#include "arch/x86/string.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/exit.h"
#include "hv/guest_abi.h"
#include "hv/guest_ports.h"
#include "hv/guest_paging.h"
#include "hv/guest_walk.h"
#include "hv/io_bus.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {

constexpr uint16_t kExitPort = 0xF4;
constexpr unsigned kStringBudget = 4096;

// --- hv's own port devices ------------------------------------------------------------------

uint32_t read_empty(void*, Vcpu&, uint16_t, unsigned) { return 0xFFFFFFFFu; }

const IoDevice kConsoleDev = {
    "console", guest_abi::kConsolePort, 1, nullptr, read_empty,
    [](void*, Vcpu& vcpu, uint16_t, unsigned, uint32_t v) {
      // The vCPU's own line buffer (Vcpu::console_put: single writer, this CPU).
      vcpu.console_put(static_cast<uint8_t>(v));
    }};

const IoDevice kResultDev = {
    "result", guest_abi::kResultPort, 1, nullptr, read_empty, [](void*, Vcpu& vcpu, uint16_t, unsigned, uint32_t v) {
      vcpu.vm().report_result(v);
      vcpu.stop(v != 0, "guest reported result %u (%s)", v, v == 0 ? "pass" : "failure");
    }};

const IoDevice kExitDev = {
    "exit", kExitPort, 1, nullptr, read_empty, [](void*, Vcpu& vcpu, uint16_t, unsigned, uint32_t v) {
      Vm& vm = vcpu.vm();
      vm.uart.flush();
      // As HV_CALL_EXIT: only vCPU 0's status (or a failure of any vCPU) is the VM's result.
      if (vcpu.index() == 0 || v != 0) vm.report_result(v);
      vcpu.stop(v != 0, "guest exited through port 0xf4 with status %u", v);
    }};

IoDevice uart_device(Uart& u) {
  IoDevice d{};
  d.name = "uart";
  d.base = Uart::kBase;
  d.count = 8;
  d.ctx = &u;
  // One byte per access: a wider access uses its low byte, as an 8-bit ISA device sees it.
  d.read = [](void* ctx, Vcpu& vcpu, uint16_t port, unsigned) -> uint32_t {
    chipset_poll(vcpu.vm(), x86::rdtsc());  // console input and due interrupts (hv/devices/chipset.h)
    return static_cast<Uart*>(ctx)->read(port);
  };
  d.write = [](void* ctx, Vcpu&, uint16_t port, unsigned, uint32_t v) {
    static_cast<Uart*>(ctx)->write(port, static_cast<uint8_t>(v));
  };
  return d;
}

// --- string I/O -----------------------------------------------------------------------------

enum class MemResult { ok, fault_injected, stopped };

// The guest's linear memory for one string instruction: translations cached per page.
class LinearMem {
 public:
  LinearMem(Vcpu& vcpu, bool user) : vcpu_(vcpu), vm_(vcpu.vm()), paging_(current_guest_paging(vcpu.vm())), user_(user) {}

  // `n` (1-4) bytes at `lin`, lowest first. Every byte is translated before any is written,
  // so a fault leaves memory untouched.
  MemResult write(uint64_t lin, uint32_t v, unsigned n) {
    uint64_t gpa[4];
    for (unsigned i = 0; i < n; i++)
      if (MemResult r = translate(lin + i, true, &gpa[i]); r != MemResult::ok) return r;
    for (unsigned i = 0; i < n; i++) {
      const uint64_t hpa = vm_.mmu().translate(gpa[i], 1, true);
      if (hpa) {
        *reinterpret_cast<volatile uint8_t*>(hpa) = static_cast<uint8_t>(v >> (8 * i));
        vm_.mmu().note_write(gpa[i], 1);  // hv wrote for the guest: dirty logging sees it
      } else if (vm_.mmu().translate(gpa[i], 1, false)) {
        vcpu_.counters().readonly_writes++;  // a read-only slot: dropped, like a write to ROM
      } else {
        vcpu_.counters().unbacked_writes++;  // no slot: dropped
      }
    }
    return MemResult::ok;
  }

  // Translates `n` bytes at `lin` (a fault is injected as for the access itself).
  MemResult check(uint64_t lin, unsigned n, bool write) {
    for (unsigned i = 0; i < n; i++) {
      uint64_t gpa;
      if (MemResult r = translate(lin + i, write, &gpa); r != MemResult::ok) return r;
    }
    return MemResult::ok;
  }

  MemResult read(uint64_t lin, unsigned n, uint32_t* v) {
    uint32_t out = 0;
    for (unsigned i = 0; i < n; i++) {
      uint64_t gpa;
      if (MemResult r = translate(lin + i, false, &gpa); r != MemResult::ok) return r;
      const uint64_t hpa = vm_.mmu().translate(gpa, 1, false);
      uint8_t b = 0xFF;  // no slot: all ones
      if (hpa) b = *reinterpret_cast<const volatile uint8_t*>(hpa);
      else vcpu_.counters().unbacked_reads++;
      out |= uint32_t{b} << (8 * i);
    }
    *v = out;
    return MemResult::ok;
  }

 private:
  MemResult translate(uint64_t lin, bool write, uint64_t* gpa) {
    const uint64_t page = lin & ~0xFFFull;
    if (page != cached_page_) {
      const WalkResult w = guest_walk(paging_, lin, &read_guest_paging_entry, &vm_);
      if (w.status == WalkStatus::not_present || w.status == WalkStatus::reserved_bit) {
        // #PF error code: P (bit 0) for a reserved-bit fault (the entry was present), W/R (1),
        // U/S (2), RSVD (3).
        uint32_t ec = (write ? 2u : 0u) | (user_ ? 4u : 0u);
        if (w.status == WalkStatus::reserved_bit) ec |= 1u | 8u;
        vcpu_.inject_page_fault(lin, ec);
        // arch/x86/vmx/entry.asm loads CR2 from GuestRegs::cr2 right before the VM entry,
        // after Vcpu::run() restored Vcpu::cr2: set both, or the #PF arrives with a stale CR2
        // (reported to the vCPU's owner; harmless once the two are one).
        vcpu_.regs.cr2 = lin;
        return MemResult::fault_injected;
      }
      if (w.status != WalkStatus::ok) {
        vcpu_.stop(true, "string I/O: cannot translate linear 0x%lx: guest page walk: %s", lin, to_string(w.status));
        return MemResult::stopped;
      }
      cached_page_ = page;
      cached_gpa_ = w.gpa & ~0xFFFull;
    }
    *gpa = cached_gpa_ | (lin & 0xFFF);
    return MemResult::ok;
  }

  Vcpu& vcpu_;
  Vm& vm_;
  const GuestPaging paging_;
  const bool user_;
  uint64_t cached_page_ = ~0ull;
  uint64_t cached_gpa_ = 0;
};

// Updates a register used at `asz` bits the way the instruction does: 16-bit updates keep the
// upper bits, 32-bit ones zero-extend (a 32-bit register write), 64-bit ones take all.
uint64_t step_reg(uint64_t reg, int64_t delta, unsigned asz) {
  if (asz == 16) return (reg & ~0xFFFFull) | ((reg + static_cast<uint64_t>(delta)) & 0xFFFF);
  if (asz == 32) return (reg + static_cast<uint64_t>(delta)) & 0xFFFFFFFFull;
  return reg + static_cast<uint64_t>(delta);
}

void handle_string_io(Vcpu& vcpu, uint64_t q, const IoDevice* dev) {
  const unsigned size = io_qual::size(q);
  const bool in = io_qual::is_in(q), rep = io_qual::is_rep(q);
  const uint16_t port = io_qual::port(q);
  const uint64_t cs_ar = vmread(field::kGuestCsAr);
  const bool long_mode = ((vmread(field::kGuestEfer) >> 10) & 1) && ((cs_ar >> 13) & 1);
  unsigned asz = long_mode ? 64 : ((cs_ar >> 14) & 1) ? 32 : 16;
  unsigned seg = 3;  // DS
  if ((vcpu.caps().basic >> 54) & 1) {
    // Instruction information for INS/OUTS (SDM "VM-Exit Instruction-Information Field"):
    // bits 9:7 address size (0 16-bit, 1 32-bit, 2 64-bit), bits 17:15 segment (OUTS).
    const uint64_t info = vmread(field::kExitInstructionInfo);
    const unsigned a = (info >> 7) & 7;
    asz = a == 0 ? 16 : a == 1 ? 32 : 64;
    seg = (info >> 15) & 7;
  }
  if (in) seg = 0;  // INS writes ES:rDI, no override possible
  if (seg > 5) {
    vcpu.stop(true, "string I/O on port 0x%x: bad segment %u in the exit information", port, seg);
    return;
  }
  const uint64_t mask = asz == 64 ? ~0ull : asz == 32 ? 0xFFFFFFFFull : 0xFFFFull;
  // In 64-bit mode only FS and GS have a base (segments 4 and 5).
  const uint64_t base = (long_mode && seg < 4) ? 0 : vmread(field::kGuestEsBase + 2 * seg);
  const bool user = ((vmread(field::kGuestSsAr) >> 5) & 3) == 3;
  const bool down = (vmread(field::kGuestRflags) >> 10) & 1;  // DF
  const int64_t delta = down ? -static_cast<int64_t>(size) : static_cast<int64_t>(size);
  uint64_t& index = in ? vcpu.regs.rdi : vcpu.regs.rsi;
  uint64_t left = rep ? (vcpu.regs.rcx & mask) : 1;
  LinearMem mem(vcpu, user);
  for (unsigned done = 0; left; done++) {
    if (done == kStringBudget) return;  // RIP stays: the guest executes the rest
    uint64_t lin = base + (index & mask);
    if (!long_mode) lin &= 0xFFFFFFFFull;
    MemResult r;
    if (in) {
      // The device is read only after the memory side translated: a fault loses no data.
      r = mem.check(lin, size, true);
      if (r == MemResult::ok) {
        const uint32_t v = dev ? dev->read(dev->ctx, vcpu, port, size) : 0xFFFFFFFFu;
        r = mem.write(lin, v, size);
      }
    } else {
      uint32_t v = 0;
      r = mem.read(lin, size, &v);
      if (r == MemResult::ok && dev) dev->write(dev->ctx, vcpu, port, size, size == 4 ? v : v & ((1u << (8 * size)) - 1));
    }
    if (r != MemResult::ok) return;  // #PF injected (RIP on the instruction) or stopped
    index = step_reg(index, delta, asz);
    left--;
    if (rep) vcpu.regs.rcx = step_reg(vcpu.regs.rcx, -1, asz);
    if (vcpu.stopped()) return;
  }
  vcpu.skip_instruction();
}

}  // namespace

const char* claim_guest_abi_ports(Vm& vm) {
  if (const char* err = vm.io.claim(kConsoleDev)) return err;
  return vm.io.claim(kResultDev);
}

const char* claim_multiboot_ports(Vm& vm) {
  if (const char* err = vm.io.claim(uart_device(vm.uart))) return err;
  if (const char* err = vm.io.claim(kExitDev)) return err;
  if (const char* err = vm.io.claim(vm.fw_cfg.device())) return err;
  if (vm.fw_cfg.dma_enabled()) return vm.io.claim(vm.fw_cfg.dma_device());
  return nullptr;
}

// fw_cfg's DMA reaches guest-physical memory only through the VM's RAM slots, a page at a time
// (a range may span slots; any byte outside them fails the whole request).
bool guest_copy(Vm& vm, uint64_t gpa, uint8_t* host, uint64_t len, bool to_guest) {
  while (len) {
    const uint64_t n = len < 4096 - (gpa & 0xFFF) ? len : 4096 - (gpa & 0xFFF);
    const uint64_t hpa = vm.mmu().translate(gpa, n, to_guest);
    if (!hpa) return false;
    if (to_guest) memcpy(reinterpret_cast<void*>(hpa), host, n);
    else memcpy(host, reinterpret_cast<const void*>(hpa), n);
    gpa += n;
    host += n;
    len -= n;
  }
  return true;
}

FwCfg::GuestMemory fw_cfg_guest_memory(Vm& vm) {
  FwCfg::GuestMemory m;
  m.ctx = &vm;
  m.read = [](void* ctx, uint64_t gpa, void* dst, uint64_t len) {
    return guest_copy(*static_cast<Vm*>(ctx), gpa, static_cast<uint8_t*>(dst), len, false);
  };
  m.write = [](void* ctx, uint64_t gpa, const void* src, uint64_t len) {
    return guest_copy(*static_cast<Vm*>(ctx), gpa, const_cast<uint8_t*>(static_cast<const uint8_t*>(src)), len, true);
  };
  return m;
}

void handle_io(Vcpu& vcpu, const ExitInfo& e) {
  const uint64_t q = e.qualification;
  const uint16_t port = io_qual::port(q);
  const IoDevice* dev = vcpu.vm().io.find(port);
  if (io_qual::is_string(q)) {
    handle_string_io(vcpu, q, dev);
    return;
  }
  const unsigned size = io_qual::size(q);
  const uint64_t mask = size == 4 ? 0xFFFFFFFFull : (1ull << (8 * size)) - 1;
  vcpu.skip_instruction();
  if (io_qual::is_in(q)) {
    const uint64_t v = (dev ? dev->read(dev->ctx, vcpu, port, size) : 0xFFFFFFFFu) & mask;
    // IN writes AL/AX/EAX; a 32-bit IN zero-extends into RAX like any 32-bit register write.
    vcpu.regs.rax = size == 4 ? v : (vcpu.regs.rax & ~mask) | v;
  } else if (dev) {
    dev->write(dev->ctx, vcpu, port, size, static_cast<uint32_t>(vcpu.regs.rax & mask));
  }
  // A port no device claims (probes of absent hardware) or a quiet device's (port 0x80's
  // delays, PCI configuration without devices) changes nothing but RAX, the device's own
  // state and RIP: the next entry may be a fast one (hv/fast_entry.h).
  if (!dev || dev->quiet) vcpu.quiet_exit();
}

}  // namespace hv
