// INVEPT / INVVPID type selection (see invalidate.h).
#include "arch/x86/vmx/invalidate.h"

namespace x86::vmx {

Status invept_context(const Capabilities& caps, uint64_t eptp) {
  if (!caps.invept_single) return invept_global();
  const InveptDescriptor d{eptp, 0};
  return invept_raw(kInveptSingleContext, d);
}

Status invept_global() {
  const InveptDescriptor d{0, 0};
  return invept_raw(kInveptGlobal, d);
}

Status invvpid_context(const Capabilities& caps, uint16_t vpid) {
  const InvvpidDescriptor d{vpid, 0};
  // VPID 0 belongs to the host: single-context INVVPID rejects it (VMfailValid 28).
  if (!caps.invvpid_single || vpid == 0) return invvpid_raw(kInvvpidAllContext, d);
  return invvpid_raw(kInvvpidSingleContext, d);
}

}  // namespace x86::vmx
