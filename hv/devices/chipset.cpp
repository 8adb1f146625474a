// The chipset of a VM on its buses, its time, and the poll/deadline hooks (see chipset.h).
#include "hv/devices/chipset.h"

#include "hv/devices/acpi_tables.h"

#include "arch/x86/cpu.h"
#include "arch/x86/log.h"
#include "arch/x86/serial.h"
#include "arch/x86/spinlock.h"
#include "arch/x86/timer.h"
#include "hv/irq.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

namespace hv {

namespace {

// t * rate / hz without a 128-bit division (the kernel has no __udivti3): both partial
// products stay below 2^64 for TSC rates up to ~15 THz.
uint64_t scale(uint64_t t, uint64_t rate, uint64_t hz) { return (t / hz) * rate + (t % hz) * rate / hz; }
// The inverse, rounded up: the first TSC value at which `ticks` of `rate` have passed.
uint64_t unscale(uint64_t ticks, uint64_t rate, uint64_t hz) {
  return (ticks / rate) * hz + ((ticks % rate) * hz + rate - 1) / rate;
}

uint64_t guest_time(const Vm& vm, uint64_t host_tsc) { return host_tsc > vm.tsc_origin ? host_tsc - vm.tsc_origin : 0; }

struct Now {
  uint64_t pit, rtc;
};
Now now_of(Vm& vm, uint64_t host_tsc) {
  const uint64_t g = guest_time(vm, host_tsc), hz = vm.chipset.tsc_hz;
  return {scale(g, Pit::kHz, hz), scale(g, Rtc::kHz, hz)};
}

// --- hv's own CMOS clock ----------------------------------------------------------------------

x86::SpinLock g_host_cmos_lock;

uint8_t host_cmos(uint8_t reg) REQUIRES(g_host_cmos_lock) {
  x86::outb(0x70, reg);  // NMI mask bit left clear, as the firmware leaves it
  return x86::inb(0x71);
}

// The host's date and time as Unix seconds, read once per VM: wait for an update cycle to
// end (UIP clear), read twice until both agree, decode as register B says. 0 when the
// clock is absent or says nonsense (the caller falls back to a fixed date).
uint64_t host_rtc_seconds() {
  x86::SpinLockGuard g(g_host_cmos_lock);
  Rtc::DateTime t{}, u{};
  uint8_t b = 0;
  for (int attempt = 0; attempt < 8; attempt++) {
    for (int i = 0; i < 100000 && (host_cmos(0x0A) & 0x80); i++) {
    }
    auto read = [&](Rtc::DateTime& d) REQUIRES(g_host_cmos_lock) {
      b = host_cmos(0x0B);
      auto dec = [b](uint8_t v) -> unsigned { return (b & 0x04) ? v : (v >> 4) * 10u + (v & 0xFu); };
      d.second = dec(host_cmos(0x00));
      d.minute = dec(host_cmos(0x02));
      const uint8_t h = host_cmos(0x04);
      d.hour = (b & 0x02) ? dec(h) : dec(h & 0x7F) % 12 + ((h & 0x80) ? 12 : 0);
      d.day = dec(host_cmos(0x07));
      d.month = dec(host_cmos(0x08));
      const unsigned century = dec(host_cmos(0x32));
      d.year = (century >= 19 && century <= 21 ? century : 20) * 100 + dec(host_cmos(0x09));
    };
    read(t);
    read(u);
    if (t.second == u.second && t.minute == u.minute && t.hour == u.hour && t.day == u.day && t.month == u.month &&
        t.year == u.year)
      break;
  }
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > 31 || t.hour > 23 || t.minute > 59 || t.second > 59 ||
      t.year < 1970 || t.year > 2199)
    return 0;
  return Rtc::to_seconds(t);
}

constexpr uint64_t kFallbackEpoch = 1767225600;  // 2026-01-01 00:00:00 UTC

// The NVRAM bytes SeaBIOS and QEMU's PC set up that guests read for the memory size.
void fill_nvram(Rtc& rtc, uint64_t ram_bytes, unsigned vcpus) {
  constexpr uint64_t kKiB = 1024, kMiB = 1024 * kKiB, k4G = 4096 * kMiB;
  rtc.set_nvram(0x10, 0x00);  // no floppy drives
  rtc.set_nvram(0x14, 0x06);  // equipment: FPU, EGA/VGA video, no floppies
  rtc.set_nvram(0x15, 0x80);  // base memory: 640 KiB
  rtc.set_nvram(0x16, 0x02);
  const uint64_t below_4g = ram_bytes < k4G ? ram_bytes : k4G;
  const uint64_t ext_kib = below_4g > kMiB ? (below_4g - kMiB) / kKiB : 0;
  const uint16_t ext = static_cast<uint16_t>(ext_kib > 0xFFFF ? 0xFFFF : ext_kib);  // KiB above 1 MiB
  rtc.set_nvram(0x17, static_cast<uint8_t>(ext));
  rtc.set_nvram(0x18, static_cast<uint8_t>(ext >> 8));
  rtc.set_nvram(0x30, static_cast<uint8_t>(ext));
  rtc.set_nvram(0x31, static_cast<uint8_t>(ext >> 8));
  const uint64_t hi_64k = below_4g > 16 * kMiB ? (below_4g - 16 * kMiB) >> 16 : 0;  // 64 KiB units above 16 MiB
  const uint16_t hi = static_cast<uint16_t>(hi_64k > 0xFFFF ? 0xFFFF : hi_64k);
  rtc.set_nvram(0x34, static_cast<uint8_t>(hi));
  rtc.set_nvram(0x35, static_cast<uint8_t>(hi >> 8));
  const uint64_t above = (ram_bytes - below_4g) >> 16;  // 64 KiB units above 4 GiB (3 bytes)
  rtc.set_nvram(0x5B, static_cast<uint8_t>(above));
  rtc.set_nvram(0x5C, static_cast<uint8_t>(above >> 8));
  rtc.set_nvram(0x5D, static_cast<uint8_t>(above >> 16));
  rtc.set_nvram(0x5F, static_cast<uint8_t>(vcpus - 1));  // QEMU: CPUs - 1
}

// --- port glue ----------------------------------------------------------------------------------

Vm& vm_of(void* ctx) { return *static_cast<Vm*>(ctx); }

uint32_t pic_read(void* ctx, Vcpu&, uint16_t port, unsigned) {
  Vm& vm = vm_of(ctx);
  chipset_poll(vm, x86::rdtsc());
  return vm.chipset.pic.read(port);
}
void pic_write(void* ctx, Vcpu&, uint16_t port, unsigned, uint32_t v) {
  Vm& vm = vm_of(ctx);
  chipset_poll(vm, x86::rdtsc());
  const bool before = vm.chipset.pic.output();
  vm.chipset.pic.write(port, static_cast<uint8_t>(v));
  // An unmask or EOI can raise INTR as well as a new request can.
  if (!before && vm.chipset.pic.output()) apic_pic_intr_raised(vm);
}

uint32_t pit_read(void* ctx, Vcpu&, uint16_t port, unsigned) {
  Vm& vm = vm_of(ctx);
  const uint64_t tsc = x86::rdtsc();
  chipset_poll(vm, tsc);
  // No change of what is due: a read only latches or reports (kernels calibrate with loops
  // of these, which must stay cheap).
  return vm.chipset.pit.read(port, now_of(vm, tsc).pit);
}
void pit_write(void* ctx, Vcpu&, uint16_t port, unsigned, uint32_t v) {
  Vm& vm = vm_of(ctx);
  const uint64_t tsc = x86::rdtsc();
  chipset_poll(vm, tsc);
  vm.chipset.pit.write(port, static_cast<uint8_t>(v), now_of(vm, tsc).pit);
  vm.chipset.poll_cache.changed();  // the next interrupt may have moved
}

uint32_t rtc_read(void* ctx, Vcpu&, uint16_t port, unsigned) {
  Vm& vm = vm_of(ctx);
  const uint64_t tsc = x86::rdtsc();
  chipset_poll(vm, tsc);
  const uint32_t r = vm.chipset.rtc.read(port, now_of(vm, tsc).rtc);
  // A read can change what is due: reading register C clears IRQF, which allows the next
  // interrupt (Rtc::next_irq_tick).
  vm.chipset.poll_cache.changed();
  return r;
}
void rtc_write(void* ctx, Vcpu&, uint16_t port, unsigned, uint32_t v) {
  Vm& vm = vm_of(ctx);
  const uint64_t tsc = x86::rdtsc();
  chipset_poll(vm, tsc);
  vm.chipset.rtc.write(port, static_cast<uint8_t>(v), now_of(vm, tsc).rtc);
  vm.chipset.poll_cache.changed();  // the next interrupt may have moved
}

void guest_reset(Vcpu& vcpu, const char* why) {
  Vm& vm = vcpu.vm();
  vm.uart.flush();
  // A clean stop: hv does not restart guests. Stopping vCPU 0 finishes the VM (the runner
  // asks the others to finish once vCPU 0 has ended).
  vcpu.stop(false, "guest requested reset (%s)", why);
}

uint32_t pci_read(void* ctx, Vcpu&, uint16_t port, unsigned size) {
  Vm& vm = vm_of(ctx);
  if (port == 0xCF9 && size == 1) return vm.chipset.reset_ctl.read(port);
  return vm.chipset.pci.read(port, size);
}
void pci_write(void* ctx, Vcpu& vcpu, uint16_t port, unsigned size, uint32_t v) {
  Vm& vm = vm_of(ctx);
  if (port == 0xCF9 && size == 1) {
    const char* why = nullptr;
    if (vm.chipset.reset_ctl.write(port, static_cast<uint8_t>(v), &why)) guest_reset(vcpu, why);
    return;
  }
  vm.chipset.pci.write(port, size, v);
}

uint32_t ctl_read(void* ctx, Vcpu&, uint16_t port, unsigned) { return vm_of(ctx).chipset.reset_ctl.read(port); }
void ctl_write(void* ctx, Vcpu& vcpu, uint16_t port, unsigned, uint32_t v) {
  const char* why = nullptr;
  if (vm_of(ctx).chipset.reset_ctl.write(port, static_cast<uint8_t>(v), &why)) guest_reset(vcpu, why);
}

uint32_t post_read(void* ctx, Vcpu&, uint16_t, unsigned) { return vm_of(ctx).chipset.post_code.load(mmu::Order::relaxed); }
void post_write(void* ctx, Vcpu&, uint16_t, unsigned, uint32_t v) {
  vm_of(ctx).chipset.post_code.store(v & 0xFF, mmu::Order::relaxed);
}

struct PortRange {
  const char* name;
  uint16_t base, count;
  uint32_t (*read)(void*, Vcpu&, uint16_t, unsigned);
  void (*write)(void*, Vcpu&, uint16_t, unsigned, uint32_t);
  bool quiet = false;  // IoDevice::quiet: nothing but the device's own state changes
};
constexpr PortRange kPorts[] = {
    {"pic-master", 0x20, 2, pic_read, pic_write},
    {"pic-slave", 0xA0, 2, pic_read, pic_write},
    {"elcr", 0x4D0, 2, pic_read, pic_write},
    {"pit", 0x40, 4, pit_read, pit_write},
    {"port-b", 0x61, 1, pit_read, pit_write},
    {"rtc", 0x70, 2, rtc_read, rtc_write},
    {"i8042-data", 0x60, 1, ctl_read, ctl_write},
    {"i8042-cmd", 0x64, 1, ctl_read, ctl_write},
    {"port-a", 0x92, 1, ctl_read, ctl_write},
    {"pci-conf", 0xCF8, 8, pci_read, pci_write},
    {"post", 0x80, 1, post_read, post_write, true},
};

}  // namespace

