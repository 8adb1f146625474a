// VMCS dump (see dump.h). Fields are read one by one with VMREAD; a field that can't be read
// (unsupported on this CPU) is shown as "--" rather than stopping the dump.
#include "arch/x86/vmx/dump.h"

#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/exit_reason.h"
#include "arch/x86/vmx/instructions.h"

namespace x86::vmx {
namespace {

struct Item {
  const char* name;
  uint32_t field;
};

// Prints `items` three per line: "name=value" with a width chosen by the field's encoding.
void print_group(const char* title, const Item* items, unsigned n) {
  log::error("  %s:", title);
  char line[200];
  size_t len = 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t v = 0;
    const bool ok = vmread(items[i].field, v) == Status::kOk;
    const Width w = width_of(items[i].field);
    char val[24];
    if (!ok)
      format(val, sizeof val, "--");
    else if (w == Width::k16)
      format(val, sizeof val, "%04lx", v);
    else if (w == Width::k32)
      format(val, sizeof val, "%08lx", v);
    else
      format(val, sizeof val, "%016lx", v);
    const bool row_end = i % 3 == 2 || i + 1 == n;
    len += format(line + len, sizeof line - len, row_end ? "  %-14s %s" : "  %-14s %-18s", items[i].name, val);
    if (row_end) {
      log::error("  %s", line);
      len = 0;
    }
  }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
using namespace field;

const Item kControls[] = {
    {"pin", kPinBasedControls},     {"proc", kProcBasedControls},    {"proc2", kSecondaryControls},
    {"exit", kExitControls},        {"entry", kEntryControls},       {"exc_bitmap", kExceptionBitmap},
    {"cr0_mask", kCr0GuestHostMask}, {"cr0_shadow", kCr0ReadShadow}, {"cr4_mask", kCr4GuestHostMask},
    {"cr4_shadow", kCr4ReadShadow}, {"eptp", kEptPointer},           {"vpid", kVpid},
    {"entry_intr", kEntryInterruptionInfo}, {"entry_errcode", kEntryExceptionErrorCode},
    {"cr3_targets", kCr3TargetCount}, {"exit_msr_st", kExitMsrStoreCount}, {"exit_msr_ld", kExitMsrLoadCount},
    {"entry_msr_ld", kEntryMsrLoadCount}, {"link_ptr", kVmcsLinkPointer},
};
const Item kGuest[] = {
    {"rip", kGuestRip},           {"rsp", kGuestRsp},             {"rflags", kGuestRflags},
    {"cr0", kGuestCr0},           {"cr3", kGuestCr3},             {"cr4", kGuestCr4},
    {"efer", kGuestEfer},         {"dr7", kGuestDr7},             {"debugctl", kGuestDebugCtl},
    {"cs", kGuestCsSel},          {"cs_base", kGuestCsBase},      {"cs_limit", kGuestCsLimit},
    {"cs_ar", kGuestCsAr},        {"ss", kGuestSsSel},            {"ss_ar", kGuestSsAr},
    {"ds", kGuestDsSel},          {"ds_ar", kGuestDsAr},          {"es_ar", kGuestEsAr},
    {"fs_ar", kGuestFsAr},        {"gs_ar", kGuestGsAr},          {"ldtr_ar", kGuestLdtrAr},
    {"tr", kGuestTrSel},          {"tr_base", kGuestTrBase},      {"tr_limit", kGuestTrLimit},
    {"tr_ar", kGuestTrAr},        {"gdtr_base", kGuestGdtrBase},  {"gdtr_limit", kGuestGdtrLimit},
    {"idtr_base", kGuestIdtrBase}, {"idtr_limit", kGuestIdtrLimit}, {"activity", kGuestActivityState},
    {"interrupt", kGuestInterruptibility}, {"pend_dbg", kGuestPendingDebug}, {"pat", kGuestPat},
};
const Item kHost[] = {
    {"rip", kHostRip},         {"rsp", kHostRsp},           {"cr0", kHostCr0},
    {"cr3", kHostCr3},         {"cr4", kHostCr4},           {"efer", kHostEfer},
    {"cs", kHostCsSel},        {"ss", kHostSsSel},          {"ds", kHostDsSel},
    {"es", kHostEsSel},        {"fs", kHostFsSel},          {"gs", kHostGsSel},
    {"tr", kHostTrSel},        {"fs_base", kHostFsBase},    {"gs_base", kHostGsBase},
    {"tr_base", kHostTrBase},  {"gdtr_base", kHostGdtrBase}, {"idtr_base", kHostIdtrBase},
};
const Item kExitInfo[] = {
    {"reason", kExitReason},          {"qualification", kExitQualification}, {"gpa", kGuestPhysicalAddress},
    {"guest_linear", kGuestLinearAddress}, {"intr_info", kExitInterruptionInfo},
    {"intr_errcode", kExitInterruptionErrorCode}, {"idt_vect", kIdtVectoringInfo},
    {"idt_errcode", kIdtVectoringErrorCode},   {"instr_len", kExitInstructionLength},
    {"instr_info", kExitInstructionInfo},
};

}  // namespace

void dump_vmcs(const char* why) {
  const uint32_t err = instruction_error();
  const uint64_t reason = vmread(kExitReason);
  log::error("vmcs dump: %s", why);
  log::error("  vm-instruction error %u (%s)", err, instruction_error_name(err));
  log::error("  exit reason 0x%lx (%s%s), qualification 0x%lx", reason, exit_reason_name(reason & 0xFFFF),
             (reason & kExitReasonEntryFailure) ? ", VM-entry failure" : "", vmread(kExitQualification));
  print_group("controls", kControls, N(kControls));
  print_group("guest state", kGuest, N(kGuest));
  print_group("host state", kHost, N(kHost));
  print_group("exit information", kExitInfo, N(kExitInfo));
}

}  // namespace x86::vmx
