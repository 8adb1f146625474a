// The hypercall handler (see hypercall.h and docs/hypercalls.md).
//
// Everything here treats the guest's registers as hostile input: each argument is range-checked
// before it is used, a guest buffer is reached only through the VM's published memslots
// (GuestMmu::translate), and every path ends with a status in RAX and the VMCALL skipped -
// nothing a guest passes can stop hv or another VM.
#include "hv/hypercall.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/spinlock.h"
#include "arch/x86/string.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"
#include "hv/dirty_log.h"
#include "hv/guest_abi.h"
#include "hv/mmu_platform.h"
#include "hv/trace.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

using namespace x86::vmx;

namespace {

constexpr uint64_t k4K = 4096;
// The guest compiles hv_abi.h too, possibly as 32-bit code: the layout must not depend on it.
static_assert(sizeof(hv_stats) == 8 * HV_STAT_COUNT);
static_assert(static_cast<uint64_t>(int64_t{HV_EUNKNOWN}) == guest_abi::kHypercallUnknown);
constexpr uint32_t kSignature = 0x44547668;  // "hvTD" in little-endian byte order

// The VM's slot lock (Vm::slot_lock, which guards Vm::guest_slots) is held across one memslot
// hypercall: it makes "count the guest's slots, then create one" atomic between this VM's
// vCPUs. The MMU serializes the update itself. While waiting, answer TLB-flush requests
// (platform cpu_relax), not just PAUSE: the holder's update may be waiting for this very CPU's
// flush. Taken as `x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests)`.
void answer_cpu_requests() { platform().cpu_relax(); }

int64_t from_mmu(mmu::MemslotError e) {
  using E = mmu::MemslotError;
  switch (e) {
    case E::ok: return HV_OK;
    case E::overlap: return HV_EOVERLAP;
    case E::misaligned: return HV_EALIGN;
    case E::too_large:
    case E::gfn_wraps: return HV_ETOOLARGE;
    case E::too_many: return HV_ETOOMANY;
    case E::no_such_slot: return HV_ENOSLOT;
    case E::bad_address_space: return HV_EPERM;
    case E::duplicate_id: return HV_EEXIST;
    case E::out_of_memory: return HV_ENOMEM;
    case E::zero_size:
    case E::bad_flags:
    case E::bad_level: return HV_EINVAL;
    case E::read_only_slot: return HV_EPERM;
    case E::already_logging: return HV_EBUSY;
    case E::not_logging: return HV_EINVAL;
    case E::buffer_too_small: return HV_ESMALL;
    case E::unsupported: return HV_ENOTSUP;
  }
  return HV_EINVAL;
}

int64_t check_flags(uint64_t flags) {
  if (flags & ~uint64_t{HV_SLOT_READONLY | HV_SLOT_DIRTY_LOG}) return HV_EINVAL;
  // Dirty logging needs writes to log (hv/dirty_log.h).
  if ((flags & HV_SLOT_DIRTY_LOG) && (flags & HV_SLOT_READONLY)) return HV_EPERM;
  return HV_OK;
}

// A guest slot id the guest may name: 1..63; slot 0 (the boot RAM) belongs to hv.
int64_t check_guest_id(uint64_t id) {
  if (id == 0) return HV_EPERM;
  if (id > HV_SLOT_ID_LAST) return HV_EINVAL;
  return HV_OK;
}

bool range_ok(uint64_t start, uint64_t bytes, uint64_t limit) {
  return start + bytes >= start && start + bytes <= limit;
}

int64_t memslot_create(Vm& vm, uint64_t id, uint64_t gpa, uint64_t bytes, uint64_t offset, uint64_t flags) {
  if (id == 0) return HV_EEXIST;  // slot 0 always exists
  if (id > HV_SLOT_ID_LAST) return HV_EINVAL;
  if (const int64_t e = check_flags(flags)) return e;
  if ((gpa | bytes | offset) & (k4K - 1)) return HV_EALIGN;
  if (!bytes) return HV_EINVAL;
  if (!range_ok(gpa, bytes, HV_GPA_LIMIT) || !range_ok(offset, bytes, vm.pool_bytes())) return HV_ETOOLARGE;
  x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
  if (vm.guest_slots & (uint64_t{1} << id)) return HV_EEXIST;
  if (__builtin_popcountll(vm.guest_slots) >= static_cast<int>(HV_MAX_GUEST_SLOTS)) return HV_ETOOMANY;
  mmu::Memslot s;
  s.id = static_cast<uint32_t>(id);
  s.as_id = 0;
  s.base_gfn = gpa / k4K;
  s.npages = bytes / k4K;
  s.backing_hpa = vm.pool_hpa() + offset;  // inside the pool: checked above
  s.max_level = static_cast<uint8_t>(vm.max_level());
  s.flags = (flags & HV_SLOT_READONLY) ? mmu::Memslot::kReadOnly : 0;
  if (flags & HV_SLOT_DIRTY_LOG) s.flags |= mmu::Memslot::kDirtyLog;  // the MMU makes the log
  const int64_t r = from_mmu(vm.mmu().update_memslot(mmu::MemslotOp::create(s)));
  if (r == HV_OK) vm.guest_slots |= uint64_t{1} << id;
  return r;
}

int64_t memslot_delete(Vm& vm, uint64_t id) {
  if (const int64_t e = check_guest_id(id)) return e;
  x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
  if (!(vm.guest_slots & (uint64_t{1} << id))) return HV_ENOSLOT;
  const int64_t r = from_mmu(vm.mmu().update_memslot(mmu::MemslotOp::remove(0, static_cast<uint32_t>(id))));
  if (r == HV_OK) vm.guest_slots &= ~(uint64_t{1} << id);
  return r;
}

int64_t memslot_move(Vm& vm, uint64_t id, uint64_t gpa) {
  if (const int64_t e = check_guest_id(id)) return e;
  if (gpa & (k4K - 1)) return HV_EALIGN;
  x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
  mmu::Memslot cur;
  if (!(vm.guest_slots & (uint64_t{1} << id)) || !vm.mmu().find_slot(static_cast<uint32_t>(id), &cur)) return HV_ENOSLOT;
  if (!range_ok(gpa, cur.npages * k4K, HV_GPA_LIMIT)) return HV_ETOOLARGE;
  return from_mmu(vm.mmu().update_memslot(mmu::MemslotOp::move(0, static_cast<uint32_t>(id), gpa / k4K)));
}

int64_t memslot_flags(Vm& vm, uint64_t id, uint64_t flags) {
  if (const int64_t e = check_guest_id(id)) return e;
  if (const int64_t e = check_flags(flags)) return e;
  if (flags & HV_SLOT_DIRTY_LOG) return HV_EINVAL;  // HV_CALL_DIRTY_LOG_START/STOP switch it
  x86::SpinLockGuard g(vm.slot_lock, answer_cpu_requests);
  mmu::Memslot cur;
  if (!(vm.guest_slots & (uint64_t{1} << id)) || !vm.mmu().find_slot(static_cast<uint32_t>(id), &cur)) return HV_ENOSLOT;
  // A logged slot stays logged (and cannot become read-only: the MMU says so).
  const uint32_t f = ((flags & HV_SLOT_READONLY) ? mmu::Memslot::kReadOnly : 0) | (cur.flags & mmu::Memslot::kDirtyLog);
  return from_mmu(vm.mmu().update_memslot(mmu::MemslotOp::set_flags(0, static_cast<uint32_t>(id), f)));
}

int64_t stats_copy(Vm& vm, uint64_t gpa, uint64_t len, uint64_t* copied) {
  if (!len) return HV_EINVAL;
  hv_stats st;
  snapshot_stats(vm, st);
  const uint64_t n = len < sizeof st ? len : sizeof st;
  const uint64_t hpa = vm.mmu().translate(gpa, n, true);
  if (!hpa) return HV_EFAULT;
  memcpy(reinterpret_cast<void*>(hpa), &st, n);
  vm.mmu().note_write(gpa, n);  // a dirty-logged slot sees hv's write as the guest's
  *copied = n;
  return HV_OK;
}

// Pre-fault (mmu::Mmu::prefault): map [gpa, gpa + bytes) in the calling vCPU's root now, at the
// largest level each part allows. Bounded: at most kPrefaultBudget leaves per call (a VMCALL
// must not hold the CPU for long), so *done may be less than `bytes` and the guest calls again
// from gpa + *done; 0 with HV_OK means "call again" (a fast zap or memslot change raced with us,
// or pages came back after a reclaim). Parts without a slot count as done (they stay MMIO).
constexpr unsigned kPrefaultBudget = 512;
int64_t prefault(Vm& vm, Vcpu& vcpu, uint64_t gpa, uint64_t bytes, uint64_t* done) {
  *done = 0;
  if ((gpa | bytes) & (k4K - 1)) return HV_EALIGN;
  if (!bytes) return HV_EINVAL;
  if (!range_ok(gpa, bytes, HV_GPA_LIMIT)) return HV_ETOOLARGE;
  const mmu::gfn_t start = gpa / k4K, end = start + bytes / k4K;
  const mmu::PrefaultResult r = vm.mmu().prefault(vcpu.index(), start, end, kPrefaultBudget);
  if (r.status == mmu::FaultOutcome::bad_gfn) return HV_ETOOLARGE;  // beyond the guest's MAXPHYADDR
  *done = (r.next - start) * k4K;
  // Out of pages with nothing done: reclaim; if that cannot help either, say so.
  if (r.status == mmu::FaultOutcome::out_of_memory && *done == 0 && !vm.mmu().reclaim(GuestMmu::kReclaimBudget))
    return HV_ENOMEM;
  return HV_OK;
}

// The guest's privilege level: SS.DPL (SDM 25.4.1: "the CPL is SS.DPL" for VM-entry checks).
unsigned guest_cpl() { return (vmread(field::kGuestSsAr) >> 5) & 3; }

// 64-bit mode: IA-32e mode active and CS.L set.
bool guest_64bit() { return ((vmread(field::kGuestEfer) >> 10) & 1) && ((vmread(field::kGuestCsAr) >> 13) & 1); }

void set_result64(x86::vmx::GuestRegs& r, uint64_t v) {
  r.rbx = static_cast<uint32_t>(v);
  r.rcx = v >> 32;
}

}  // namespace

