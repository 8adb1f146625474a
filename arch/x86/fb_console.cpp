// The framebuffer console (see fb_console.h).
#include "arch/x86/fb_console.h"

#include <stdint.h>

#include "arch/x86/font8x16.h"
#include "arch/x86/format.h"
#include "arch/x86/paging.h"
#include "arch/x86/string.h"

namespace x86::fbcon {
namespace {

// The text copy's limits: 256x128 cells is a 2048x2048 screen. Larger screens use the top
// left part only (one static array: the console starts before there is an allocator).
constexpr unsigned kMaxCols = 256, kMaxRows = 128;

enum class Kind { none, rgb, ega_text };

struct State {
  Kind kind = Kind::none;
  uint8_t* base = nullptr;
  uint32_t pitch = 0, width = 0, height = 0;  // pixels (rgb) or cells (ega_text)
  unsigned bytes_per_pixel = 0, bpp = 0;
  uint32_t ink[3] = {}, paper = 0;  // pixel values of the colours
  unsigned cols = 0, rows = 0;
  unsigned row = 0, col = 0;  // the cursor
  Colour colour = Colour::normal;
};

State g;
char g_text[kMaxRows][kMaxCols];        // what each cell shows
uint8_t g_text_colour[kMaxRows][kMaxCols];

// One 8-bit channel value scaled into a colour field of `size` bits at `pos`.
uint32_t field(uint8_t v, uint8_t pos, uint8_t size) {
  if (!size) return 0;
  const uint32_t scaled = size >= 8 ? uint32_t{v} << (size - 8) : uint32_t{v} >> (8 - size);
  return scaled << pos;
}

uint32_t pixel(const mb2::Framebuffer& fb, uint8_t r, uint8_t gr, uint8_t b) {
  return field(r, fb.red_pos, fb.red_size) | field(gr, fb.green_pos, fb.green_size) | field(b, fb.blue_pos, fb.blue_size);
}

inline void put_pixel(uint8_t* p, uint32_t v) {
  switch (g.bytes_per_pixel) {
    case 4: *reinterpret_cast<uint32_t*>(p) = v; break;
    case 3:
      p[0] = static_cast<uint8_t>(v);
      p[1] = static_cast<uint8_t>(v >> 8);
      p[2] = static_cast<uint8_t>(v >> 16);
      break;
    case 2: *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(v); break;
    default: break;
  }
}

// EGA attribute per colour: light grey, yellow, light red on black.
constexpr uint8_t kEgaAttr[3] = {0x07, 0x0E, 0x0C};

void draw_cell(unsigned row, unsigned col) {
  const char c = g_text[row][col] ? g_text[row][col] : ' ';
  const uint8_t colour = g_text_colour[row][col];
  if (g.kind == Kind::ega_text) {
    const unsigned char u = static_cast<unsigned char>(c);
    const uint16_t cell = static_cast<uint16_t>((u >= 0x20 && u <= 0x7E ? u : 0xFE) | (kEgaAttr[colour] << 8));
    reinterpret_cast<volatile uint16_t*>(g.base)[row * g.pitch / 2 + col] = cell;
    return;
  }
  const uint8_t* glyph = font::glyph(c);
  const uint32_t ink = g.ink[colour], paper = g.paper;
  uint8_t* line = g.base + uint64_t{row} * font::kHeight * g.pitch + uint64_t{col} * font::kWidth * g.bytes_per_pixel;
  for (unsigned y = 0; y < font::kHeight; y++, line += g.pitch) {
    const uint8_t bits = glyph[y];
    uint8_t* p = line;
    for (unsigned x = 0; x < font::kWidth; x++, p += g.bytes_per_pixel) put_pixel(p, (bits & (0x80 >> x)) ? ink : paper);
  }
}

void set_cell(unsigned row, unsigned col, char c, uint8_t colour) {
  if (g_text[row][col] == c && g_text_colour[row][col] == colour) return;
  g_text[row][col] = c;
  g_text_colour[row][col] = colour;
  draw_cell(row, col);
}

// Keeps the newest half of the rows, moved to the top; redraws only what changed.
void scroll() {
  const unsigned keep = g.rows / 2, drop = g.rows - keep;
  for (unsigned r = 0; r < g.rows; r++)
    for (unsigned c = 0; c < g.cols; c++) {
      const bool from_below = r < keep;
      set_cell(r, c, from_below ? g_text[r + drop][c] : ' ', from_below ? g_text_colour[r + drop][c] : 0);
    }
  g.row = keep;
}

void newline() {
  // Blank the rest of the row (it may hold an older line after a scroll).
  for (unsigned c = g.col; c < g.cols; c++) set_cell(g.row, c, ' ', 0);
  g.col = 0;
  if (++g.row == g.rows) scroll();
}

}  // namespace

const char* init(const mb2::Framebuffer& fb) {
  g = State{};
  // Everything is checked before g.kind is set: write() draws whenever kind is not none.
  State s;
  if (fb.type == 2) {
    s.kind = Kind::ega_text;
    s.cols = fb.width < kMaxCols ? fb.width : kMaxCols;
    s.rows = fb.height < kMaxRows ? fb.height : kMaxRows;
    s.pitch = fb.pitch ? fb.pitch : fb.width * 2;
  } else if (fb.type == 1) {
    if (fb.bpp != 32 && fb.bpp != 24 && fb.bpp != 16 && fb.bpp != 15) return "unsupported bits per pixel";
    if (!fb.red_size || !fb.green_size || !fb.blue_size) return "no colour field layout in the tag";
    s.kind = Kind::rgb;
    s.bpp = fb.bpp;
    s.bytes_per_pixel = (fb.bpp + 7) / 8;
    s.cols = fb.width / font::kWidth < kMaxCols ? fb.width / font::kWidth : kMaxCols;
    s.rows = fb.height / font::kHeight < kMaxRows ? fb.height / font::kHeight : kMaxRows;
    s.pitch = fb.pitch;
    if (s.pitch < fb.width * s.bytes_per_pixel) return "pitch shorter than a row of pixels";
    s.ink[static_cast<int>(Colour::normal)] = pixel(fb, 0xE0, 0xE0, 0xE0);
    s.ink[static_cast<int>(Colour::warning)] = pixel(fb, 0xFF, 0xE0, 0x40);
    s.ink[static_cast<int>(Colour::error)] = pixel(fb, 0xFF, 0x60, 0x60);
    s.paper = pixel(fb, 0, 0, 0);
  } else {
    return "indexed-colour framebuffer (not drawn)";
  }
  if (s.cols < 2 || s.rows < 2) return "screen smaller than 2x2 cells";
  if (!fb.address || !paging::is_mapped(fb.address, uint64_t{s.pitch} * fb.height))
    return "framebuffer outside the identity map";
  s.width = fb.width;
  s.height = fb.height;
  s.base = reinterpret_cast<uint8_t*>(fb.address);
  g = s;
  // Clear the whole visible area once (also the margin right of and below the cells).
  if (g.kind == Kind::rgb) {
    for (uint32_t y = 0; y < fb.height; y++)
      for (uint32_t x = 0; x < fb.width; x++) put_pixel(g.base + uint64_t{y} * g.pitch + x * g.bytes_per_pixel, g.paper);
  }
  memset(g_text_colour, 0, sizeof g_text_colour);
  for (unsigned r = 0; r < g.rows; r++)
    for (unsigned c = 0; c < g.cols; c++) {
      g_text[r][c] = ' ';
      if (g.kind == Kind::ega_text) draw_cell(r, c);
    }
  return nullptr;
}

bool active() { return g.kind != Kind::none; }

void describe(char* buf, size_t size) {
  if (g.kind == Kind::ega_text)
    format(buf, size, "EGA text %ux%u at 0x%lx", g.cols, g.rows, reinterpret_cast<uint64_t>(g.base));
  else if (g.kind == Kind::rgb)
    format(buf, size, "%ux%ux%u at 0x%lx, pitch %u, %ux%u cells", g.width, g.height, g.bpp,
           reinterpret_cast<uint64_t>(g.base), g.pitch, g.cols, g.rows);
  else
    format(buf, size, "none");
}

void write(const char* text, size_t n, Colour colour) {
  if (g.kind == Kind::none) return;
  const uint8_t k = static_cast<uint8_t>(colour);
  for (size_t i = 0; i < n; i++) {
    const char c = text[i];
    if (c == '\n') { newline(); continue; }
    if (c == '\r') continue;
    if (g.col == g.cols) newline();  // wrap
    if (c == '\t') {
      do set_cell(g.row, g.col++, ' ', k); while (g.col % 8 && g.col < g.cols);
      continue;
    }
    set_cell(g.row, g.col++, c, k);
  }
}

}  // namespace x86::fbcon
