// The port-I/O bus of a VM (see io_bus.h). Pure code: the host unit tests compile it.
#include "hv/io_bus.h"

namespace hv {

const char* IoBus::claim(const IoDevice& dev) {
  if (!dev.count || uint32_t{dev.base} + dev.count > 0x10000u) return "empty or wrapping port range";
  if (!dev.read || !dev.write) return "a port device needs both callbacks";
  for (unsigned i = 0; i < count_; i++) {
    const IoDevice& d = devs_[i];
    if (dev.base < d.base + d.count && d.base < dev.base + dev.count) return "port range overlaps another device";
  }
  if (count_ == kMaxRanges) return "too many port ranges on the VM's I/O bus";
  devs_[count_++] = dev;
  for (uint32_t p = dev.base; p < uint32_t{dev.base} + dev.count; p++) owner_[p] = static_cast<uint8_t>(count_);
  return nullptr;
}

void IoBus::clear() {
  for (unsigned i = 0; i < count_; i++)
    for (uint32_t p = devs_[i].base; p < uint32_t{devs_[i].base} + devs_[i].count; p++) owner_[p] = 0;
  count_ = 0;
}

}  // namespace hv
