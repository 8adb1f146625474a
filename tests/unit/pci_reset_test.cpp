// PCI configuration mechanism #1 (hv/devices/pci_host.h) and the reset controls
// (hv/devices/reset.h): the host bridge, "no device", the reset requests, the i8042 commands.
#include <catch2/catch.hpp>

#include "hv/devices/pci_host.h"
#include "hv/devices/reset.h"

using hv::PciHost;
using hv::ResetControl;

TEST_CASE("pci: host bridge at 00:00.0, all ones elsewhere and when disabled", "[pci]") {
  PciHost p;
  p.reset();
  CHECK(p.read(0xCFC, 4) == 0xFFFFFFFFu);  // enable bit clear
  p.write(0xCF8, 4, 0x80000000u);
  CHECK(p.read(0xCF8, 4) == 0x80000000u);
  CHECK(p.read(0xCFC, 4) == 0x12378086u);
  CHECK(p.read(0xCFC, 2) == 0x8086u);
  CHECK(p.read(0xCFE, 2) == 0x1237u);
  CHECK(p.read(0xCFF, 1) == 0x12u);
  p.write(0xCF8, 4, 0x80000008u);
  CHECK(p.read(0xCFC, 4) == 0x06000002u);
  p.write(0xCF8, 4, 0x8000000Eu);  // header type byte at 0x0E: 0, low bits of the address ignored
  CHECK(p.read(0xCF8, 4) == 0x8000000Cu);
  CHECK(p.read(0xCFE, 1) == 0u);
  p.write(0xCF8, 4, 0x80000800u);  // 00:01.0
  CHECK(p.read(0xCFC, 4) == 0xFFFFFFFFu);
  CHECK(p.read(0xCFC, 2) == 0xFFFFu);
  p.write(0xCF8, 4, 0x80010000u);  // 01:00.0
  CHECK(p.read(0xCFC, 4) == 0xFFFFFFFFu);
  p.write(0xCF8, 1, 0x00);  // not the address register
  CHECK(p.read(0xCF8, 4) == 0x80010000u);
}

TEST_CASE("reset: 0xcf9, port 0x92 and the i8042 request resets; A20 stays on", "[reset]") {
  ResetControl r;
  r.reset();
  const char* why = nullptr;
  CHECK_FALSE(r.write(0xCF9, 0x02, &why));
  CHECK(r.read(0xCF9) == 0x02);
  CHECK(r.write(0xCF9, 0x06, &why));
  CHECK(why != nullptr);
  CHECK(r.read(0x92) == 0x02);
  CHECK_FALSE(r.write(0x92, 0x02, &why));
  CHECK(r.write(0x92, 0x03, &why));
  CHECK_FALSE(r.write(0x92, 0x03, &why));  // no new rising edge
  // i8042: status without data, self-test, command byte, output port.
  CHECK((r.read(0x64) & 0x01) == 0);
  CHECK_FALSE(r.write(0x64, 0xAA, &why));
  CHECK((r.read(0x64) & 0x01) == 1);
  CHECK(r.read(0x60) == 0x55);
  CHECK((r.read(0x64) & 0x01) == 0);
  CHECK_FALSE(r.write(0x64, 0x60, &why));
  CHECK_FALSE(r.write(0x60, 0x61, &why));
  CHECK_FALSE(r.write(0x64, 0x20, &why));
  CHECK(r.read(0x60) == 0x61);
  CHECK_FALSE(r.write(0x64, 0xD1, &why));
  CHECK_FALSE(r.write(0x60, 0xDF, &why));  // A20 on, reset line high
  CHECK_FALSE(r.write(0x64, 0xD1, &why));
  CHECK(r.write(0x60, 0xDE, &why));
  CHECK(r.write(0x64, 0xFE, &why));
}
