// The live counter line of a VM (see vm_stat.h).
#include "hv/vm_stat.h"

#include "arch/x86/format.h"
#include "arch/x86/log.h"
#include "arch/x86/vmx/exit_reason.h"
#include "hv/cmdline.h"
#include "hv/vm.h"

namespace hv {

uint64_t stat_period_ms() { return cmdline::get_number("hv.stat-ms", 0); }

void print_vm_stat(Vm& vm, uint64_t elapsed_ms) {
  const VmTotals st = vm.stats().totals();
  char line[768];
  size_t len = 0;
  auto add = [&](const char* key, uint64_t v) {
    if (len < sizeof line) len += x86::format(line + len, sizeof line - len, " %s=%lu", key, v);
  };
  add("exits", st.total_exits());
  for (unsigned r = 0; r < x86::vmx::kExitReasonCount; r++) {
    const uint64_t n = st.exits[r];
    if (!n) continue;
    // The reason's name with dashes for spaces: one token per key.
    char key[48];
    const char* name = x86::vmx::exit_reason_name(r);
    size_t k = 0;
    for (; name[k] && k + 1 < sizeof key; k++) key[k] = name[k] == ' ' ? '-' : name[k];
    key[k] = 0;
    add(key, n);
  }
  const mmu::MmuStats m = vm.mmu().stats();
  using F = mmu::FaultOutcome;
  add("faults-fixed", m.faults[static_cast<int>(F::fixed)]);
  add("faults-spurious", m.faults[static_cast<int>(F::spurious)]);
  add("faults-retry", m.faults[static_cast<int>(F::retry)]);
  add("faults-unbacked", m.faults[static_cast<int>(F::unbacked)]);
  add("faults-oom", m.faults[static_cast<int>(F::out_of_memory)]);
  add("leaves-4k", m.leaves[1]);
  add("leaves-2m", m.leaves[2]);
  add("leaves-1g", m.leaves[3]);
  add("tables", m.tables_live);
  add("zaps", m.zap_calls);
  add("flushes", m.flushes);
  add("roots-invalid", m.roots_invalid);
  add("hypercalls", st.hypercalls);
  if (len >= sizeof line) len = sizeof line - 1;
  line[len] = 0;
  // plain: the same "hv: vmK: stat:" prefix whichever CPU prints it (info adds "cpuN: " off the BSP).
  x86::log::plain("vm%u: stat: t=%lu%s", vm.id(), elapsed_ms, line);
}

}  // namespace hv
