// The legacy 8259 PICs: hv routes nothing through them.
#pragma once

namespace x86::pic {

// Remaps both PICs to vectors 0x20-0x2F (so a stray legacy IRQ can't look like a CPU
// exception) and masks every line. Call before interrupts are enabled.
void disable();

}  // namespace x86::pic
