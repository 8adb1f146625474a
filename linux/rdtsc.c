// rdtsc: prints the time-stamp counter in decimal. /init prints it with the shell marker, so a
// boot's cost can be read in TSC ticks since the machine's reset (Bochs and QEMU start the TSC
// at 0; under hv the guest's TSC offset decides where its count starts). Static, host compiler.
#include <stdint.h>
#include <stdio.h>

int main(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  printf("%llu\n", (unsigned long long)(((uint64_t)hi << 32) | lo));
  return 0;
}
