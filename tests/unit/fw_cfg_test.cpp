// The fw_cfg device's items and registers (hv/devices/fw_cfg.h): QEMU's layout of the fixed items and
// the file directory (big-endian count, 64-byte entries sorted by name, selectors from 0x20),
// the data register's semantics (select rewinds, past the end and unknown keys read 0, the
// architecture-local bit, wide reads), the selector's width rule, DMA requests, and the I/O bus contract
// (hv/io_bus.h: claims, overlaps, lookups). Pure code, compiled into the host tests.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "hv/devices/fw_cfg.h"
#include "hv/io_bus.h"

using hv::FwCfg;

namespace {

std::string read_item(FwCfg& f, uint16_t key, size_t n) {
  f.select(key);
  std::string s;
  for (size_t i = 0; i < n; i++) s.push_back(static_cast<char>(f.read_data(1)));
  return s;
}

uint32_t be32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; i++) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

FwCfg& make(const char* args, uint64_t ram = 32ull << 20, uint16_t cpus = 2, FwCfg::GuestMemory mem = {}) {
  static FwCfg f;  // 4 KiB of items: keep it off the stack
  FwCfg::Config c;
  c.ram_bytes = ram;
  c.cpus = cpus;
  c.args = args;
  c.mem = mem;
  REQUIRE(f.init(c) == nullptr);
  return f;
}

// A guest memory of 64 KiB at guest-physical 0 for the DMA tests; anything else is not RAM.
struct FakeRam {
  uint8_t bytes[65536] = {};
  static bool in(uint64_t gpa, uint64_t len) { return gpa <= sizeof(FakeRam::bytes) && len <= sizeof(FakeRam::bytes) - gpa; }
  FwCfg::GuestMemory mem() {
    FwCfg::GuestMemory m;
    m.ctx = this;
    m.read = [](void* ctx, uint64_t gpa, void* dst, uint64_t len) {
      if (!in(gpa, len)) return false;
      std::memcpy(dst, static_cast<FakeRam*>(ctx)->bytes + gpa, len);
      return true;
    };
    m.write = [](void* ctx, uint64_t gpa, const void* src, uint64_t len) {
      if (!in(gpa, len)) return false;
      std::memcpy(static_cast<FakeRam*>(ctx)->bytes + gpa, src, len);
      return true;
    };
    return m;
  }
  void put_be(uint64_t gpa, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) bytes[gpa + i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
  }
  // Writes a request at `at` and starts it the way a guest does (two 32-bit OUTs, big-endian).
  uint32_t run(FwCfg& f, uint64_t at, uint32_t control, uint32_t length, uint64_t address) {
    put_be(at, control, 4);
    put_be(at + 4, length, 4);
    put_be(at + 8, address, 8);
    f.dma_register_write(0, 4, __builtin_bswap32(static_cast<uint32_t>(at >> 32)));
    f.dma_register_write(4, 4, __builtin_bswap32(static_cast<uint32_t>(at)));
    uint32_t c = 0;
    for (unsigned i = 0; i < 4; i++) c = (c << 8) | bytes[at + i];
    return c;
  }
};

}  // namespace

TEST_CASE("fw_cfg: the fixed items as QEMU lays them out", "[hv][fw_cfg]") {
  FwCfg& f = make("console=ttyS0 x=1", 0x123456789ull, 3);
  REQUIRE(read_item(f, FwCfg::kSignature, 4) == "QEMU");
  f.select(FwCfg::kId);
  REQUIRE(f.read_data(4) == FwCfg::kIdTraditional);  // no DMA advertised
  f.select(FwCfg::kRamSize);
  const uint64_t lo = f.read_data(4), hi = f.read_data(4);
  REQUIRE((lo | hi << 32) == 0x123456789ull);
  f.select(FwCfg::kNbCpus);
  REQUIRE(f.read_data(2) == 3);
  f.select(FwCfg::kMaxCpus);
  REQUIRE(f.read_data(2) == 3);
  f.select(FwCfg::kCmdlineSize);
  REQUIRE(f.read_data(4) == std::strlen("console=ttyS0 x=1") + 1);
  REQUIRE(read_item(f, FwCfg::kCmdlineData, 18) == std::string("console=ttyS0 x=1", 18));  // NUL included
}

