// JSON reader and writer; see json.h for the limits and why they exist.
#include "json.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace nodevisor::json {

const Value* Value::get(std::string_view key) const {
  if (kind_ != Kind::Object) return nullptr;
  for (const auto& [k, v] : members_) {
    if (k == key) return &v;
  }
  return nullptr;
}

namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 when it is invalid.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    unsigned char cc = byte(i + k);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return 0;  // overlong
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;                           // surrogate
  if (cp > 0x10ffff) return 0;
  return len;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

}  // namespace

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Recursive descent, with the depth bounded by kMaxDepth so hostile nesting cannot exhaust the
// stack. Every loop advances `pos_`, so the work is linear in the input (plus n log n for the
// duplicate-key check).
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  ParseResult run() {
    ParseResult result;
    Value v;
    skip_ws();
    if (!parse_value(v, 0)) {
      result.error = error_ + " at byte " + std::to_string(pos_);
      return result;
    }
    skip_ws();
    if (pos_ != text_.size()) {
      result.error = "trailing data after the JSON value at byte " + std::to_string(pos_);
      return result;
    }
    result.value = std::move(v);
    return result;
  }

 private:
  bool fail(const char* what) {
    if (error_.empty()) error_ = what;
    return false;
  }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  void skip_ws() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool parse_value(Value& out, int depth) {
    if (at_end()) return fail("unexpected end of input");
    if (++values_ > kMaxValues) return fail("more than 65536 values in one document");
    switch (peek()) {
      case '{':
        return parse_object(out, depth + 1);
      case '[':
        return parse_array(out, depth + 1);
      case '"':
        out.kind_ = Value::Kind::String;
        return parse_string(out.string_);
      case 't':
        out = Value::boolean(true);
        return literal("true");
      case 'f':
        out = Value::boolean(false);
        return literal("false");
      case 'n':
        out = Value();
        return literal("null");
      default:
        return parse_number(out);
    }
  }

  bool parse_object(Value& out, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than 32");
    out.kind_ = Value::Kind::Object;
    ++pos_;  // '{'
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"') return fail("expected a string key");
      std::string key;
      if (!parse_string(key)) return false;
      skip_ws();
      if (at_end() || peek() != ':') return fail("expected ':'");
      ++pos_;
      skip_ws();
      Value v;
      if (!parse_value(v, depth)) return false;
      out.members_.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (at_end()) return fail("unexpected end of input in an object");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      return fail("expected ',' or '}'");
    }
    std::vector<std::string_view> keys;
    keys.reserve(out.members_.size());
    for (const auto& m : out.members_) keys.emplace_back(m.first);
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) return fail("duplicate key");
    return true;
  }

  bool parse_array(Value& out, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than 32");
    out.kind_ = Value::Kind::Array;
    ++pos_;  // '['
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      Value v;
      if (!parse_value(v, depth)) return false;
      out.items_.push_back(std::move(v));
      skip_ws();
      if (at_end()) return fail("unexpected end of input in an array");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool hex4(uint32_t& out) {
    if (text_.size() - pos_ < 4) return fail("short \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_++];
      out <<= 4;
      if (c >= '0' && c <= '9') out |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') out |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') out |= static_cast<uint32_t>(c - 'A' + 10);
      else return fail("bad hex digit in \\u escape");
    }
    return true;
  }

  bool parse_string(std::string& out) {
    ++pos_;  // opening quote
    for (;;) {
      if (at_end()) return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("control character in a string");
      if (c == '\\') {
        ++pos_;
        if (at_end()) return fail("unterminated escape");
        char e = text_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            uint32_t cp;
            if (!hex4(cp)) return false;
            if (cp >= 0xdc00 && cp <= 0xdfff) return fail("lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
              if (text_.substr(pos_, 2) != "\\u") return fail("lone high surrogate");
              pos_ += 2;
              uint32_t low;
              if (!hex4(low)) return false;
              if (low < 0xdc00 || low > 0xdfff) return fail("bad low surrogate");
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            }
            append_utf8(out, cp);
            break;
          }
          default:
            return fail("invalid escape");
        }
        continue;
      }
      size_t n = utf8_sequence_length(text_, pos_);
      if (n == 0) return fail("invalid UTF-8 in a string");
      out.append(text_.substr(pos_, n));
      pos_ += n;
    }
  }

  bool parse_number(Value& out) {
    size_t start = pos_;
    bool integral = true;
    if (!at_end() && peek() == '-') ++pos_;
    if (at_end()) return fail("invalid number");
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      return fail("unexpected character");
    }
    if (!at_end() && peek() == '.') {
      integral = false;
      ++pos_;
      size_t digits = pos_;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
      if (pos_ == digits) return fail("invalid fraction");
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      size_t digits = pos_;
      while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
      if (pos_ == digits) return fail("invalid exponent");
    }
    // strtod/strtoll need a terminated copy; numbers are short (bounded by the frame anyway).
    std::string copy(text_.substr(start, pos_ - start));
    out.kind_ = Value::Kind::Number;
    out.number_ = std::strtod(copy.c_str(), nullptr);
    if (integral) {
      errno = 0;
      long long n = std::strtoll(copy.c_str(), nullptr, 10);
      if (errno != ERANGE) {  // a larger integer stays a double only
        out.integral_ = true;
        out.integer_ = n;
      }
    }
    if (!std::isfinite(out.number_)) return fail("number out of range");
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t values_ = 0;  // values started so far, against kMaxValues
  std::string error_;
};

ParseResult parse(std::string_view text) { return Parser(text).run(); }

void Writer::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_item_.empty()) {
    if (has_item_.back()) out_ += ',';
    has_item_.back() = true;
  }
}

Writer& Writer::begin_object() {
  before_value();
  out_ += '{';
  has_item_.push_back(false);
  return *this;
}
Writer& Writer::end_object() {
  out_ += '}';
  has_item_.pop_back();
  return *this;
}
Writer& Writer::begin_array() {
  before_value();
  out_ += '[';
  has_item_.push_back(false);
  return *this;
}
Writer& Writer::end_array() {
  out_ += ']';
  has_item_.pop_back();
  return *this;
}
Writer& Writer::key(std::string_view k) {
  before_value();
  append_escaped(k);
  out_ += ':';
  after_key_ = true;
  return *this;
}
Writer& Writer::string(std::string_view s) {
  before_value();
  append_escaped(s);
  return *this;
}
Writer& Writer::number(int64_t n) {
  before_value();
  out_ += std::to_string(n);
  return *this;
}
Writer& Writer::boolean(bool b) {
  before_value();
  out_ += b ? "true" : "false";
  return *this;
}
Writer& Writer::null() {
  before_value();
  out_ += "null";
  return *this;
}

void Writer::append_escaped(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out_ += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += static_cast<char>(c);
      ++i;
    } else if (c == '\n' || c == '\b' || c == '\f' || c == '\r' || c == '\t') {
      // The two-byte forms: an echoed string is never longer than the request that carried
      // it, so a reply to a frame that fit also fits. (DEL, 0x7f, needs no escape in JSON.)
      out_ += '\\';
      out_ += c == '\n' ? 'n' : c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\r' ? 'r' : 't';
      ++i;
    } else if (c < 0x20) {
      out_ += "\\u00";
      out_ += kHex[c >> 4];
      out_ += kHex[c & 0xf];
      ++i;
    } else {
      size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        out_ += "\xef\xbf\xbd";  // U+FFFD for a byte that is not valid UTF-8
        ++i;
      } else {
        out_.append(s.substr(i, n));
        i += n;
      }
    }
  }
  out_ += '"';
}

}  // namespace nodevisor::json
