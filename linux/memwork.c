// memwork: the memory workload that runs inside the Linux guest (issue 12).
//
//   memwork [--corrupt] [MIB [CHILDREN [FILE_MIB]]]   defaults: 64 MiB, 2 children, 16 MiB file
//
// --corrupt flips one bit of the parent's buffer between fill and check: the run must then say
// FAIL (the scenarios use it to show that the check can fail).
//
// 1. The parent maps MIB MiB of anonymous memory, fills every 8-byte word with a value derived
//    from its index and a seed (so a page that is lost, swapped with another or zeroed is seen),
//    and checks it.
// 2. It forks CHILDREN children, which run at the same time. Each child checks the parent's
//    buffer (inherited copy-on-write), overwrites it with its own seed (every page is copied
//    now: MIB MiB of new memory per child), checks that, and exits 0 or 1. The parent waits for
//    all of them and checks its own buffer again: the children's writes must not show through.
//    Peak memory: about (1 + CHILDREN) x MIB MiB, plus FILE_MIB.
// 3. It writes FILE_MIB MiB to a file in /tmp (tmpfs: page cache memory) while summing it, reads
//    it back, and compares the sums.
// Output: one line per step and a last line "memwork: PASS ..." or "memwork: FAIL: ..."; exit
// status 0 on PASS, 1 on FAIL, 2 on bad arguments. Built static with the host compiler
// (linux/CMakeLists.txt) and put into the initramfs as /bin/memwork.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void fail(const char* what, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char* what, ...) {
  va_list ap;
  va_start(ap, what);
  printf("memwork: error: ");
  vprintf(what, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  failures++;
}

// The value word i of a buffer filled with `seed` holds: i times an odd constant, xor the seed.
// Every word of a page differs from every other word of the buffer, so a page that is lost,
// zeroed or swapped with another is seen, and two seeds disagree on every word. It is kept this
// cheap (the compiler turns the product into an addition) because the workload also runs in an
// emulator at some 50 M instructions per second: the page faults should dominate, not the mixing.
static inline uint64_t word_value(uint64_t seed, uint64_t i) { return (i * 0x9E3779B97F4A7C15ull) ^ seed; }

static void fill(uint64_t* p, size_t words, uint64_t seed) {
  for (size_t i = 0; i < words; i++) p[i] = word_value(seed, i);
}

// Returns the number of wrong words (reports the first few).
static size_t check(const char* who, const uint64_t* p, size_t words, uint64_t seed) {
  size_t bad = 0;
  for (size_t i = 0; i < words; i++) {
    if (p[i] != word_value(seed, i)) {
      if (bad < 3)
        fail("%s: word %zu (offset 0x%zx) is 0x%016llx, expected 0x%016llx", who, i, i * 8,
             (unsigned long long)p[i], (unsigned long long)word_value(seed, i));
      bad++;
    }
  }
  if (bad > 3) fail("%s: %zu wrong words in all", who, bad);
  return bad;
}

static uint64_t* map_mib(size_t mib) {
  void* p = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    fail("mmap of %zu MiB: %s", mib, strerror(errno));
    return NULL;
  }
  return p;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int child_main(unsigned n, uint64_t* parent_buf, size_t parent_words, uint64_t parent_seed) {
  char who[64];
  snprintf(who, sizeof who, "child %u (inherited)", n);
  if (check(who, parent_buf, parent_words, parent_seed)) return 1;
  const uint64_t seed = 0xC0FFEE00ull + n;
  fill(parent_buf, parent_words, seed);  // copy-on-write: every page becomes the child's own
  snprintf(who, sizeof who, "child %u (copied)", n);
  return check(who, parent_buf, parent_words, seed) ? 1 : 0;
}