int64_t hypercall_status(mmu::MemslotError e) { return from_mmu(e); }

// Bounded work whatever the guest did before: only counters the MMU and the exit path keep up to
// date are read (MmuStats), never a walk of the roots. A guest can make many roots - one per
// fast zap, invalid ones staying until their teardown - and a walk of them all inside one
// epoch read section, as STAT did before, took seconds per VMCALL under Bochs with ~100 invalid
// roots while this CPU passed no quiescent state, stalling page reclamation machine-wide.
// The one part that grows with the roots is MmuStats::roots_invalid, a walk of the root list
// (not of any table) under the roots lock, outside any epoch section.
void snapshot_stats(Vm& vm, hv_stats& out) {
  for (uint64_t& v : out.value) v = 0;
  const VmTotals s = vm.stats().totals();
  out.value[HV_STAT_EXITS] = s.total_exits();
  out.value[HV_STAT_EXITS_VMCALL] = s.exits[kExitVmcall];
  out.value[HV_STAT_EXITS_IO] = s.exits[kExitIoInstruction];
  out.value[HV_STAT_EXITS_EPT] = s.exits[kExitEptViolation];
  out.value[HV_STAT_EXITS_CPUID] = s.exits[kExitCpuid];
  const mmu::MmuStats m = vm.mmu().stats();
  // Leaves in every root of the VM, valid or invalid and not yet torn down (docs/hypercalls.md).
  out.value[HV_STAT_LEAVES_4K] = m.leaves[1];
  out.value[HV_STAT_LEAVES_2M] = m.leaves[2];
  out.value[HV_STAT_LEAVES_1G] = m.leaves[3];
  out.value[HV_STAT_ZAPPED_LEAVES] = m.zapped_leaves;
  out.value[HV_STAT_ZAP_CALLS] = m.zap_calls;
  out.value[HV_STAT_TLB_FLUSHES] = m.flushes;
  out.value[HV_STAT_ROOTS_LIVE] = m.roots_live;
  out.value[HV_STAT_ROOTS_INVALID] = m.roots_invalid;
  out.value[HV_STAT_PAGES_AWAITING_RECLAIM] = m.pages_awaiting_reclaim;
  out.value[HV_STAT_TABLE_PAGES] = m.tables_live;
  out.value[HV_STAT_UNBACKED_READS] = s.unbacked_reads;
  out.value[HV_STAT_UNBACKED_WRITES] = s.unbacked_writes;
  out.value[HV_STAT_READONLY_WRITES] = s.readonly_writes;
  out.value[HV_STAT_HYPERCALLS] = s.hypercalls;
  out.value[HV_STAT_HYPERCALL_ERRORS] = s.hypercall_errors;
  out.value[HV_STAT_TABLE_PAGES_CHARGED] = m.table_pages_live;
  out.value[HV_STAT_TABLE_PAGES_LIMIT] = m.table_pages_limit;
}

