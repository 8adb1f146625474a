// Which loader a guest image needs, from its content (docs/guest-platform.md section 6,
// /init's contract in linux.md): a multiboot v1 header in the first 8 KiB (checked first:
// hv's own test guests), "HdrS" at 0x202 (a bzImage: Linux's boot protocol, hv/linux_boot.h),
// an ELF64 file (PVH, hv/pvh_boot.h: it must carry the PHYS32 entry note, which the loader
// checks). Pure code, host-tested (tests/unit/linux_boot_test.cpp).
#pragma once

#include <stdint.h>

namespace hv {

enum class GuestImageKind : uint8_t { kUnknown, kMultiboot, kLinuxBzImage, kPvhElf };

GuestImageKind guest_image_kind(const uint8_t* image, uint64_t size);
const char* guest_image_kind_name(GuestImageKind k);

}  // namespace hv