TEST_CASE("fw_cfg: the file directory is big-endian, sorted, and points at the files", "[hv][fw_cfg]") {
  FwCfg& f = make("a b", 64ull << 20, 2);
  const uint32_t dir_size = f.item_size(FwCfg::kFileDir);
  const std::string dir = read_item(f, FwCfg::kFileDir, dir_size);
  const uint32_t count = be32(dir, 0);
  REQUIRE(count == 3);
  REQUIRE(dir_size == 4 + count * FwCfg::kDirEntryBytes);
  std::string prev;
  bool seen_cmdline = false;
  for (uint32_t i = 0; i < count; i++) {
    const size_t e = 4 + i * FwCfg::kDirEntryBytes;
    const uint32_t size = be32(dir, e);
    const uint16_t select = static_cast<uint16_t>((static_cast<uint8_t>(dir[e + 4]) << 8) | static_cast<uint8_t>(dir[e + 5]));
    REQUIRE(dir[e + 6] == 0);
    REQUIRE(dir[e + 7] == 0);
    const std::string name(dir.c_str() + e + 8);
    REQUIRE(name.size() < FwCfg::kFileNameBytes);
    REQUIRE(select == FwCfg::kFileFirst + i);
    REQUIRE(prev < name);  // QEMU's order
    prev = name;
    REQUIRE(f.item_size(select) == size);
    if (name == "opt/hv/cmdline") {
      seen_cmdline = true;
      REQUIRE(read_item(f, select, size) == "a b");  // no NUL, as -fw_cfg string= gives it
    }
    if (name == "etc/hv/vcpus") {
      f.select(select);
      REQUIRE(f.read_data(4) == 2);
    }
    if (name == "etc/hv/ram-size") {
      f.select(select);
      REQUIRE(f.read_data(4) == (64u << 20));
      REQUIRE(f.read_data(4) == 0);
    }
  }
  REQUIRE(seen_cmdline);
}

TEST_CASE("fw_cfg: data register semantics", "[hv][fw_cfg]") {
  FwCfg& f = make("");
  // Past the end: 0, every time.
  REQUIRE(read_item(f, FwCfg::kSignature, 8) == std::string("QEMU\0\0\0\0", 8));
  // A select rewinds.
  f.select(FwCfg::kSignature);
  f.read_data(2);
  f.select(FwCfg::kSignature);
  REQUIRE(f.read_data(1) == 'Q');
  // Unknown keys, and the architecture-local range (hv has none), read 0.
  f.select(0x3FF0);
  REQUIRE(f.read_data(4) == 0);
  f.select(0x8000 | FwCfg::kSignature);
  REQUIRE(f.read_data(4) == 0);
  // The write-channel bit does not change what is read.
  f.select(0x4000 | FwCfg::kSignature);
  REQUIRE(f.read_data(1) == 'Q');
  // Wide reads: the next bytes, lowest first.
  f.select(FwCfg::kSignature);
  REQUIRE(f.read_data(4) == 0x554D4551u);  // "QEMU"
  // An empty command line still has its NUL.
  f.select(FwCfg::kCmdlineSize);
  REQUIRE(f.read_data(4) == 1);
  // Too long arguments are refused.
  std::string big(FwCfg::kMaxCmdline + 1, 'x');
  FwCfg::Config c;
  c.args = big.c_str();
  static FwCfg g;
  REQUIRE(g.init(c) != nullptr);
}

