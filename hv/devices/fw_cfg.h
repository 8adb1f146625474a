// A QEMU-compatible fw_cfg device ("firmware configuration") on the x86 I/O ports, so that
// guests that find their configuration there under QEMU find it under hv the same way
// (QEMU's docs/specs/fw_cfg: the guest-side interface; the facts only, the code is ours).
//
// Ports (claimed on the VM's I/O bus, hv/io_bus.h):
//   0x510  selector, 16-bit OUT (little-endian): selects an item and rewinds its data offset
//          to 0. Bit 14 (write channel) is ignored (no item is writable); bit 15 selects the
//          architecture-specific items, of which hv has none (they read 0). Other widths are
//          ignored, as QEMU accepts only 16-bit accesses there; IN reads all ones.
//   0x511  data, IN: the selected item's next byte (a 2- or 4-byte IN returns the next 2 or 4
//          bytes, lowest address first, as QEMU's MMIO variant defines wide reads). Reading
//          past the end of an item, or an item that does not exist, returns 0. OUT is ignored
//          (QEMU dropped data-port writes). INS works (hv/exit_io.cpp), so `rep insb` reads a
//          whole item.
//   0x514  the DMA address register, 64-bit big-endian over 0x514-0x51B (a guest writes the
//          high half with outl(0x514, bswap32(hi)) and then the low half at 0x518): the write
//          that completes byte 0x51B starts the request at that guest-physical address.
//          Reads return the signature "QEMU CFG" (0x514 holds 'Q'). Only when the VM gave the
//          device its guest memory (Config::mem); otherwise FW_CFG_ID has no DMA bit and the
//          ports are an empty bus.
// DMA request (16 bytes, big-endian): control (32), length (32), address (64). Control bits:
// 0x08 select (the key in bits 31:16, rewinds), 0x02 read `length` bytes from the offset into
// guest memory at `address` (zeros past the item's end), 0x04 skip `length` bytes, 0x10 write
// (no item is writable: error). On completion hv writes control back as 0, or 0x01 (error)
// when guest memory at `address` is not RAM, on a write, or when `length` exceeds
// kDmaMaxLength (hv's bound: the whole request runs inside one exit). Synchronous: done when
// the OUT returns, which the specification allows.
//
// Items (keys as QEMU numbers them; integers little-endian unless said):
//   0x0000 FW_CFG_SIGNATURE  "QEMU"
//   0x0001 FW_CFG_ID         32-bit feature bitmap: bit 0 (traditional interface), bit 1 (DMA)
//                            when the DMA interface is on
//   0x0003 FW_CFG_RAM_SIZE   64-bit: bytes of the VM's boot RAM (slot 0, hv.guest-mem)
//   0x0005 FW_CFG_NB_CPUS    16-bit: the VM's vCPUs
//   0x000f FW_CFG_MAX_CPUS   16-bit: the same (no CPU hotplug)
//   0x0014 FW_CFG_CMDLINE_SIZE 32-bit: bytes of the command line below, its NUL included
//   0x0015 FW_CFG_CMDLINE_DATA the guest's arguments (its multiboot command line without the
//                             first word, the kernel's name), NUL-terminated - what QEMU
//                             gives for -append
//   0x0019 FW_CFG_FILE_DIR   big-endian 32-bit count, then per file 64 bytes: size (BE32),
//                            select (BE16), reserved (16 bits), name (56 bytes, NUL-padded);
//                            sorted by name, as QEMU sorts its files; selectors from 0x20
//   files:
//     "etc/hv/ram-size"  64-bit: FW_CFG_RAM_SIZE again (named, so a guest can tell hv's
//                        machine apart without trusting the signature, which is QEMU's)
//     "etc/hv/vcpus"     32-bit: the vCPU count
//     "opt/hv/cmdline"   the guest's arguments without a NUL: the same bytes a QEMU user
//                        passes with -fw_cfg name=opt/hv/cmdline,string=..., so one guest
//                        reads its arguments the same way under hv and under QEMU
//
// One fw_cfg per VM, used by every vCPU of the VM at once: the selector and the offset are
// the device's (as in QEMU: one selector per machine) and guarded by `lock_`. The items are
// built once by init(), before any vCPU runs, and read-only afterwards.
//
// Pure code apart from the lock (mmu/lock.h): the host unit tests compile it
// (tests/unit/fw_cfg_test.cpp).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hv/io_bus.h"
#include "mmu/lock.h"

