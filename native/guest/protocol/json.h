// A small JSON reader and writer for the agent's protocol messages (docs/protocol.md).
//
// The reader takes untrusted bytes from the host channel, so it is bounded: the input is at most
// one frame (NV_FRAME_MAX_PAYLOAD), nesting is at most kMaxDepth, strings must be valid UTF-8 and
// valid JSON escapes, duplicate keys are refused (two readers could otherwise disagree), it
// never recurses deeper than kMaxDepth, and a document holds at most kMaxValues values: a Value
// takes ~100 bytes for the 2 bytes of "0," that make one, so without that cap a 1 MiB frame of
// `[0,0,...]` cost ~52 MiB; with it a parse stays under ~10 MiB whatever the frame. It reports the first problem as text with a byte offset.
// The writer produces canonical JSON (no spaces) and repairs invalid UTF-8 in strings it is given
// (paths and errno texts) with U+FFFD so the host always receives valid JSON.
//
// Single-threaded use: the agent's main loop thread owns every Value and Writer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nodevisor::json {

inline constexpr int kMaxDepth = 32;
inline constexpr size_t kMaxValues = 65536;

class Value {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Value() = default;
  static Value null() { return Value(); }
  static Value boolean(bool b) {
    Value v;
    v.kind_ = Kind::Bool;
    v.bool_ = b;
    return v;
  }

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }

  bool as_bool() const { return bool_; }
  double as_double() const { return number_; }
  // The value as an integer when it was written as one (no fraction, no exponent) and fits.
  std::optional<int64_t> as_int() const {
    if (kind_ != Kind::Number || !integral_) return std::nullopt;
    return integer_;
  }
  const std::string& as_string() const { return string_; }
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::pair<std::string, Value>>& members() const { return members_; }

  // Object member by key, or nullptr (also when this is not an object).
  const Value* get(std::string_view key) const;

 private:
  friend class Parser;
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  bool integral_ = false;
  int64_t integer_ = 0;
  double number_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

struct ParseResult {
  std::optional<Value> value;  // set on success
  std::string error;           // set on failure: "what at byte N"
};

// Parses exactly one JSON value (surrounded by optional whitespace) from `text`.
ParseResult parse(std::string_view text);

// Builds one JSON text. Calls must nest correctly (the agent's message builders do); commas are
// inserted automatically.
class Writer {
 public:
  Writer& begin_object();
  Writer& end_object();
  Writer& begin_array();
  Writer& end_array();
  Writer& key(std::string_view k);
  Writer& string(std::string_view s);
  Writer& number(int64_t n);
  Writer& boolean(bool b);
  Writer& null();

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void before_value();
  void append_escaped(std::string_view s);
  std::string out_;
  // One entry per open container: whether a value was written in it yet (for commas).
  std::vector<bool> has_item_;
  bool after_key_ = false;
};

// True when `s` is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace nodevisor::json