TEST_CASE("fw_cfg: DMA requests (select, read with zeros past the end, skip, errors)", "[hv][fw_cfg]") {
  static FakeRam ram;
  FwCfg& f = make("x", 32ull << 20, 1, ram.mem());
  REQUIRE(f.dma_enabled());
  f.select(FwCfg::kId);
  REQUIRE(f.read_data(4) == (FwCfg::kIdTraditional | FwCfg::kIdDma));
  // The signature register, in port order.
  REQUIRE(f.dma_register_read(0, 4) == 0x554D4551u);  // "QEMU"
  REQUIRE(f.dma_register_read(4, 4) == 0x47464320u);  // " CFG"
  std::memset(ram.bytes + 0x1000, 0xEE, 16);
  REQUIRE(ram.run(f, 0x100, (uint32_t{FwCfg::kSignature} << 16) | FwCfg::kDmaSelect | FwCfg::kDmaRead, 6, 0x1000) == 0);
  REQUIRE(std::memcmp(ram.bytes + 0x1000, "QEMU\0\0", 6) == 0);
  REQUIRE(ram.bytes[0x1006] == 0xEE);  // exactly `length` bytes
  // Skip, then read on: the offset carries over, and the port sees it too.
  REQUIRE(ram.run(f, 0x100, (uint32_t{FwCfg::kSignature} << 16) | FwCfg::kDmaSelect | FwCfg::kDmaSkip, 1, 0) == 0);
  REQUIRE(ram.run(f, 0x100, FwCfg::kDmaRead, 1, 0x1000) == 0);
  REQUIRE(ram.bytes[0x1000] == 'E');
  REQUIRE(f.read_data(1) == 'M');
  // Errors: a write, a destination that is not RAM, a length beyond hv's bound.
  REQUIRE(ram.run(f, 0x100, FwCfg::kDmaWrite, 1, 0x1000) == FwCfg::kDmaError);
  REQUIRE(ram.run(f, 0x100, FwCfg::kDmaRead, 16, sizeof ram.bytes - 8) == FwCfg::kDmaError);
  REQUIRE(ram.run(f, 0x100, FwCfg::kDmaRead, FwCfg::kDmaMaxLength + 1, 0x1000) == FwCfg::kDmaError);
  // A request that is itself outside RAM is dropped: nothing to write back, nothing breaks.
  f.dma_register_write(0, 4, 0);
  f.dma_register_write(4, 4, __builtin_bswap32(0x100000));
  // Byte writes complete the register only at its last byte.
  ram.put_be(0x200, (uint32_t{FwCfg::kSignature} << 16) | FwCfg::kDmaSelect | FwCfg::kDmaRead, 4);
  ram.put_be(0x204, 4, 4);
  ram.put_be(0x208, 0x1100, 8);
  for (unsigned i = 0; i < 8; i++) f.dma_register_write(i, 1, i == 6 ? 0x02 : 0);
  REQUIRE(std::memcmp(ram.bytes + 0x1100, "QEMU", 4) == 0);
  // Without guest memory there is no DMA.
  FwCfg& g = make("x");
  REQUIRE_FALSE(g.dma_enabled());
  g.select(FwCfg::kId);
  REQUIRE(g.read_data(4) == FwCfg::kIdTraditional);
}

TEST_CASE("fw_cfg: ports through the I/O bus; only a 16-bit selector write selects", "[hv][fw_cfg][io]") {
  FwCfg& f = make("");
  hv::IoBus bus;
  REQUIRE(bus.claim(f.device()) == nullptr);
  const hv::IoDevice* sel = bus.find(FwCfg::kSelectorPort);
  const hv::IoDevice* data = bus.find(FwCfg::kDataPort);
  REQUIRE(sel != nullptr);
  REQUIRE(sel == data);
  REQUIRE(bus.find(0x512) == nullptr);  // 0x514 (DMA) and beyond: empty bus
  REQUIRE(bus.find(0x514) == nullptr);
  // fw_cfg never looks at the vCPU (an incomplete type here): any object stands in.
  alignas(64) static unsigned char stand_in[64];
  hv::Vcpu& v = *reinterpret_cast<hv::Vcpu*>(stand_in);
  sel->write(sel->ctx, v, FwCfg::kSelectorPort, 2, FwCfg::kId);
  REQUIRE(data->read(data->ctx, v, FwCfg::kDataPort, 1) == 1);
  // A byte write to the selector is ignored (QEMU accepts only 16 bits): still on kId.
  sel->write(sel->ctx, v, FwCfg::kSelectorPort, 1, FwCfg::kSignature);
  REQUIRE(data->read(data->ctx, v, FwCfg::kDataPort, 1) == 0);  // kId's second byte
  REQUIRE(sel->read(sel->ctx, v, FwCfg::kSelectorPort, 2) == 0xFFFFFFFFu);
}

