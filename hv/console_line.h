// A line buffer for what a guest writes to a console port: bytes are collected until '\n' (or
// until the buffer is full) and handed out as one line. Only printable ASCII is kept (anything
// else becomes '?'), so a hostile guest cannot forge hv's own lines with control characters or
// escape sequences; '\r' is dropped.
//
// Not synchronized: each owner says who may use it (hv/devices/uart.h: under the UART's lock;
// hv/vcpu.h: the vCPU's own CPU only).
#pragma once

#include <stdint.h>

namespace hv {

class ConsoleLine {
 public:
  static constexpr unsigned kCapacity = 240;  // longer lines are split (a log line holds 640)

  // Feeds one byte; calls emit(const char* text) for each complete line.
  template <typename Emit>
  void put(uint8_t c, Emit&& emit) {
    if (c == '\r') return;
    if (c == '\n' || len_ + 1 >= kCapacity) {
      flush(emit);
      if (c == '\n') return;
    }
    buf_[len_++] = (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
  }
  // Emits what is left of an unfinished line, if anything.
  template <typename Emit>
  void flush(Emit&& emit) {
    if (!len_) return;
    buf_[len_] = 0;
    emit(static_cast<const char*>(buf_));
    len_ = 0;
  }
  void clear() { len_ = 0; }

 private:
  char buf_[kCapacity] = {};
  unsigned len_ = 0;
};

}  // namespace hv