// --- the IOAPIC page ----------------------------------------------------------------------------

uint64_t IoapicMmio::mmio_read(Vcpu&, uint64_t offset, unsigned size) {
  chipset_poll(*vm, x86::rdtsc());  // a guest polling an entry's remote IRR sees what is due
  if (size != 4 && !(offset == 0 && size == 1)) return 0;
  return vm->chipset.ioapic.read(offset);
}

void IoapicMmio::mmio_write(Vcpu&, uint64_t offset, unsigned size, uint64_t value) {
  if (size != 4 && !(offset == 0 && size == 1)) return;
  Ioapic::Out out;
  vm->chipset.ioapic.write(offset, static_cast<uint32_t>(value), out);
  ioapic_send(*vm, out);
}

// --- hv's console input -------------------------------------------------------------------------

// One VM owns the console input: the bytes hv's own COM1 receives go to that VM's 16550.
// vm1 (the first multiboot guest) by default. One CPU at a time reads the host UART
// (try-lock: a poll that finds another CPU at it just skips).
constexpr unsigned kConsoleVm = 1;
// How often, at least, the console VM's entries look for console input (chipset_poll_due).
constexpr uint64_t kConsolePollUs = 1000;
x86::SpinLock g_console_in_lock;

void poll_console_input(Vm& vm) {
  if (vm.id() != kConsoleVm || !g_console_in_lock.try_lock_for(x86::cpu_index(), 1)) return;
  unsigned char c;
  // Only as many bytes as the guest's FIFO takes: the rest wait in hv's own port (and the
  // emulator's or terminal's buffer behind it) until the guest has read these.
  for (unsigned room = vm.uart.rx_room(); room && x86::serial::try_getc(&c); room--) vm.uart.receive(c);
  g_console_in_lock.unlock();
}

