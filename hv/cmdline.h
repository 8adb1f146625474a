// The kernel command line (the words after "multiboot2 /boot/hv.elf" in grub.cfg).
//
// Words are separated by blanks; a word is "key" or "key=value". Known keys:
//   loglevel=error|warn|info|debug   logger threshold (default info)
//   nosmp                            don't start the application processors
//   hv.test=pagefault|null|ud|panic  provoke a failure on purpose (tests the fatal paths)
//   hv.test=bad-guest-state          clear guest CR0.NE in vCPU 0's VMCS: VM entry fails
//   hv.test=reset                    reset the machine after the SMP bring-up (the reset path)
//   hv.console=raw                   vm1's 16550 sends its bytes to hv's console as they come,
//                                    without the "vmN: " line prefix (an interactive guest
//                                    shell: tools/hv run --guest linux; hv/devices/uart.h)
//   hv.fb=on|off                     the framebuffer console (default on when GRUB set a
//                                    graphics or EGA text mode; arch/x86/fb_console.h)
//   hv.poweroff=auto|acpi|reset      how hv ends: auto (QEMU isa-debug-exit, then ACPI S5),
//                                    acpi (ACPI S5 only, as on real machines), reset
//   hv.apicv=on|off                  the local APIC's hardware path (VMX APIC virtualization,
//                                    hv/apicv.h; default on where the CPU offers it) or software
//   hv.apicv-access=off|tpr|vid      with hv.apicv=on: the xAPIC page emulated at every access
//                                    (off), or through the CPU's "virtualize APIC accesses"
//                                    with hv injecting (tpr) or with virtual-interrupt delivery
//                                    (vid); default vid where the CPU also has posted
//                                    interrupts, else off (hv/apicv.cpp says why)
//   hv.apicv-ack-exit=1              test knob: "acknowledge interrupt on exit" with the
//                                    hardware path even without posted interrupts
//   hv.vcpus=N                       at most N vCPUs (default: one per CPU, at most 4)
//   hv.time-limit-ms=N               every VM's vCPUs stop after the VM ran N ms (default
//                                    120000, 0: no limit; hv/vm_runner.h)
//   hv.noguest                       VMX bring-up only, even if a guest module is loaded
//   hv.guest=unbacked|triple-fault|bad-msr|spin  make the memtouch guest misbehave on purpose
//   hv.run=NAME                      run the multiboot v1 guest in GRUB module NAME (e.g.
//                                    guest-hcall) instead of memtouch (hv/guest_loader.h);
//                                    hv.run=A,B,... runs up to four VMs at once
//                                    (hv/guest_run.cpp), each with hv.vcpus vCPUs (default 1
//                                    for multiboot guests); an entry IMAGE:LINE runs module
//                                    IMAGE with module LINE's GRUB command line (one image,
//                                    several VMs with lines of their own)
//   hv.ap-start=hv|sipi              how a multiboot guest's vCPUs 1..N-1 start: hv's own
//                                    protocol at the image entry (default), or waiting for
//                                    INIT/SIPI as on a PC (hv/vm_runner.h set_ap_start_sipi)
//   hv.pt-limit=N                    every VM's MMU may hold at most N pages (0: no limit)
//                                    instead of the default sized from its memory
//                                    (hv/pt_limit.h); beyond, the VM stops with a report
//   hv.dirty=wp|ad|pml               dirty-log mechanism of every VM (hv/dirty_log.h; default
//                                    the best the CPU offers: ad with EPT A/D bits, else wp)
//   hv.zap-backlog=N                 fast-zap backpressure: a fast zap finishes the teardown
//                                    of all but the last N invalidations (default 2; 0: none,
//                                    so invalid roots can pile up: for tests that need them)
//   hv.fault-around=N                a 4 KiB or 2 MiB EPT fault also maps up to N not yet
//                                    mapped neighbours of its size in its slot and table (default
//                                    GuestMmu::kDefaultFaultAround; 0: off; at most 511)
//   hv.guest-mem=MiB                 boot RAM of each multiboot guest's VM (default 32, a
//                                    multiple of 2, at most 3072; its pool grows with it:
//                                    hv/guest_run.cpp); a VM that hv's free memory can't hold
//                                    is not started (clear error, FAIL)
//   hv.guest-mods=A,B,...            GRUB modules A, B, ... handed to each multiboot guest as
//                                    its multiboot modules (at most 8), each with its GRUB
//                                    command line as its string
//   hv.migrate-ms=N                  live migration (hv/migrate.h, docs/migration.md): N ms
//                                    after each multiboot/Linux VM started, hv moves it to a
//                                    new VM on the same machine; hv.migrate-rounds=R pre-copy
//                                    rounds (default 3), hv.migrate-step-pages=P pages copied
//                                    per safe-point step (default 512);
//                                    hv.migrate-test=lose-final-copy (test knob) skips the
//                                    memory copy of the stop-and-copy at and above
//                                    hv.migrate-test-lose-gpa (default 0): the guest must notice
//   -- ARGS...                       everything after the word "--" is the guests' arguments:
//                                    each multiboot guest's command line becomes "NAME ARGS"
//                                    instead of its GRUB module's line (hv/guest_run.cpp);
//                                    hv reads no option after "--"
//   hv.backing=4k|2m|1g, hv.pool-mib=N, hv.bench-*   the multiboot guest's largest EPT leaf,
//                                    its RAM pool, and the benchmark guest's parameters
//                                    (hv/bench_vm.h; tools/hv bench --guest)
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace hv::cmdline {

void set(const char* line);
// True if the word `key` or "key=..." is present (before "--").
bool has(const char* key);
// What follows the word "--" (leading blanks skipped; "" when nothing does), or nullptr when
// the command line has no "--".
const char* guest_args();
// Copies the value of "key=value" into buf (NUL-terminated); false when absent.
bool get(const char* key, char* buf, size_t size);
// The decimal value of "key=N", or `fallback` when the key is absent, empty or not a number
// (a malformed value is reported on the console).
uint64_t get_number(const char* key, uint64_t fallback);

}  // namespace hv::cmdline
