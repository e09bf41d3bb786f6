// A small JSON value with a reader and a writer: just enough for the study index
// (index.json), which moe-study reads and rewrites under a lock and the analysis scripts read.
// Objects keep their key order, so a rewritten index reads the same as the one before.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace moe::json {

struct Value {
  enum class Type { Null, Bool, Int, Float, String, Array, Object };
  Type type = Type::Null;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Value> items;                            // Array
  std::vector<std::pair<std::string, Value>> members;  // Object, in order

  static Value null() { return Value(); }
  static Value boolean(bool v);
  static Value integer(std::int64_t v);
  static Value number(double v);  // NaN and infinities become null (JSON has none)
  static Value string(std::string v);
  static Value array();
  static Value object();

  bool is_null() const { return type == Type::Null; }
  bool is_number() const { return type == Type::Int || type == Type::Float; }
  double as_double() const { return type == Type::Int ? double(i) : f; }

  // Object access: find returns nullptr when absent; set replaces or appends.
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  void set(const std::string& key, Value v);
};

// Throws std::runtime_error("JSON parse error at offset N: what").
Value parse(const std::string& text);

// Indented text, two spaces per level; arrays of scalars stay on one line.
std::string write(const Value& v);

// The shortest decimal text that reads back as the same double ("0.001", "3e-05", "2").
std::string shortest_double(double v);

}  // namespace moe::json