// --- time ---------------------------------------------------------------------------------------

void chipset_poll(Vm& vm, uint64_t host_tsc) {
  if (!vm.chipset.tsc_hz) return;  // no chipset on this VM
  poll_console_input(vm);
  const Now n = now_of(vm, host_tsc);
  if (vm.chipset.pit.poll(n.pit)) {
    irq_set_level(vm, 0, true);
    irq_set_level(vm, 0, false);
  }
  if (vm.chipset.rtc.poll(n.rtc)) {
    irq_set_level(vm, 8, true);
    irq_set_level(vm, 8, false);
  }
}

uint64_t chipset_poll_due(Vm& vm, uint64_t host_tsc) {
  Chipset& c = vm.chipset;
  if (!c.tsc_hz) return ~0ull;
  uint64_t deadline;
  if (c.poll_cache.lookup(host_tsc, &deadline)) return deadline;
  // Poll, then publish what the devices said (dropped if a port access changed them meanwhile).
  const uint64_t gen = c.poll_cache.begin();
  chipset_poll(vm, host_tsc);
  deadline = chipset_next_deadline(vm);
  uint64_t poll_at = deadline;
  if (vm.id() == kConsoleVm) {
    // hv's serial port raises no interrupt: its input is looked at when the chipset is polled,
    // so poll at least this often while there is a console to read.
    const uint64_t console_at = host_tsc + x86::timer::tsc_khz() * kConsolePollUs / 1000;
    if (console_at < poll_at) poll_at = console_at;
  }
  c.poll_cache.publish(gen, poll_at, deadline);
  return deadline;
}

