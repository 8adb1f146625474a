// A readable dump of the current VMCS: controls, guest state, host state, exit information
// and the VM-instruction error, printed at error level (it is only used when something went
// wrong: a failed VM entry, an unexpected exit).
#pragma once

namespace x86::vmx {

// `why` heads the dump ("VM entry failed", "unhandled exit").
void dump_vmcs(const char* why);

}  // namespace x86::vmx
