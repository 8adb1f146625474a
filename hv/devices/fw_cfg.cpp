// The fw_cfg device (see fw_cfg.h).
#include "hv/devices/fw_cfg.h"

namespace hv {

namespace {

size_t str_len(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

void copy_bytes(uint8_t* d, const void* s, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(s);
  for (size_t i = 0; i < n; i++) d[i] = p[i];
}

void put_le(uint8_t* d, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; i++) d[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_be(uint8_t* d, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; i++) d[i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
}

// A file before it gets its selector: names sorted, as QEMU orders its directory.
struct File {
  const char* name;
  const uint8_t* bytes;
  uint32_t size;
};

int name_cmp(const char* a, const char* b) {
  while (*a && *a == *b) a++, b++;
  return static_cast<unsigned char>(*a) - static_cast<unsigned char>(*b);
}

}  // namespace

bool FwCfg::add(uint16_t key, const void* bytes, uint32_t size) {
  if (count_ == kMaxItems || size > kDataBytes - used_) return false;
  items_[count_++] = Item{key, static_cast<uint32_t>(used_), size};
  copy_bytes(data_ + used_, bytes, size);
  used_ += size;
  return true;
}

const char* FwCfg::init(const Config& c) {
  {
    mmu::SpinLockGuard g(lock_);  // no vCPU runs yet: the lock only states the contract
    selector_ = 0;
    offset_ = 0;
    for (uint8_t& b : dma_addr_) b = 0;
  }
  mem_ = c.mem;
  used_ = 0;
  count_ = 0;
  const size_t args_len = str_len(c.args);
  if (args_len > kMaxCmdline) return "the guest's command line is too long for fw_cfg (at most 1024 bytes)";
  uint8_t b[8];
  if (!add(kSignature, "QEMU", 4)) return "fw_cfg: out of item space";
  put_le(b, kIdTraditional | (dma_enabled() ? kIdDma : 0), 4);
  add(kId, b, 4);
  put_le(b, c.ram_bytes, 8);
  add(kRamSize, b, 8);
  put_le(b, c.cpus, 2);
  add(kNbCpus, b, 2);
  add(kMaxCpus, b, 2);
  put_le(b, args_len + 1, 4);
  add(kCmdlineSize, b, 4);
  // The data with its NUL: the arena is zeroed where the NUL goes (add copies args_len + 1
  // bytes of the string, whose last one is its terminator).
  if (!add(kCmdlineData, c.args, static_cast<uint32_t>(args_len + 1))) return "fw_cfg: out of item space";

  // The files, sorted by name, numbered from kFileFirst in that order.
  uint8_t ram[8], cpus[4];
  put_le(ram, c.ram_bytes, 8);
  put_le(cpus, c.cpus, 4);
  File files[] = {
      {"opt/hv/cmdline", reinterpret_cast<const uint8_t*>(c.args), static_cast<uint32_t>(args_len)},
      {"etc/hv/vcpus", cpus, 4},
      {"etc/hv/ram-size", ram, 8},
  };
  constexpr unsigned kFiles = sizeof files / sizeof files[0];
  for (unsigned i = 1; i < kFiles; i++)
    for (unsigned j = i; j > 0 && name_cmp(files[j].name, files[j - 1].name) < 0; j--) {
      const File t = files[j];
      files[j] = files[j - 1];
      files[j - 1] = t;
    }
  uint8_t dir[4 + kFiles * kDirEntryBytes] = {};
  put_be(dir, kFiles, 4);
  for (unsigned i = 0; i < kFiles; i++) {
    uint8_t* e = dir + 4 + i * kDirEntryBytes;
    put_be(e, files[i].size, 4);
    put_be(e + 4, kFileFirst + i, 2);
    const size_t n = str_len(files[i].name);
    copy_bytes(e + 8, files[i].name, n < kFileNameBytes - 1 ? n : kFileNameBytes - 1);
  }
  if (!add(kFileDir, dir, sizeof dir)) return "fw_cfg: out of item space";
  for (unsigned i = 0; i < kFiles; i++)
    if (!add(static_cast<uint16_t>(kFileFirst + i), files[i].bytes, files[i].size)) return "fw_cfg: out of item space";
  return nullptr;
}

const FwCfg::Item* FwCfg::find(uint16_t key) const {
  for (unsigned i = 0; i < count_; i++)
    if (items_[i].key == key) return &items_[i];
  return nullptr;
}

uint32_t FwCfg::item_size(uint16_t key) const {
  const Item* it = find(key);
  return it ? it->size : 0;
}

const uint8_t* FwCfg::item_data(uint16_t key) const {
  const Item* it = find(key);
  return it ? data_ + it->offset : nullptr;
}

void FwCfg::select(uint16_t key) {
  mmu::SpinLockGuard g(lock_);
  selector_ = key;
  offset_ = 0;
}

uint32_t FwCfg::read_data(unsigned n) {
  mmu::SpinLockGuard g(lock_);
  // Bit 14 (write channel) does not change what is read; bit 15 selects the architecture's
  // own items, and hv defines none, so those keys find nothing and read 0.
  const Item* it = (selector_ & 0x8000) ? nullptr : find(selector_ & 0x3FFF);
  uint32_t v = 0;
  for (unsigned i = 0; i < n && i < 4; i++) {
    uint8_t byte = 0;
    if (it && offset_ < it->size) byte = data_[it->offset + offset_];
    // The offset moves on even past the end (QEMU stops it there; either way every later
    // read returns 0 until the next select). Saturate so a guest can't wrap it.
    if (offset_ != UINT32_MAX) offset_++;
    v |= uint32_t{byte} << (8 * i);
  }
  return v;
}

uint32_t FwCfg::dma_register_read(unsigned offset, unsigned size) const {
  uint32_t v = 0;
  for (unsigned i = 0; i < size && offset + i < 8; i++)
    v |= static_cast<uint32_t>((kDmaSignature >> (8 * (7 - (offset + i)))) & 0xFF) << (8 * i);
  return v;
}

void FwCfg::dma_register_write(unsigned offset, unsigned size, uint32_t value) {
  mmu::SpinLockGuard g(lock_);
  bool last = false;
  for (unsigned i = 0; i < size && offset + i < 8; i++) {
    dma_addr_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
    last = last || offset + i == 7;
  }
  if (!last) return;
  uint64_t gpa = 0;
  for (unsigned i = 0; i < 8; i++) gpa = (gpa << 8) | dma_addr_[i];
  run_dma(gpa);
}

void FwCfg::run_dma(uint64_t gpa) {
  lock_.assert_held();
  uint8_t req[16];
  if (!mem_.read(mem_.ctx, gpa, req, sizeof req)) return;  // nowhere to report to
  uint32_t control = 0, length = 0;
  uint64_t address = 0;
  for (unsigned i = 0; i < 4; i++) control = (control << 8) | req[i];
  for (unsigned i = 4; i < 8; i++) length = (length << 8) | req[i];
  for (unsigned i = 8; i < 16; i++) address = (address << 8) | req[i];
  bool error = false;
  if (control & kDmaSelect) {
    selector_ = static_cast<uint16_t>(control >> 16);
    offset_ = 0;
  }
  if (control & kDmaWrite) {
    error = true;  // no item is writable
  } else if (control & kDmaRead) {
    if (length > kDmaMaxLength) {
      error = true;
    } else {
      const Item* it = (selector_ & 0x8000) ? nullptr : find(selector_ & 0x3FFF);
      uint8_t chunk[256];
      for (uint32_t done = 0; done < length && !error;) {
        const uint32_t n = length - done < sizeof chunk ? length - done : static_cast<uint32_t>(sizeof chunk);
        for (uint32_t i = 0; i < n; i++) {
          const uint64_t at = uint64_t{offset_} + i;
          chunk[i] = (it && at < it->size) ? data_[it->offset + at] : 0;
        }
        if (!mem_.write(mem_.ctx, address + done, chunk, n)) error = true;
        offset_ = offset_ + n < offset_ ? UINT32_MAX : offset_ + n;
        done += n;
      }
    }
  } else if (control & kDmaSkip) {
    offset_ = offset_ + length < offset_ ? UINT32_MAX : offset_ + length;
  }
  const uint8_t done_ctl[4] = {0, 0, 0, static_cast<uint8_t>(error ? kDmaError : 0)};
  mem_.write(mem_.ctx, gpa, done_ctl, sizeof done_ctl);
}

IoDevice FwCfg::dma_device() {
  IoDevice d{};
  d.name = "fw_cfg-dma";
  d.base = kDmaPort;
  d.count = 8;
  d.ctx = this;
  d.read = [](void* ctx, Vcpu&, uint16_t port, unsigned size) -> uint32_t {
    return static_cast<FwCfg*>(ctx)->dma_register_read(port - kDmaPort, size);
  };
  d.write = [](void* ctx, Vcpu&, uint16_t port, unsigned size, uint32_t value) {
    static_cast<FwCfg*>(ctx)->dma_register_write(port - kDmaPort, size, value);
  };
  return d;
}

IoDevice FwCfg::device() {
  IoDevice d{};
  d.name = "fw_cfg";
  d.base = kSelectorPort;
  d.count = 2;
  d.ctx = this;
  d.read = [](void* ctx, Vcpu&, uint16_t port, unsigned size) -> uint32_t {
    if (port == kDataPort) return static_cast<FwCfg*>(ctx)->read_data(size);
    return 0xFFFFFFFFu;  // the selector is write-only
  };
  d.write = [](void* ctx, Vcpu&, uint16_t port, unsigned size, uint32_t value) {
    // Only a 16-bit write to the selector counts (QEMU's rule); a data-port write is dropped.
    if (port == kSelectorPort && size == 2) static_cast<FwCfg*>(ctx)->select(static_cast<uint16_t>(value));
  };
  return d;
}

// --- migration state (see the header) ---

void FwCfg::save(State& s) {
  mmu::SpinLockGuard g(lock_);
  s.selector = selector_;
  s.offset = offset_;
  for (unsigned i = 0; i < 8; i++) s.dma_addr[i] = dma_addr_[i];
}

void FwCfg::restore(const State& s) {
  mmu::SpinLockGuard g(lock_);
  selector_ = s.selector;
  offset_ = s.offset;
  for (unsigned i = 0; i < 8; i++) dma_addr_[i] = s.dma_addr[i];
}

}  // namespace hv
