// The loader choice (see guest_image.h).
#include "hv/guest_image.h"

#include "hv/pvh_boot.h"

namespace hv {

namespace {

uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

GuestImageKind guest_image_kind(const uint8_t* image, uint64_t size) {
  // Multiboot v1: magic 0x1BADB002 at a 4-byte boundary in the first 8 KiB, with magic +
  // flags + checksum = 0 (the loader checks the rest of the header).
  const uint64_t end = size < 8192 ? size : 8192;
  for (uint64_t off = 0; off + 12 <= end; off += 4)
    if (rd32(image + off) == 0x1BADB002 && rd32(image + off) + rd32(image + off + 4) + rd32(image + off + 8) == 0)
      return GuestImageKind::kMultiboot;
  if (size >= 0x206 && rd32(image + 0x202) == 0x53726448) return GuestImageKind::kLinuxBzImage;
  if (pvh_is_elf64(image, size)) return GuestImageKind::kPvhElf;
  return GuestImageKind::kUnknown;
}

const char* guest_image_kind_name(GuestImageKind k) {
  switch (k) {
    case GuestImageKind::kMultiboot: return "multiboot";
    case GuestImageKind::kLinuxBzImage: return "Linux bzImage";
    case GuestImageKind::kPvhElf: return "PVH ELF";
    default: return "unknown";
  }
}

}  // namespace hv
