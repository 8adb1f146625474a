// Kernel command-line lookup (see cmdline.h).
#include "hv/cmdline.h"

#include "arch/x86/log.h"
#include "arch/x86/string.h"

namespace hv::cmdline {
namespace {

const char* g_line = "";

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool is_separator(const char* word, const char* end) { return end - word == 2 && word[0] == '-' && word[1] == '-'; }

// Finds the word that starts with `key` followed by '=', a blank or the end, before the word
// "--" (what follows it is the guest's). Returns a pointer just past the key, or nullptr.
const char* find(const char* key) {
  const size_t n = strlen(key);
  const char* p = g_line;
  while (*p) {
    while (is_blank(*p)) p++;
    const char* word = p;
    while (*p && !is_blank(*p)) p++;
    if (is_separator(word, p)) return nullptr;
    if (static_cast<size_t>(p - word) >= n && strncmp(word, key, n) == 0 &&
        (word[n] == '=' || word[n] == '\0' || is_blank(word[n])))
      return word + n;
  }
  return nullptr;
}

}  // namespace

void set(const char* line) { g_line = line ? line : ""; }

bool has(const char* key) { return find(key) != nullptr; }

const char* guest_args() {
  const char* p = g_line;
  while (*p) {
    while (is_blank(*p)) p++;
    const char* word = p;
    while (*p && !is_blank(*p)) p++;
    if (is_separator(word, p)) {
      while (is_blank(*p)) p++;
      return p;
    }
  }
  return nullptr;
}

bool get(const char* key, char* buf, size_t size) {
  const char* p = find(key);
  if (!p || *p != '=' || size == 0) return false;
  p++;
  size_t i = 0;
  while (p[i] && !is_blank(p[i]) && i + 1 < size) {
    buf[i] = p[i];
    i++;
  }
  buf[i] = '\0';
  return true;
}

uint64_t get_number(const char* key, uint64_t fallback) {
  char v[24];
  if (!get(key, v, sizeof v) || !v[0]) return fallback;
  uint64_t n = 0;
  for (const char* p = v; *p; p++) {
    if (*p < '0' || *p > '9') {
      x86::log::warn("%s=%s is not a number, %lu used", key, v, fallback);
      return fallback;
    }
    n = n * 10 + static_cast<uint64_t>(*p - '0');
  }
  return n;
}

}  // namespace hv::cmdline
