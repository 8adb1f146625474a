// The MMIO bus (see mmio_bus.h).
#include "hv/mmio_bus.h"

namespace hv {

bool MmioBus::add(uint64_t gpa, uint64_t len, MmioDevice* dev) {
  if (count_ == kMaxRegions || len == 0 || gpa + len < gpa) return false;
  for (unsigned i = 0; i < count_; i++) {
    const Region& r = regions_[i];
    if (gpa < r.gpa + r.len && r.gpa < gpa + len) return false;
  }
  regions_[count_++] = Region{gpa, len, dev};
  return true;
}

int MmioBus::find(uint64_t gpa, unsigned size) const {
  for (unsigned i = 0; i < count_; i++) {
    const Region& r = regions_[i];
    if (gpa >= r.gpa && gpa - r.gpa < r.len && size <= r.len - (gpa - r.gpa)) return static_cast<int>(i);
  }
  return -1;
}

uint64_t MmioBus::read(Vcpu& vcpu, int region, uint64_t gpa, unsigned size) {
  lock.assert_held();
  const Region& r = regions_[region];
  return r.dev->mmio_read(vcpu, gpa - r.gpa, size);
}

void MmioBus::write(Vcpu& vcpu, int region, uint64_t gpa, unsigned size, uint64_t value) {
  lock.assert_held();
  const Region& r = regions_[region];
  r.dev->mmio_write(vcpu, gpa - r.gpa, size, value);
}

}  // namespace hv
