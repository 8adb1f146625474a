#include "tests/host/host_platform.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mmu {
// Host flavour of the MMU's fatal-inconsistency hook: print and abort, so the test fails loudly.
[[noreturn]] void panic(const char* file, int line, const char* what) {
  std::fprintf(stderr, "MMU PANIC at %s:%d: %s\n", file, line, what);
  std::abort();
}
}  // namespace mmu

namespace hvtest {
namespace {
thread_local unsigned t_cpu_id = 0;
// Quarantine at most this many freed pages; older ones are checked and released.
constexpr size_t kQuarantineMax = 1 << 16;
}  // namespace

HostCpu::HostCpu(unsigned id) : previous_(t_cpu_id) { t_cpu_id = id; }
HostCpu::~HostCpu() { t_cpu_id = previous_; }

HostPlatform::HostPlatform(unsigned cpus, Fences fences) : cpus_(cpus) {
  if (cpus_ == 0 || cpus_ > kMaxCpus) cpus_ = 4;
  // Before any MMU object exists (mmu/platform.h): the lock and the epoch read it once.
  asymmetric_fences_ = fences == Fences::asymmetric && membarrier_available();
}

HostPlatform::Fences HostPlatform::default_fences() {
  const char* e = std::getenv("HV_HOST_FENCES");
  return e != nullptr && std::strcmp(e, "symmetric") == 0 ? Fences::symmetric : Fences::asymmetric;
}

bool HostPlatform::membarrier_available() {
  // Registration is per process and must come before the first expedited barrier; a static
  // local does it once, thread-safely.
  static const bool ok = [] {
    const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return ok;
}

// Every CPU running a thread of this process executes a full memory barrier before the call
// returns (threads that are not running pass one when the kernel switches to them). A failure
// here would silently break the lock and the epoch: abort instead.
void HostPlatform::serialize_all_cpus() {
  heavy_fences_.fetch_add(1, mmu::Order::relaxed);
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
    std::perror("membarrier");
    std::abort();
  }
}

void HostPlatform::reserve_pages(size_t n) {
  std::vector<void*> pages;
  pages.reserve(n);
  for (size_t i = 0; i < n; i++) {
    void* p = std::aligned_alloc(mmu::kPageSize, mmu::kPageSize);
    if (p == nullptr) break;
    std::memset(p, 0, mmu::kPageSize);  // resident now, not at its first use
    pages.push_back(p);
  }
  std::lock_guard<std::mutex> g(lock_);
  reserve_.insert(reserve_.end(), pages.begin(), pages.end());
  live_.reserve(live_.size() + reserve_.size());
}

HostPlatform::~HostPlatform() {
  for (void* p : reserve_) std::free(p);
  check_quarantine();
  // Pages still live here are leaks of the code under test; the tests assert live_pages()==0
  // before destruction. Release them anyway so that LeakSanitizer reports only real host leaks.
  for (uintptr_t p : live_) std::free(reinterpret_cast<void*>(p));
}

mmu::hpa_t HostPlatform::alloc_page() {
  const uint64_t limit = page_limit_.load(mmu::Order::relaxed);
  if (limit != 0) {
    // Reserve a slot under the limit; give it back if we went over.
    if (live_count_.fetch_add(1, mmu::Order::relaxed) >= limit) {
      live_count_.fetch_sub(1, mmu::Order::relaxed);
      return 0;
    }
  } else {
    live_count_.fetch_add(1, mmu::Order::relaxed);
  }
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> g(lock_);
    if (!reserve_.empty()) {
      p = reserve_.back();
      reserve_.pop_back();
    }
  }
  if (p == nullptr) p = std::aligned_alloc(mmu::kPageSize, mmu::kPageSize);
  if (p == nullptr) {
    live_count_.fetch_sub(1, mmu::Order::relaxed);
    return 0;
  }
  std::memset(p, 0, mmu::kPageSize);
  {
    std::lock_guard<std::mutex> g(lock_);
    live_.insert(reinterpret_cast<uintptr_t>(p));
  }
  allocs_.fetch_add(1, mmu::Order::relaxed);
  return reinterpret_cast<mmu::hpa_t>(p);
}

void HostPlatform::free_page(mmu::hpa_t page) {
  void* p = reinterpret_cast<void*>(page);
  {
    std::lock_guard<std::mutex> g(lock_);
    if (live_.erase(static_cast<uintptr_t>(page)) == 0) {
      std::fprintf(stderr, "host platform: free of page %#llx that is not live (double free?)\n",
                   static_cast<unsigned long long>(page));
      errors_.fetch_add(1, mmu::Order::relaxed);
      return;
    }
    std::memset(p, kPoisonByte, mmu::kPageSize);
    quarantine_.push_back(p);
    if (quarantine_.size() > kQuarantineMax) {
      // Check and release the oldest half.
      size_t half = quarantine_.size() / 2;
      for (size_t i = 0; i < half; i++) {
        auto* bytes = static_cast<const uint8_t*>(quarantine_[i]);
        for (size_t b = 0; b < mmu::kPageSize; b++) {
          if (bytes[b] != kPoisonByte) {
            std::fprintf(stderr, "host platform: page %p written after free\n", quarantine_[i]);
            errors_.fetch_add(1, mmu::Order::relaxed);
            break;
          }
        }
        std::free(quarantine_[i]);
      }
      quarantine_.erase(quarantine_.begin(), quarantine_.begin() + static_cast<long>(half));
    }
  }
  live_count_.fetch_sub(1, mmu::Order::relaxed);
  frees_.fetch_add(1, mmu::Order::relaxed);
}

size_t HostPlatform::check_quarantine() {
  std::lock_guard<std::mutex> g(lock_);
  size_t bad = 0;
  for (void* p : quarantine_) {
    auto* bytes = static_cast<const uint8_t*>(p);
    for (size_t b = 0; b < mmu::kPageSize; b++) {
      if (bytes[b] != kPoisonByte) {
        bad++;
        break;
      }
    }
    std::free(p);
  }
  quarantine_.clear();
  if (bad) errors_.fetch_add(bad, mmu::Order::relaxed);
  return bad;
}

uint64_t HostPlatform::live_pages() const { return live_count_.load(mmu::Order::relaxed); }

bool HostPlatform::is_live(mmu::hpa_t page) const {
  std::lock_guard<std::mutex> g(lock_);
  return live_.count(static_cast<uintptr_t>(page)) != 0;
}

unsigned HostPlatform::cpu_id() { return t_cpu_id; }

void HostPlatform::flush_remote_tlbs(uint64_t tlb_tag) {
  flushes_.fetch_add(1, mmu::Order::relaxed);
  if (flush_hook_) flush_hook_(tlb_tag);
}

bool HostPlatform::should_yield() {
  if (yield_probability_ <= 0.0) return false;
  thread_local std::minstd_rand rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < yield_probability_;
}

void HostPlatform::cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

uint64_t HostPlatform::timestamp() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace hvtest