TEST_CASE("io bus: claims may not overlap; lookups find the claiming range", "[hv][io]") {
  hv::IoBus bus;
  auto rd = [](void*, hv::Vcpu&, uint16_t, unsigned) -> uint32_t { return 0; };
  auto wr = [](void*, hv::Vcpu&, uint16_t, unsigned, uint32_t) {};
  REQUIRE(bus.claim({"uart", 0x3F8, 8, nullptr, rd, wr}) == nullptr);
  REQUIRE(bus.claim({"clash", 0x3FF, 2, nullptr, rd, wr}) != nullptr);
  REQUIRE(bus.claim({"clash", 0x3F0, 9, nullptr, rd, wr}) != nullptr);
  REQUIRE(bus.claim({"below", 0x3F0, 8, nullptr, rd, wr}) == nullptr);  // ends right at 0x3F8
  REQUIRE(bus.claim({"empty", 0x10, 0, nullptr, rd, wr}) != nullptr);
  REQUIRE(bus.claim({"wrap", 0xFFFF, 2, nullptr, rd, wr}) != nullptr);
  REQUIRE(bus.claim({"no-cb", 0x20, 1, nullptr, nullptr, wr}) != nullptr);
  REQUIRE(bus.claim({"last", 0xFFFF, 1, nullptr, rd, wr}) == nullptr);
  REQUIRE(std::string(bus.find(0x3F8)->name) == "uart");
  REQUIRE(std::string(bus.find(0x3FF)->name) == "uart");
  REQUIRE(std::string(bus.find(0x3F7)->name) == "below");
  REQUIRE(std::string(bus.find(0xFFFF)->name) == "last");
  REQUIRE(bus.find(0x400) == nullptr);
  unsigned n = bus.count();
  for (uint16_t p = 0x1000; n < hv::IoBus::kMaxRanges; p += 4, n++) REQUIRE(bus.claim({"fill", p, 4, nullptr, rd, wr}) == nullptr);
  REQUIRE(bus.claim({"full", 0x2000, 1, nullptr, rd, wr}) != nullptr);
  // Every port against the claims made above (find() is a per-port table).
  unsigned wrong = 0;
  for (uint32_t p = 0; p < 0x10000; p++) {
    const char* want = p >= 0x3F8 && p < 0x400                       ? "uart"
                       : p >= 0x3F0 && p < 0x3F8                     ? "below"
                       : p == 0xFFFF                                 ? "last"
                       : p >= 0x1000 && p < 0x1000 + 4 * (n - 3)     ? "fill"
                                                                     : nullptr;
    const hv::IoDevice* d = bus.find(static_cast<uint16_t>(p));
    wrong += want ? (!d || std::string(d->name) != want) : d != nullptr;
  }
  REQUIRE(wrong == 0);
  bus.clear();
  REQUIRE(bus.find(0x3F8) == nullptr);
  // clear() forgets every port of every range, and the ports can be claimed again.
  for (uint32_t p = 0; p < 0x10000; p++) wrong += bus.find(static_cast<uint16_t>(p)) != nullptr;
  REQUIRE(wrong == 0);
  REQUIRE(bus.claim({"again", 0x3F8, 1, nullptr, rd, wr}) == nullptr);
  REQUIRE(std::string(bus.find(0x3F8)->name) == "again");
  REQUIRE(bus.find(0x3F9) == nullptr);
}