namespace hv {

class FwCfg {
 public:
  static constexpr uint16_t kSelectorPort = 0x510, kDataPort = 0x511;
  static constexpr uint16_t kSignature = 0x00, kId = 0x01, kRamSize = 0x03, kNbCpus = 0x05, kMaxCpus = 0x0f,
                            kCmdlineSize = 0x14, kCmdlineData = 0x15, kFileDir = 0x19, kFileFirst = 0x20;
  static constexpr uint32_t kIdTraditional = 1u << 0, kIdDma = 1u << 1;
  static constexpr size_t kMaxCmdline = 1024;  // bytes of arguments (longer: init refuses)
  static constexpr size_t kFileNameBytes = 56;
  static constexpr size_t kDirEntryBytes = 64;
  static constexpr uint16_t kDmaPort = 0x514;
  static constexpr uint32_t kDmaError = 0x01, kDmaRead = 0x02, kDmaSkip = 0x04, kDmaSelect = 0x08, kDmaWrite = 0x10;
  static constexpr uint32_t kDmaMaxLength = 1u << 20;
  static constexpr uint64_t kDmaSignature = 0x51454D5520434647ull;  // "QEMU CFG"

  // Guest-physical memory for DMA (the VM's RAM slots): false when [gpa, gpa + len) is not
  // all RAM (the range may span slots; the callback splits it).
  struct GuestMemory {
    void* ctx = nullptr;
    bool (*read)(void* ctx, uint64_t gpa, void* dst, uint64_t len) = nullptr;
    bool (*write)(void* ctx, uint64_t gpa, const void* src, uint64_t len) = nullptr;
  };

  struct Config {
    uint64_t ram_bytes = 0;
    uint16_t cpus = 1;
    const char* args = "";  // the guest's arguments (no kernel name)
    GuestMemory mem;        // for DMA; without it (no callbacks) no DMA
  };

  // Builds the items. nullptr, or why not (arguments too long).
  const char* init(const Config& c) EXCLUDES(lock_);

  // The two registers (any vCPU).
  void select(uint16_t key) EXCLUDES(lock_);
  // Next `n` (1-4) bytes of the selected item, lowest first in the low byte.
  uint32_t read_data(unsigned n) EXCLUDES(lock_);

  // The DMA address register (offset 0-7 from 0x514): `size` bytes of `value`, port order.
  void dma_register_write(unsigned offset, unsigned size, uint32_t value) EXCLUDES(lock_);
  uint32_t dma_register_read(unsigned offset, unsigned size) const;
  bool dma_enabled() const { return mem_.read && mem_.write; }

  // The port ranges for the VM's I/O bus: 0x510-0x511, and 0x514-0x51B (DMA, when enabled);
  // ctx is this device.
  IoDevice device();
  IoDevice dma_device();

  // For tests and reports: an item's size (0 when absent) and its bytes.
  uint32_t item_size(uint16_t key) const;
  const uint8_t* item_data(uint16_t key) const;

 private:
  struct Item {
    uint16_t key;
    uint32_t offset;  // into data_
    uint32_t size;
  };
  static constexpr unsigned kMaxItems = 16;
  static constexpr size_t kDataBytes = 4096;

  const Item* find(uint16_t key) const;
  void run_dma(uint64_t gpa) REQUIRES(lock_);
  // Appends an item; false when the arena or the table is full.
  bool add(uint16_t key, const void* bytes, uint32_t size);
  bool add_file(const char* name, const void* bytes, uint32_t size);

  // Built by init() (single-threaded, before the VM runs), then read-only.
  uint8_t data_[kDataBytes] = {};
  size_t used_ = 0;
  Item items_[kMaxItems] = {};
  unsigned count_ = 0;

  GuestMemory mem_;

  mmu::SpinLock lock_;
  uint16_t selector_ GUARDED_BY(lock_) = 0;
  uint32_t offset_ GUARDED_BY(lock_) = 0;
  uint8_t dma_addr_[8] GUARDED_BY(lock_) = {};  // the address register, big-endian
 public:
  // --- migration state (hv/vm_state.h, docs/migration.md): everything the guest can observe ---
  // The guest's cursor only: the items are the VM's configuration, which the target VM is given
  // again by its builder (the same FwCfg::Config).
  struct State {
    uint16_t selector = 0;
    uint32_t offset = 0;
    uint8_t dma_addr[8] = {};
    bool operator==(const State&) const = default;
  };
  void save(State& s) EXCLUDES(lock_);
  void restore(const State& s) EXCLUDES(lock_);
};

}  // namespace hv
