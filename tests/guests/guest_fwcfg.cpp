// Conformance guest for the boot information (docs/guest-platform.md section 6): the multiboot
// information (command line, modules, memory map, where it lies) and the QEMU fw_cfg interface
// on ports 0x510/0x511. The same image runs under hv and bare under QEMU TCG (-kernel), whose
// fw_cfg is QEMU's own; both must reach the same verdict.
//
// Arguments (the multiboot command line after the kernel's name; hv: the GRUB module's words
// or the words after "--" on hv's command line; QEMU: -append):
//   expect-cpus=N   FW_CFG_NB_CPUS must be N
//   expect-mem=M    FW_CFG_RAM_SIZE must be M MiB
//   expect-mods=N   the multiboot information must list N modules
// Without them the guest checks what it can check by itself: the CPU count against what it
// knows (1 bare, hv's VCPU_INFO under hv), the RAM size against the multiboot memory map, the
// command line in fw_cfg (FW_CFG_CMDLINE_DATA when QEMU or hv sets it, the file
// "opt/hv/cmdline" when present) against the multiboot command line.
//
// Every fw_cfg item is read twice: byte by byte with IN, and whole with REP INSB; both must
// agree. Also checked: reading past an item's end and an unknown key give 0, a select rewinds,
// REP INSB with DF = 1 fills the buffer downwards, and a selector written with OUTSW works.
// Last, with paging on, REP INSB and REP OUTSB that reach a not-present page raise #PF with
// the CPU's CR2 and error code (hv emulates string I/O through the guest's page tables).
// It also checks that nothing the loader wrote (information, memory map, command line,
// modules) overlaps its image.
#include "tests/guests/lib/guest.h"

const char guest_name[] = "fwcfg";

extern "C" char __image_start[], __bss_end[];

namespace {

constexpr uint16_t kSel = 0x510, kData = 0x511;
constexpr uint16_t kSignature = 0x00, kId = 0x01, kRamSize = 0x03, kNbCpus = 0x05, kMaxCpus = 0x0f, kCmdlineSize = 0x14,
                   kCmdlineData = 0x15, kFileDir = 0x19;

void outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }

void select(uint16_t key) { outw(kSel, key); }

// Reads n bytes of the selected item from its start: with IN one byte at a time, or with one
// REP INSB.
void read_in(uint16_t key, uint8_t* buf, uint32_t n) {
  select(key);
  for (uint32_t i = 0; i < n; i++) buf[i] = inb(kData);
}
void read_insb(uint16_t key, uint8_t* buf, uint32_t n) {
  select(key);
  uint8_t* d = buf;
  uint32_t c = n;
  asm volatile("cld; rep insb" : "+D"(d), "+c"(c) : "d"(kData) : "memory");
}

uint8_t g_a[4096], g_b[4096];

// Reads n bytes both ways into g_a (IN) and g_b (REP INSB) and checks they agree.
const uint8_t* read_item(uint16_t key, uint32_t n) {
  if (n > sizeof g_a) n = sizeof g_a;
  memset(g_a, 0xAA, sizeof g_a);
  memset(g_b, 0x55, sizeof g_b);
  read_in(key, g_a, n);
  read_insb(key, g_b, n);
  bool same = true;
  for (uint32_t i = 0; i < n; i++) same = same && g_a[i] == g_b[i];
  CHECK(same);
  if (!same) gprintf("%s: key 0x%x: IN and REP INSB disagree\n", guest_name, key);
  return g_a;
}

