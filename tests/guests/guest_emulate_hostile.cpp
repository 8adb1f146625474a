// Refusals of hv's instruction emulator (docs/guest-platform.md section 5), each a clean stop
// of the VM with a report, never a crash of hv. Two images from this source:
//   emulate-hostile: an instruction the emulator does not know (SHL by 1, D1 /4) on the scratch
//     MMIO device: hv stops the VM with "cannot emulate d1 25 00 00 b0 fe at rip ...: unknown
//     opcode";
//   emulate-idt (EMULATE_IDT): an IDT in unbacked guest-physical memory and an exception: the
//     CPU's read of the gate is an EPT violation during event delivery, which is not the
//     instruction at RIP; hv stops the VM with "event delivery (vector 6) accessed unbacked
//     guest-physical ...".
// Both end in FAIL under hv (the boot scenarios expect that and the report); bare they SKIP.
#include "tests/guests/lib/guest.h"

#ifdef EMULATE_IDT
const char guest_name[] = "emulate-idt";
#else
const char guest_name[] = "emulate-hostile";
#endif

void guest_test() {
  require_hv();
#ifdef EMULATE_IDT
  struct __attribute__((packed)) {
    uint16_t limit;
    uint32_t base;
  } idtr = {0x7FF, 0x7F000000};  // unbacked: no slot there
  gprintf("emulate-idt: IDT at unbacked 0x7f000000, raising #UD\n");
  asm volatile("lidt %0; ud2" ::"m"(idtr));
#else
  gprintf("emulate-hostile: shl dword [0x%x],1 on the scratch device\n", HV_SCRATCH_MMIO_GPA);
  asm volatile("shll $1, %c0" ::"i"(HV_SCRATCH_MMIO_GPA) : "memory");  // d1 25 00 00 b0 fe
#endif
  gprintf("%s: hv let the guest continue\n", guest_name);
  CHECK(false);
}
