// What hv virtualizes (see vcpu_features.h).
#include "hv/vcpu_features.h"

namespace hv {

VcpuFeatures vcpu_features(const x86::vmx::Capabilities&) {
  VcpuFeatures f;
  return f;
}

}  // namespace hv
