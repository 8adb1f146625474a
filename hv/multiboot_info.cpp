// The multiboot v1 information block (see multiboot_info.h).
#include "hv/multiboot_info.h"

namespace hv {

namespace {

constexpr uint64_t k4K = 4096;
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

size_t str_len(const char* s) {
  size_t n = 0;
  while (s && s[n]) n++;
  return n;
}

void put(uint8_t* buf, uint64_t off, const void* src, size_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; i++) buf[off + i] = s[i];
}

}  // namespace

const char* mb_plan(const char* cmdline, const MbModuleIn* mods, unsigned count, MbPlan* p) {
  if (count > kMbMaxModules) return "more than 8 guest modules";
  if (str_len(cmdline) >= kMbMaxString) return "the guest's command line is longer than 1023 bytes";
  *p = MbPlan{};
  p->mod_count = count;
  p->info = 0;
  p->mmap = align_up(sizeof(MbInfo), 8);
  p->loader_name = p->mmap + kMbMmapEntries * sizeof(MbMmap);
  p->cmdline = p->loader_name + 4;  // "hv\0" and a pad byte
  p->mods = align_up(p->cmdline + str_len(cmdline) + 1, 8);
  p->mod_strings = p->mods + count * sizeof(MbModule);
  uint64_t at = p->mod_strings;
  for (unsigned i = 0; i < count; i++) {
    const size_t n = str_len(mods[i].string);
    if (n >= kMbMaxString) return "a guest module's string is longer than 1023 bytes";
    at += n + 1;
  }
  p->meta_bytes = at;
  if (at > kMbMaxMetaBytes) return "the multiboot information is too large";
  at = align_up(at, k4K);
  for (unsigned i = 0; i < count; i++) {
    p->mod_contents[i] = at;
    at = align_up(at + mods[i].size, k4K);
  }
  p->total_bytes = at;
  return nullptr;
}

void mb_build(uint8_t* buf, uint64_t base, uint64_t ram_bytes, const char* cmdline, const MbModuleIn* mods,
              const MbPlan& p) {
  for (uint64_t i = 0; i < p.meta_bytes; i++) buf[i] = 0;
  const auto gpa32 = [base](uint64_t off) { return static_cast<uint32_t>(base + off); };
  MbInfo info{};
  info.flags = kMbInfoMem | kMbInfoCmdline | kMbInfoMods | kMbInfoMmap | kMbInfoLoaderName;
  info.mem_lower = static_cast<uint32_t>(kMbLowRamEnd / 1024);
  info.mem_upper = static_cast<uint32_t>((ram_bytes - kMbHighRamStart) / 1024);
  info.cmdline = gpa32(p.cmdline);
  info.mods_count = p.mod_count;
  info.mods_addr = gpa32(p.mods);
  info.mmap_length = kMbMmapEntries * sizeof(MbMmap);
  info.mmap_addr = gpa32(p.mmap);
  info.boot_loader_name = gpa32(p.loader_name);
  put(buf, p.info, &info, sizeof info);
  const MbMmap mmap[kMbMmapEntries] = {
      {20, 0, kMbLowRamEnd, 1},
      {20, kMbLowRamEnd, kMbHighRamStart - kMbLowRamEnd, 2},
      {20, kMbHighRamStart, ram_bytes - kMbHighRamStart, 1},
  };
  put(buf, p.mmap, mmap, sizeof mmap);
  put(buf, p.loader_name, "hv", 3);
  put(buf, p.cmdline, cmdline ? cmdline : "", str_len(cmdline) + 1);
  uint64_t s = p.mod_strings;
  for (unsigned i = 0; i < p.mod_count; i++) {
    const size_t n = str_len(mods[i].string);
    const MbModule m{gpa32(p.mod_contents[i]), gpa32(p.mod_contents[i] + mods[i].size), gpa32(s), 0};
    put(buf, p.mods + i * sizeof(MbModule), &m, sizeof m);
    put(buf, s, mods[i].string ? mods[i].string : "", n + 1);
    s += n + 1;
  }
}

uint64_t mb_find_free(const GpaRange* busy, unsigned count, uint64_t bytes, uint64_t ram_bytes) {
  // The candidates: the first page (0 itself stays busy by the caller's list if it wants), and
  // the end of every busy range. The lowest candidate that fits wins.
  uint64_t best = UINT64_MAX;
  for (unsigned c = 0; c <= count; c++) {
    const uint64_t at = align_up(c == count ? 0 : busy[c].end, k4K);
    if (at >= best || at > ram_bytes || bytes > ram_bytes - at) continue;
    bool clear = true;
    for (unsigned i = 0; i < count && clear; i++)
      if (at < busy[i].end && busy[i].start < at + bytes) clear = false;
    if (clear) best = at;
  }
  return best;
}

}  // namespace hv