// tmpfs: write the file in 64 KiB chunks while summing, read it back and sum again.
static void file_check(size_t mib) {
  const char* path = "/tmp/memwork.dat";
  enum { kChunk = 64 * 1024 };
  static uint64_t buf[kChunk / 8];
  int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
  if (fd < 0) {
    fail("open %s: %s", path, strerror(errno));
    return;
  }
  // FNV-style: xor each word in, multiply by a 64-bit prime (order matters, unlike a sum).
  uint64_t sum_w = 0xCBF29CE484222325ull, sum_r = 0xCBF29CE484222325ull;
  const size_t chunks = (mib << 20) / kChunk;
  for (size_t c = 0; c < chunks; c++) {
    fill(buf, kChunk / 8, 0xF11E0000ull + c);
    for (size_t i = 0; i < kChunk / 8; i++) sum_w = (sum_w ^ buf[i]) * 0x100000001B3ull;
    if (write(fd, buf, kChunk) != kChunk) {
      fail("write %s: %s", path, strerror(errno));
      close(fd);
      return;
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0) fail("lseek: %s", strerror(errno));
  for (size_t c = 0; c < chunks; c++) {
    if (read(fd, buf, kChunk) != kChunk) {
      fail("read %s: %s", path, strerror(errno));
      close(fd);
      return;
    }
    for (size_t i = 0; i < kChunk / 8; i++) sum_r = (sum_r ^ buf[i]) * 0x100000001B3ull;
  }
  close(fd);
  unlink(path);
  if (sum_w != sum_r)
    fail("tmpfs file: checksum 0x%016llx read back, 0x%016llx written", (unsigned long long)sum_r,
         (unsigned long long)sum_w);
  else
    printf("memwork: tmpfs file of %zu MiB: checksum 0x%016llx matches\n", mib, (unsigned long long)sum_w);
}

static int parse(const char* s, size_t* out, size_t max) {
  char* end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > max) return 0;
  *out = v;
  return 1;
}

int main(int argc, char** argv) {
  size_t mib = 64, children = 2, file_mib = 16;
  int corrupt = 0;
  if (argc > 1 && strcmp(argv[1], "--corrupt") == 0) {
    corrupt = 1;
    argv++;
    argc--;
  }
  if ((argc > 1 && !parse(argv[1], &mib, 1 << 20)) || (argc > 2 && !parse(argv[2], &children, 64)) ||
      (argc > 3 && !parse(argv[3], &file_mib, 1 << 20)) || argc > 4 || mib == 0) {
    fprintf(stderr, "usage: memwork [--corrupt] [MIB (>0) [CHILDREN (0-64) [FILE_MIB]]]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  const double t0 = now_s();
  const size_t words = (mib << 20) / 8;
  const uint64_t seed = 0x5EED0000ull ^ (uint64_t)getpid();
  uint64_t* buf = map_mib(mib);
  if (buf) {
    fill(buf, words, seed);
    if (corrupt) buf[words / 2 + 7] ^= 1ull << 17;
    if (!check("parent", buf, words, seed)) printf("memwork: parent: %zu MiB filled and checked\n", mib);
  }
  if (buf && children) {
    for (size_t n = 0; n < children; n++) {
      pid_t pid = fork();
      if (pid < 0) {
        fail("fork: %s", strerror(errno));
        break;
      }
      if (pid == 0) _exit(child_main((unsigned)n, buf, words, seed));
    }
    for (;;) {
      int st;
      pid_t pid = wait(&st);
      if (pid < 0) break;
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("child %d ended with %s %d", (int)pid, WIFEXITED(st) ? "status" : "signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    if (!check("parent after children", buf, words, seed))
      printf("memwork: %zu children (each checked and rewrote its %zu MiB copy) done; parent unchanged\n",
             children, mib);
  }
  if (buf) munmap(buf, mib << 20);
  if (file_mib) file_check(file_mib);
  const double secs = now_s() - t0;
  if (failures) {
    printf("memwork: FAIL: %d error(s) (%.1f s)\n", failures, secs);
    return 1;
  }
  printf("memwork: PASS (%zu MiB, %zu children, %zu MiB tmpfs file, %.1f s)\n", mib, children, file_mib, secs);
  return 0;
}
