// ACPI table layouts (ACPI specification 6.x): the RSDP (5.2.5), the system description
// header (5.2.6), the generic address structure (5.2.3.2), the FADT (5.2.9, revision 6: 276
// bytes), the FACS (5.2.10) and the MADT with the entries hv reads or writes (5.2.12). One
// definition for both directions: arch/x86/acpi.cpp parses the host firmware's tables, and
// hv/devices/acpi_tables.cpp builds a guest's. Every struct is packed and its size and the
// offsets code relies on are pinned by static_assert.
#pragma once

#include <stdint.h>

namespace x86::acpi {

struct [[gnu::packed]] Rsdp {
  char signature[8];  // "RSD PTR "
  uint8_t checksum;   // bytes 0-19
  char oem_id[6];
  uint8_t revision;   // 2: ACPI 2.0+
  uint32_t rsdt;
  uint32_t length;    // 36
  uint64_t xsdt;
  uint8_t ext_checksum;  // all 36 bytes
  uint8_t reserved[3];
};
static_assert(sizeof(Rsdp) == 36 && __builtin_offsetof(Rsdp, rsdt) == 16 && __builtin_offsetof(Rsdp, xsdt) == 24);

struct [[gnu::packed]] SdtHeader {
  char signature[4];
  uint32_t length;
  uint8_t revision;
  uint8_t checksum;
  char oem_id[6];
  char oem_table_id[8];
  uint32_t oem_revision;
  char creator_id[4];
  uint32_t creator_revision;
};
static_assert(sizeof(SdtHeader) == 36);

// Generic address structure (5.2.3.2).
struct [[gnu::packed]] Gas {
  uint8_t space;  // 1: system I/O
  uint8_t bit_width, bit_offset, access_size;  // access size 1 byte .. 4 qword
  uint64_t address;
};
static_assert(sizeof(Gas) == 12);

struct [[gnu::packed]] Fadt {
  SdtHeader h;
  uint32_t firmware_ctrl, dsdt;
  uint8_t reserved0, preferred_pm_profile;
  uint16_t sci_int;
  uint32_t smi_cmd;
  uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
  uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
  uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
  uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
  uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
  uint16_t iapc_boot_arch;
  uint8_t reserved1;
  uint32_t flags;
  Gas reset_reg;
  uint8_t reset_value;
  uint16_t arm_boot_arch;
  uint8_t minor_version;
  uint64_t x_firmware_ctrl, x_dsdt;
  Gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk, x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk,
      x_gpe1_blk, sleep_control_reg, sleep_status_reg;
  uint64_t hypervisor_vendor;
};
static_assert(sizeof(Fadt) == 276 && __builtin_offsetof(Fadt, sci_int) == 46 &&
              __builtin_offsetof(Fadt, pm1a_evt_blk) == 56 && __builtin_offsetof(Fadt, pm1a_cnt_blk) == 64 &&
              __builtin_offsetof(Fadt, pm_tmr_blk) == 76 && __builtin_offsetof(Fadt, pm1_evt_len) == 88 &&
              __builtin_offsetof(Fadt, century) == 108 && __builtin_offsetof(Fadt, iapc_boot_arch) == 109 &&
              __builtin_offsetof(Fadt, flags) == 112 && __builtin_offsetof(Fadt, reset_reg) == 116 &&
              __builtin_offsetof(Fadt, reset_value) == 128 && __builtin_offsetof(Fadt, x_firmware_ctrl) == 132 &&
              __builtin_offsetof(Fadt, x_dsdt) == 140 && __builtin_offsetof(Fadt, x_pm1a_evt_blk) == 148 &&
              __builtin_offsetof(Fadt, x_pm1a_cnt_blk) == 172 && __builtin_offsetof(Fadt, x_pm_tmr_blk) == 208 &&
              __builtin_offsetof(Fadt, sleep_control_reg) == 244 && __builtin_offsetof(Fadt, hypervisor_vendor) == 268);
// FADT flags and IAPC_BOOT_ARCH bits (5.2.9.3, 5.2.9.4).
inline constexpr uint32_t kFadtWbinvd = 1u << 0, kFadtProcC1 = 1u << 2, kFadtPwrButton = 1u << 4,
                          kFadtSlpButton = 1u << 5, kFadtTmrValExt = 1u << 8, kFadtResetRegSup = 1u << 10;
inline constexpr uint16_t kBootArchLegacyDevices = 1u << 0, kBootArch8042 = 1u << 1, kBootArchNoVga = 1u << 2;

struct [[gnu::packed]] Facs {
  char signature[4];  // "FACS"
  uint32_t length;    // 64
  uint32_t hardware_signature;
  uint32_t waking_vector;
  uint32_t global_lock;
  uint32_t flags;
  uint64_t x_waking_vector;
  uint8_t version;  // 2
  uint8_t reserved0[3];
  uint32_t ospm_flags;
  uint8_t reserved1[24];
};
static_assert(sizeof(Facs) == 64);

struct [[gnu::packed]] MadtHeader {
  SdtHeader h;
  uint32_t lapic_address;
  uint32_t flags;  // bit 0 PCAT_COMPAT: dual 8259s present
};
static_assert(sizeof(MadtHeader) == 44);
struct [[gnu::packed]] MadtLapic {
  uint8_t type, length;  // 0, 8
  uint8_t uid, apic_id;
  uint32_t flags;  // bit 0 enabled
};
struct [[gnu::packed]] MadtIoapic {
  uint8_t type, length;  // 1, 12
  uint8_t id, reserved;
  uint32_t address, gsi_base;
};
struct [[gnu::packed]] MadtOverride {
  uint8_t type, length;  // 2, 10
  uint8_t bus, source;
  uint32_t gsi;
  uint16_t flags;  // bits 1:0 polarity (1 high, 3 low), 3:2 trigger (1 edge, 3 level); 0 conforms
};
struct [[gnu::packed]] MadtLapicNmi {
  uint8_t type, length;  // 4, 6
  uint8_t uid;           // 0xFF: all processors
  uint16_t flags;
  uint8_t lint;
};
static_assert(sizeof(MadtLapic) == 8 && sizeof(MadtIoapic) == 12 && sizeof(MadtOverride) == 10 && sizeof(MadtLapicNmi) == 6);

// MADT entry types (5.2.12, table 5.21).
enum MadtType : uint8_t {
  kMadtLocalApic = 0,
  kMadtIoApic = 1,
  kMadtOverride = 2,
  kMadtLapicNmi = 4,
  kMadtLapicAddressOverride = 5,
  kMadtLocalX2Apic = 9,
};

}  // namespace x86::acpi