void handle_hypercall(Vcpu& vcpu, const ExitInfo&) {
  Vm& vm = vcpu.vm();
  x86::vmx::GuestRegs& r = vcpu.regs;
  // Outside 64-bit mode only the low halves are the guest's arguments.
  const uint64_t mask = guest_64bit() ? ~uint64_t{0} : 0xFFFFFFFFull;
  const uint64_t nr = r.rax & mask, a0 = r.rbx & mask, a1 = r.rcx & mask, a2 = r.rdx & mask,
                 a3 = r.rsi & mask, a4 = r.rdi & mask;
  vcpu.counters().hypercalls++;
  int64_t st = HV_OK;
  // Calls that only read (and refusals) change nothing but registers and RIP: the next entry
  // may be a fast one (hv/fast_entry.h).
  bool quiet = false;
  if (guest_cpl() != 0) {
    // Only the guest kernel may talk to hv: an application inside the guest must not move
    // its kernel's memory around.
    st = HV_EPERM;
    quiet = true;
  } else {
    switch (nr) {
      case HV_CALL_VERSION:
        r.rbx = HV_ABI_VERSION;
        r.rcx = HV_CALL_MAX;
        r.rdx = kSignature;
        quiet = true;
        break;
      case HV_CALL_MEMSLOT_CREATE: st = memslot_create(vm, a0, a1, a2, a3, a4); break;
      case HV_CALL_MEMSLOT_DELETE: st = memslot_delete(vm, a0); break;
      case HV_CALL_MEMSLOT_MOVE: st = memslot_move(vm, a0, a1); break;
      case HV_CALL_MEMSLOT_FLAGS: st = memslot_flags(vm, a0, a1); break;
      case HV_CALL_INVALIDATE_ROOTS:
        if (a0 > 1) {
          st = HV_EINVAL;
          break;
        }
        vm.mmu().invalidate_all_roots(a0 == 1);
        break;
      case HV_CALL_STAT:
        if (a0 >= HV_STAT_COUNT) {
          st = HV_EINVAL;
          break;
        }
        {
          hv_stats s;
          snapshot_stats(vm, s);
          set_result64(r, s.value[a0]);
        }
        quiet = true;
        break;
      case HV_CALL_STATS_COPY: {
        uint64_t n = 0;
        st = stats_copy(vm, a0, a1, &n);
        if (st == HV_OK) r.rbx = n;
        break;
      }
      case HV_CALL_RESULT:
        vm.report_result(static_cast<uint32_t>(a0));
        x86::log::plain("vm%u: guest reports result %lu (%s), value 0x%lx", vm.id(), a0, a0 ? "failure" : "pass", a1);
        break;
      case HV_CALL_EXIT:
        // vCPU 0's status is the VM's; another vCPU's 0 only ends that vCPU (its part of the
        // test is done), a non-zero one fails and stops the whole VM (Vcpu::stop).
        if (vcpu.index() == 0 || a0 != 0) vm.report_result(static_cast<uint32_t>(a0));
        vcpu.skip_instruction();
        r.rax = HV_OK;
        vcpu.stop(a0 != 0, "guest exited by hypercall with status %lu", a0);
        return;
      case HV_CALL_POOL_INFO:
        r.rbx = vm.pool_bytes();
        r.rcx = vm.ram_bytes();
        quiet = true;
        break;
      case HV_CALL_PREFAULT: {
        uint64_t n = 0;
        st = prefault(vm, vcpu, a0, a1, &n);
        if (st == HV_OK) r.rbx = n;
        break;
      }
      case HV_CALL_VCPU_INFO:
        r.rbx = vcpu.index();
        r.rcx = vm.vcpu_count;
        quiet = true;
        break;
      case HV_CALL_DIRTY_LOG_START:
      case HV_CALL_DIRTY_LOG_STOP:
      case HV_CALL_DIRTY_LOG_HARVEST: {  // hv/dirty_log.cpp
        uint64_t out = 0;
        st = dirty_log_hypercall(vcpu, nr, a0, a1, a2, &out);
        if (st == HV_OK && nr != HV_CALL_DIRTY_LOG_STOP) r.rbx = out;
        break;
      }
      case HV_CALL_DIRTY_RING_REAP: {  // hv/dirty_log.cpp
        uint64_t out = 0;
        st = dirty_ring_hypercall(vcpu, a0, a1, a2, &out);
        if (st == HV_OK) r.rbx = out;
        break;
      }
      default:
        st = HV_EUNKNOWN;
        quiet = true;
        break;
    }
  }
  if (st != HV_OK) vcpu.counters().hypercall_errors++;
  if (trace::on(trace::kCatHcall))
    trace::record(trace::kHcall, vm.id(), static_cast<uint8_t>(vcpu.index()), x86::rdtsc(), nr, static_cast<uint64_t>(st));
  r.rax = static_cast<uint64_t>(st) & mask;
  vcpu.skip_instruction();
  if (quiet) vcpu.quiet_exit();
}

}  // namespace hv