uint64_t chipset_next_deadline(Vm& vm) {
  Chipset& c = vm.chipset;
  if (!c.tsc_hz) return ~0ull;
  const Now n = now_of(vm, x86::rdtsc());
  uint64_t best = ~0ull;
  const uint64_t p = c.pit.next_irq_tick(n.pit);
  if (p != Pit::kNever) best = unscale(p, Pit::kHz, c.tsc_hz);
  const uint64_t r = c.rtc.next_irq_tick(n.rtc);
  if (r != Rtc::kNever) {
    const uint64_t t = unscale(r, Rtc::kHz, c.tsc_hz);
    if (t < best) best = t;
  }
  return best == ~0ull ? best : best + vm.tsc_origin;
}

const char* add_chipset(Vm& vm, unsigned vcpus) {
  Chipset& c = vm.chipset;
  c.tsc_hz = x86::timer::tsc_khz() * 1000;
  if (!c.tsc_hz) return "the chipset needs the TSC rate, and it is unknown";
  c.pic.reset();
  c.pit.reset();
  c.ioapic.reset();
  {
    // The IOAPIC's ID is the one the MADT and the MP table give it (hv/devices/acpi_tables.h:
    // the first ID after the vCPUs' APIC IDs), as firmware would have programmed it.
    Ioapic::Out none;
    c.ioapic.write(0x00, 0, none);  // IOREGSEL = IOAPICID
    c.ioapic.write(0x10, static_cast<uint32_t>(acpi::ioapic_id(vcpus ? vcpus : 1)) << 24, none);
  }
  c.pci.reset();
  c.reset_ctl.reset();
  c.post_code.store(0, mmu::Order::relaxed);
  uint64_t secs = host_rtc_seconds();
  const bool host_clock = secs != 0;
  if (!host_clock) secs = kFallbackEpoch;
  c.rtc.reset(secs, now_of(vm, x86::rdtsc()).rtc);
  fill_nvram(c.rtc, vm.ram_bytes(), vcpus ? vcpus : 1);
  const Rtc::DateTime t = Rtc::from_seconds(secs);
  x86::log::info("vm%u: chipset: PIC, PIT, RTC (%04u-%02u-%02u %02u:%02u:%02u from %s), IOAPIC at 0x%lx, PCI host bridge", vm.id(),
                 t.year, t.month, t.day, t.hour, t.minute, t.second, host_clock ? "hv's CMOS clock" : "a fixed date",
                 Ioapic::kBase);
  for (const PortRange& r : kPorts) {
    IoDevice d{};
    d.name = r.name;
    d.base = r.base;
    d.count = r.count;
    d.ctx = &vm;
    d.read = r.read;
    d.write = r.write;
    d.quiet = r.quiet;
    if (const char* err = vm.io.claim(d)) return err;
  }
  // The 16550 at COM1 drives ISA IRQ4.
  vm.uart.attach_irq([](void* ctx, bool level) { irq_set_level(*static_cast<Vm*>(ctx), 4, level); }, &vm);
  c.ioapic_mmio.vm = &vm;
  if (!vm.mmio.add(Ioapic::kBase, Ioapic::kSize, &c.ioapic_mmio)) return "the IOAPIC page could not be added to the MMIO bus";
  return nullptr;
}

}  // namespace hv
