// The fw_cfg device's items and registers (hv/fw_cfg.h): QEMU's layout of the fixed items and
// the file directory (big-endian count, 64-byte entries sorted by name, selectors from 0x20),
// the data register's semantics (select rewinds, past the end and unknown keys read 0, the
// architecture-local bit, wide reads), the selector's width rule, and the I/O bus contract
// (hv/io_bus.h: claims, overlaps, lookups). Pure code, compiled into the host tests.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "hv/fw_cfg.h"
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

FwCfg& make(const char* args, uint64_t ram = 32ull << 20, uint16_t cpus = 2) {
  static FwCfg f;  // 4 KiB of items: keep it off the stack
  FwCfg::Config c;
  c.ram_bytes = ram;
  c.cpus = cpus;
  c.args = args;
  REQUIRE(f.init(c) == nullptr);
  return f;
}

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
  bus.clear();
  REQUIRE(bus.find(0x3F8) == nullptr);
}