uint32_t le(const uint8_t* p, unsigned n) {
  uint32_t v = 0;
  for (unsigned i = 0; i < n; i++) v |= uint32_t{p[i]} << (8 * i);
  return v;
}
uint64_t le64(const uint8_t* p) { return le(p, 4) | (uint64_t{le(p + 4, 4)} << 32); }
uint32_t be(const uint8_t* p, unsigned n) {
  uint32_t v = 0;
  for (unsigned i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

size_t slen(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}
bool sequal(const char* a, const char* b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}
bool starts(const char* s, const char* p) { return sequal(s, p, slen(p)) && slen(s) >= slen(p); }

// The value of "key=N" among the arguments, or -1.
long arg_number(const char* args, const char* key) {
  const size_t k = slen(key);
  for (const char* p = args; *p;) {
    while (*p == ' ') p++;
    const char* w = p;
    while (*p && *p != ' ') p++;
    if (static_cast<size_t>(p - w) > k && sequal(w, key, k) && w[k] == '=') {
      long v = 0;
      for (const char* q = w + k + 1; q < p && *q >= '0' && *q <= '9'; q++) v = v * 10 + (*q - '0');
      return v;
    }
  }
  return -1;
}

bool overlaps_image(uint32_t start, uint32_t end) {
  const uint32_t is = reinterpret_cast<uint32_t>(__image_start), ie = reinterpret_cast<uint32_t>(__bss_end);
  return start < ie && is < end;
}

uint32_t inl(uint16_t port) {
  uint32_t v;
  asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
void outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
uint32_t bswap(uint32_t v) { return __builtin_bswap32(v); }

// One DMA request (big-endian fields), synchronous on both QEMU and hv, polled anyway as the
// specification asks. Returns the control word after completion (0 = done, bit 0 = error).
struct alignas(16) DmaAccess {
  uint32_t control, length;
  uint32_t address_hi, address_lo;
};
DmaAccess g_dma;
uint8_t g_dma_buf[4096];

uint32_t dma(uint32_t control, uint32_t length, void* dst) {
  g_dma.control = bswap(control);
  g_dma.length = bswap(length);
  g_dma.address_hi = 0;
  g_dma.address_lo = bswap(reinterpret_cast<uint32_t>(dst));
  asm volatile("" ::: "memory");
  outl(0x514, 0);
  outl(0x518, bswap(reinterpret_cast<uint32_t>(&g_dma)));
  uint32_t c;
  for (unsigned i = 0; i < 1000000; i++) {
    c = bswap(__atomic_load_n(&g_dma.control, __ATOMIC_ACQUIRE));
    if ((c & ~1u) == 0) break;
  }
  return c;
}

// The DMA interface, when FW_CFG_ID offers it: the signature register, select + read, skip,
// an item read whole compared with the IN read, reading past the end.
void check_dma(const uint8_t* dir_in, uint32_t dir_bytes) {
  const uint32_t sig_hi = inl(0x514), sig_lo = inl(0x518);
  CHECK_EQ(sig_hi, 0x554D4551u);  // "QEMU" in port order
  CHECK_EQ(sig_lo, 0x47464320u);  // " CFG"
  memset(g_dma_buf, 0xEE, 8);
  CHECK_EQ(dma((uint32_t{kSignature} << 16) | 0x08 | 0x02, 6, g_dma_buf), 0);
  const bool sig = g_dma_buf[0] == 'Q' && g_dma_buf[3] == 'U' && g_dma_buf[4] == 0 && g_dma_buf[5] == 0 && g_dma_buf[6] == 0xEE;
  CHECK(sig);
  CHECK_EQ(dma((uint32_t{kSignature} << 16) | 0x08 | 0x04, 2, nullptr), 0);  // select, skip 2
  CHECK_EQ(dma(0x02, 2, g_dma_buf), 0);                                       // then read 2
  const bool skip = g_dma_buf[0] == 'M' && g_dma_buf[1] == 'U';
  CHECK(skip);
  memset(g_dma_buf, 0xEE, sizeof g_dma_buf);
  CHECK_EQ(dma((uint32_t{kFileDir} << 16) | 0x08 | 0x02, dir_bytes, g_dma_buf), 0);
  bool same = true;
  for (uint32_t i = 0; i < dir_bytes; i++) same = same && g_dma_buf[i] == dir_in[i];
  CHECK(same);
  gprintf("%s: DMA: signature register, select+read (zeros past the end), skip, directory as with IN: %s\n", guest_name,
          sig && skip && same && sig_hi == 0x554D4551u ? "ok" : "WRONG");
}

struct Mb {
  const char* cmdline = "";
  const char* args = "";
  uint64_t map_top = 0;  // end of the highest available range
  unsigned mods = 0;
};

Mb check_multiboot() {
  Mb m;
  const uint32_t info = multiboot_info();
  const uint32_t* mbi = reinterpret_cast<const uint32_t*>(info);
  const uint32_t flags = mbi[0];
  gprintf("%s: image [0x%x, 0x%x), multiboot information at 0x%x, flags 0x%x\n", guest_name,
          reinterpret_cast<uint32_t>(__image_start), reinterpret_cast<uint32_t>(__bss_end), info, flags);
  CHECK(!overlaps_image(info, info + 116));
  CHECK(flags & (1u << 2));  // the command line
  if (flags & (1u << 2)) {
    m.cmdline = reinterpret_cast<const char*>(mbi[4]);
    CHECK(!overlaps_image(mbi[4], mbi[4] + static_cast<uint32_t>(slen(m.cmdline)) + 1));
    // By convention the first word is the kernel's name (hv: the GRUB module's name; QEMU:
    // the -kernel path); the arguments follow.
    const char* p = m.cmdline;
    while (*p && *p != ' ') p++;
    while (*p == ' ') p++;
    m.args = p;
    gprintf("%s: arguments \"%s\"\n", guest_name, m.args);
  }
  CHECK(flags & (1u << 6));  // the memory map
  if (flags & (1u << 6)) {
    const uint32_t addr = mbi[12], len = mbi[11];
    CHECK(!overlaps_image(addr, addr + len));
    bool hole_clean = true;
    for (uint32_t off = 0; off < len;) {
      const uint32_t size = peek32(addr + off);
      const uint64_t base = le64(reinterpret_cast<const uint8_t*>(addr + off + 4));
      const uint64_t length = le64(reinterpret_cast<const uint8_t*>(addr + off + 12));
      const uint32_t type = peek32(addr + off + 20);
      if (type == 1) {
        if (base + length > m.map_top && base < (1ull << 32)) m.map_top = base + length;
        // No available range may claim the VGA/ROM hole [0xA0000, 0x100000).
        if (base < 0x100000 && base + length > 0xA0000) hole_clean = false;
      }
      off += size + 4;
    }
    CHECK(hole_clean);
    gprintf("%s: memory map: available RAM ends at 0x%llx, 640K-1M hole %s\n", guest_name, m.map_top,
            hole_clean ? "not claimed: ok" : "CLAIMED");
  }
  if (flags & (1u << 3)) {
    m.mods = mbi[5];
    const uint32_t* list = reinterpret_cast<const uint32_t*>(mbi[6]);
    for (unsigned i = 0; i < m.mods; i++) {
      const uint32_t start = list[4 * i], end = list[4 * i + 1];
      const char* str = reinterpret_cast<const char*>(list[4 * i + 2]);
      // The module's first bytes: all test modules are multiboot images, so it should find
      // the header magic in the first 8 KiB.
      bool magic = false;
      for (uint32_t off = 0; off + 4 <= end - start && off < 8192 && !magic; off += 4) magic = peek32(start + off) == 0x1BADB002;
      gprintf("%s: module %u: [0x%x, 0x%x) %u bytes, string \"%s\", multiboot header %s\n", guest_name, i, start, end, end - start,
              str, magic ? "found" : "not found");
      CHECK(end > start);
      CHECK(!overlaps_image(start, end));
      CHECK((start & 0xFFF) == 0);
      CHECK(end <= m.map_top);
    }
  }
  gprintf("%s: %u module(s)\n", guest_name, m.mods);
  const long want_mods = arg_number(m.args, "expect-mods");
  if (want_mods >= 0) CHECK_EQ(m.mods, want_mods);
  return m;
}

void check_fw_cfg(const Mb& m) {
  // Signature and features.
  const uint8_t* sig = read_item(kSignature, 4);
  const bool qemu = sig[0] == 'Q' && sig[1] == 'E' && sig[2] == 'M' && sig[3] == 'U';
  CHECK(qemu);
  if (!qemu) {
    gprintf("%s: no fw_cfg signature at 0x510 (got %x %x %x %x)\n", guest_name, sig[0], sig[1], sig[2], sig[3]);
    return;
  }
  gprintf("%s: fw_cfg signature \"QEMU\": ok\n", guest_name);
  const uint32_t id = le(read_item(kId, 4), 4);
  CHECK(id & 1);
  // QEMU offers DMA (bit 1), hv does not: printed, not judged.
  gprintf("%s: fw_cfg ID 0x%x: traditional interface %s, DMA %s\n", guest_name, id, (id & 1) ? "ok" : "MISSING",
          (id & 2) ? "offered" : "not offered");

  // Semantics of the data register.
  select(kSignature);
  uint8_t past[8];
  for (unsigned i = 0; i < 8; i++) past[i] = inb(kData);
  CHECK(past[0] == 'Q' && past[3] == 'U' && past[4] == 0 && past[7] == 0);  // past the end: 0
  select(kSignature);
  CHECK_EQ(inb(kData), 'Q');  // a select rewinds
  select(0x3ff0);             // no such item
  uint8_t unknown = 0;
  for (unsigned i = 0; i < 4; i++) unknown |= inb(kData);
  CHECK_EQ(unknown, 0);
  // REP INSB downwards (DF = 1): the first byte read lands at the highest address.
  uint8_t down[4] = {};
  select(kSignature);
  {
    uint8_t* d = down + 3;
    uint32_t c = 4;
    asm volatile("std; rep insb; cld" : "+D"(d), "+c"(c) : "d"(kData) : "memory");
    CHECK(d == down - 1);
    CHECK_EQ(c, 0);
  }
  CHECK(down[3] == 'Q' && down[2] == 'E' && down[1] == 'M' && down[0] == 'U');
  // The selector written with OUTSW.
  {
    const uint16_t key = kSignature;
    const uint16_t* s = &key;
    uint32_t c = 1;
    asm volatile("cld; rep outsw" : "+S"(s), "+c"(c) : "d"(kSel) : "memory");
    CHECK_EQ(inb(kData), 'Q');
  }
  gprintf("%s: data register: past the end 0, unknown key 0, select rewinds, rep insb up and down, outsw selector: ok\n",
          guest_name);

  // RAM size against the memory map.
  const uint64_t ram = le64(read_item(kRamSize, 8));
  gprintf("%s: fw_cfg RAM size 0x%llx (%llu MiB), memory map top 0x%llx\n", guest_name, ram, ram >> 20, m.map_top);
  // The map ends at or a little below the RAM's end (QEMU's firmware keeps its tables at the
  // top and marks them reserved; hv's map ends exactly there).
  CHECK(m.map_top <= ram && ram - m.map_top < (1u << 20));
  const long want_mem = arg_number(m.args, "expect-mem");
  if (want_mem >= 0) CHECK_EQ(ram, static_cast<uint64_t>(want_mem) << 20);

  // CPUs.
  const uint32_t cpus = le(read_item(kNbCpus, 2), 2), max_cpus = le(read_item(kMaxCpus, 2), 2);
  const unsigned known = vcpu_count();  // hv: VCPU_INFO; bare: 1
  gprintf("%s: fw_cfg CPUs %u (max %u), the guest knows of %u\n", guest_name, cpus, max_cpus, known);
  CHECK_EQ(cpus, known);
  CHECK(max_cpus >= cpus);
  const long want_cpus = arg_number(m.args, "expect-cpus");
  if (want_cpus >= 0) CHECK_EQ(cpus, want_cpus);

  // The kernel command line items (QEMU: -append for its Linux loader; hv: the arguments).
  const uint32_t cl_size = le(read_item(kCmdlineSize, 4), 4);
  if (cl_size) {
    const char* cl = reinterpret_cast<const char*>(read_item(kCmdlineData, cl_size));
    const bool same = slen(cl) == slen(m.args) && sequal(cl, m.args, slen(cl));
    CHECK(same);
    gprintf("%s: FW_CFG_CMDLINE %u bytes \"%s\": %s\n", guest_name, cl_size, cl, same ? "matches the arguments" : "DIFFERS");
  } else {
    gprintf("%s: FW_CFG_CMDLINE: empty\n", guest_name);
  }

  // The file directory.
  const uint8_t* dir = read_item(kFileDir, 4);
  const uint32_t files = be(dir, 4);
  CHECK(files > 0 && files < 60);
  dir = read_item(kFileDir, 4 + files * 64);
  gprintf("%s: fw_cfg directory: %u files\n", guest_name, files);
  struct Found {
    uint16_t key = 0;
    uint32_t size = 0;
  } cmdline_file, vcpus_file, ram_file;
  bool sorted = true;
  for (uint32_t i = 0; i < files && i < 60; i++) {
    const uint8_t* e = dir + 4 + i * 64;
    const char* name = reinterpret_cast<const char*>(e + 8);
    const uint32_t size = be(e, 4);
    const uint16_t key = static_cast<uint16_t>(be(e + 4, 2));
    CHECK(key >= 0x20);
    gprintf("%s:   file 0x%x %u bytes %s\n", guest_name, key, size, name);
    if (i > 0) {
      const char* prev = reinterpret_cast<const char*>(e - 64 + 8);
      size_t k = 0;
      while (prev[k] && prev[k] == name[k]) k++;
      if (static_cast<uint8_t>(prev[k]) > static_cast<uint8_t>(name[k])) sorted = false;
    }
    if (starts(name, "opt/hv/cmdline") && !name[14]) cmdline_file = {key, size};
    if (starts(name, "etc/hv/vcpus") && !name[12]) vcpus_file = {key, size};
    if (starts(name, "etc/hv/ram-size") && !name[15]) ram_file = {key, size};
  }
  CHECK(sorted);
  if (id & 2) {
    static uint8_t dir_copy[4096];
    const uint32_t n = 4 + files * 64 < sizeof dir_copy ? 4 + files * 64 : static_cast<uint32_t>(sizeof dir_copy);
    memcpy(dir_copy, dir, n);
    check_dma(dir_copy, n);
  } else {
    gprintf("%s: DMA: not offered\n", guest_name);
  }
  // Copy what the rest needs: read_item reuses the buffers.
  if (cmdline_file.key) {
    const uint32_t n = cmdline_file.size < 4000 ? cmdline_file.size : 4000;
    const char* f = reinterpret_cast<const char*>(read_item(cmdline_file.key, n));
    size_t len = n;
    if (len && f[len - 1] == 0) len--;  // a NUL at the end is allowed, not required
    const bool same = len == slen(m.args) && sequal(f, m.args, len);
    CHECK(same);
    gprintf("%s: opt/hv/cmdline: %s the arguments\n", guest_name, same ? "matches" : "DIFFERS from");
  } else {
    gprintf("%s: opt/hv/cmdline: not present\n", guest_name);
  }
  // hv's own files (QEMU has none of these: printed as found).
  if (vcpus_file.key) CHECK_EQ(le(read_item(vcpus_file.key, 4), 4), cpus);
  if (ram_file.key) CHECK_EQ(le64(read_item(ram_file.key, 8)), ram);
  gprintf("%s: hv's files: etc/hv/vcpus %s, etc/hv/ram-size %s\n", guest_name, vcpus_file.key ? "present, agrees" : "absent",
          ram_file.key ? "present, agrees" : "absent");
}

// String I/O that runs into a page the guest's own page tables leave out: the CPU (or hv
// emulating it) raises #PF with CR2 = the first byte it could not reach and the error code of
// the access (W for INS, which writes memory; 0 for OUTS, which reads it), after the elements
// before it were done. 32-bit paging, identity map of the first 4 MiB but one page.
alignas(4096) uint32_t g_pd[1024];
alignas(4096) uint32_t g_pt[1024];
alignas(4096) uint8_t g_pages[2 * 4096];

uint32_t read_cr2() {
  uint32_t v;
  asm volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}

void check_string_io_faults() {
  uint8_t* const hole = g_pages + 4096;  // not present while paging is on
  const uint32_t hole_addr = reinterpret_cast<uint32_t>(hole);
  for (uint32_t i = 0; i < 1024; i++) g_pt[i] = (i << 12) | 3;
  g_pt[hole_addr >> 12] = 0;
  g_pd[0] = reinterpret_cast<uint32_t>(g_pt) | 3;
  g_pages[4094] = g_pages[4095] = 0;
  uint32_t cr0;
  asm volatile("mov %0, %%cr3" ::"r"(reinterpret_cast<uint32_t>(g_pd)) : "memory");
  asm volatile("mov %%cr0, %0" : "=r"(cr0));
  asm volatile("mov %0, %%cr0" ::"r"(cr0 | (1u << 31)) : "memory");
  select(kSignature);
  const Fault ins = probe([&] {
    uint8_t* d = hole - 2;
    uint32_t c = 4;
    asm volatile("cld; rep insb" : "+D"(d), "+c"(c) : "d"(kData) : "memory");
  });
  const uint32_t cr2_ins = read_cr2();
  const Fault outs = probe([&] {
    const uint8_t* s = hole;
    uint32_t c = 1;
    asm volatile("cld; rep outsb" : "+S"(s), "+c"(c) : "d"(uint16_t{0x80}) : "memory");
  });
  const uint32_t cr2_outs = read_cr2();
  asm volatile("mov %0, %%cr0" ::"r"(cr0) : "memory");
  const bool done_before = g_pages[4094] == 'Q' && g_pages[4095] == 'E';
  gprintf("%s: rep insb into a not-present page: %s vector %u error 0x%x, cr2 %s, first 2 bytes %s\n", guest_name,
          ins.raised ? "raised" : "did not raise", ins.vector, ins.error_code, cr2_ins == hole_addr ? "at the page" : "ELSEWHERE",
          done_before ? "stored" : "MISSING");
  gprintf("%s: rep outsb from a not-present page: %s vector %u error 0x%x, cr2 %s\n", guest_name,
          outs.raised ? "raised" : "did not raise", outs.vector, outs.error_code, cr2_outs == hole_addr ? "at the page" : "ELSEWHERE");
  CHECK(ins.raised);
  CHECK_EQ(ins.vector, 14);
  CHECK_EQ(ins.error_code, 2);  // not present, write, supervisor
  CHECK_EQ(cr2_ins, hole_addr);
  CHECK(done_before);
  CHECK(outs.raised);
  CHECK_EQ(outs.vector, 14);
  CHECK_EQ(outs.error_code, 0);  // not present, read, supervisor
  CHECK_EQ(cr2_outs, hole_addr);
}

}  // namespace

void guest_test() {
  const Mb m = check_multiboot();
  check_fw_cfg(m);
  check_string_io_faults();
}
