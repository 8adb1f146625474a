// 8259A initialisation sequence (ICW1-ICW4) to move the PICs off the exception vectors,
// followed by masking all their inputs (see pic.h).
#include "arch/x86/pic.h"

#include "arch/x86/cpu.h"

namespace x86::pic {

void disable() {
  constexpr uint16_t kMasterCmd = 0x20, kMasterData = 0x21, kSlaveCmd = 0xA0, kSlaveData = 0xA1;
  x86::outb(kMasterCmd, 0x11);  // ICW1: edge, cascade, ICW4 follows
  x86::outb(kSlaveCmd, 0x11);
  x86::outb(kMasterData, 0x20);  // ICW2: vector base
  x86::outb(kSlaveData, 0x28);
  x86::outb(kMasterData, 0x04);  // ICW3: slave on IRQ2
  x86::outb(kSlaveData, 0x02);
  x86::outb(kMasterData, 0x01);  // ICW4: 8086 mode
  x86::outb(kSlaveData, 0x01);
  x86::outb(kMasterData, 0xFF);  // mask everything
  x86::outb(kSlaveData, 0xFF);
}

}  // namespace x86::pic
