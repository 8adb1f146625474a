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
  return nullptr;
}

const IoDevice* IoBus::find(uint16_t port) const {
  // A linear scan: a VM has a handful of ranges, and the most used ones (the UART) come first.
  for (unsigned i = 0; i < count_; i++) {
    const IoDevice& d = devs_[i];
    if (port >= d.base && port - d.base < d.count) return &d;
  }
  return nullptr;
}

}  // namespace hv
