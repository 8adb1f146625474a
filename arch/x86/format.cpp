// The kernel's printf-style formatter (see format.h for what it supports).
#include "arch/x86/format.h"

#include <stdint.h>

namespace x86 {
namespace {

class Out {
 public:
  Out(char* buf, size_t size) : buf_(buf), cap_(size ? size - 1 : 0) {}
  void put(char c) {
    if (len_ < cap_) buf_[len_++] = c;
  }
  void pad(char c, int n) {
    for (int i = 0; i < n; i++) put(c);
  }
  size_t finish() {
    if (buf_ && (cap_ || len_)) buf_[len_] = '\0';
    return len_;
  }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
};

void put_number(Out& out, uint64_t v, bool negative, unsigned base, bool upper, int width, bool zero,
                bool left, const char* prefix) {
  char digits[24];
  int n = 0;
  const char* set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  do {
    digits[n++] = set[v % base];
    v /= base;
  } while (v);
  int prefix_len = 0;
  while (prefix && prefix[prefix_len]) prefix_len++;
  int total = n + (negative ? 1 : 0) + prefix_len;
  int fill = width > total ? width - total : 0;
  if (!left && !zero) out.pad(' ', fill);
  if (negative) out.put('-');
  for (int i = 0; i < prefix_len; i++) out.put(prefix[i]);
  if (!left && zero) out.pad('0', fill);
  while (n) out.put(digits[--n]);
  if (left) out.pad(' ', fill);
}

}  // namespace

size_t vformat(char* buf, size_t size, const char* fmt, va_list ap) {
  Out out(buf, size);
  for (const char* p = fmt; *p; p++) {
    if (*p != '%') {
      out.put(*p);
      continue;
    }
    p++;
    bool left = false, zero = false;
    for (;; p++) {
      if (*p == '-') left = true;
      else if (*p == '0') zero = true;
      else break;
    }
    int width = 0;
    if (*p == '*') {
      width = va_arg(ap, int);
      p++;
    } else {
      while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    }
    int precision = -1;
    if (*p == '.') {
      p++;
      precision = 0;
      if (*p == '*') {
        precision = va_arg(ap, int);
        p++;
      } else {
        while (*p >= '0' && *p <= '9') precision = precision * 10 + (*p++ - '0');
      }
    }
    int longs = 0;
    bool size_t_arg = false;
    while (*p == 'l') {
      longs++;
      p++;
    }
    if (*p == 'z') {
      size_t_arg = true;
      p++;
    }
    auto get_unsigned = [&]() -> uint64_t {
      if (size_t_arg) return va_arg(ap, size_t);
      if (longs >= 2) return va_arg(ap, unsigned long long);
      if (longs == 1) return va_arg(ap, unsigned long);
      return va_arg(ap, unsigned int);
    };
    switch (*p) {
      case 'd':
      case 'i': {
        int64_t v;
        if (size_t_arg) v = static_cast<int64_t>(va_arg(ap, size_t));
        else if (longs >= 2) v = va_arg(ap, long long);
        else if (longs == 1) v = va_arg(ap, long);
        else v = va_arg(ap, int);
        uint64_t mag = v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
        put_number(out, mag, v < 0, 10, false, width, zero, left, nullptr);
        break;
      }
      case 'u': put_number(out, get_unsigned(), false, 10, false, width, zero, left, nullptr); break;
      case 'x': put_number(out, get_unsigned(), false, 16, false, width, zero, left, nullptr); break;
      case 'X': put_number(out, get_unsigned(), false, 16, true, width, zero, left, nullptr); break;
      case 'p':
        put_number(out, reinterpret_cast<uintptr_t>(va_arg(ap, void*)), false, 16, false, width, zero, left,
                   "0x");
        break;
      case 'c': {
        char c = static_cast<char>(va_arg(ap, int));
        if (!left) out.pad(' ', width - 1);
        out.put(c);
        if (left) out.pad(' ', width - 1);
        break;
      }
      case 's': {
        const char* s = va_arg(ap, const char*);
        if (!s) s = "(null)";
        int n = 0;
        while (s[n] && (precision < 0 || n < precision)) n++;
        if (!left) out.pad(' ', width - n);
        for (int i = 0; i < n; i++) out.put(s[i]);
        if (left) out.pad(' ', width - n);
        break;
      }
      case '%': out.put('%'); break;
      case '\0': p--; break;  // a lone '%' at the end
      default:
        out.put('%');
        out.put(*p);
        break;
    }
  }
  return out.finish();
}

size_t format(char* buf, size_t size, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = vformat(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

}  // namespace x86
