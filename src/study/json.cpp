#include "study/json.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace moe::json {

Value Value::boolean(bool v) {
  Value x;
  x.type = Type::Bool;
  x.b = v;
  return x;
}
Value Value::integer(std::int64_t v) {
  Value x;
  x.type = Type::Int;
  x.i = v;
  return x;
}
Value Value::number(double v) {
  Value x;
  if (!std::isfinite(v)) return x;
  x.type = Type::Float;
  x.f = v;
  return x;
}
Value Value::string(std::string v) {
  Value x;
  x.type = Type::String;
  x.s = std::move(v);
  return x;
}
Value Value::array() {
  Value x;
  x.type = Type::Array;
  return x;
}
Value Value::object() {
  Value x;
  x.type = Type::Object;
  return x;
}

const Value* Value::find(const std::string& key) const {
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}
Value* Value::find(const std::string& key) {
  for (auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}
void Value::set(const std::string& key, Value v) {
  if (Value* old = find(key))
    *old = std::move(v);
  else
    members.emplace_back(key, std::move(v));
}

std::string shortest_double(double v) {
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

namespace {

class Parser {
 public:
  explicit Parser(const std::string& t) : t_(t) {}

  Value document() {
    Value v = value();
    skip_ws();
    if (p_ != t_.size()) fail("text after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON parse error at offset " + std::to_string(p_) + ": " + what);
  }
  void skip_ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\n' || t_[p_] == '\r' || t_[p_] == '\t'))
      ++p_;
  }
  bool eat(char c) {
    skip_ws();
    if (p_ < t_.size() && t_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool word(const char* w) {
    const std::string s(w);
    if (t_.compare(p_, s.size(), s) == 0) {
      p_ += s.size();
      return true;
    }
    return false;
  }

  Value value() {
    skip_ws();
    if (p_ >= t_.size()) fail("unexpected end");
    const char c = t_[p_];
    if (c == '{') return object();
    if (c == '[') return array();
    if (c == '"') return Value::string(string());
    if (word("true")) return Value::boolean(true);
    if (word("false")) return Value::boolean(false);
    if (word("null")) return Value::null();
    return number();
  }

  Value object() {
    Value v = Value::object();
    expect('{');
    if (eat('}')) return v;
    do {
      skip_ws();
      if (p_ >= t_.size() || t_[p_] != '"') fail("expected a key");
      std::string key = string();
      expect(':');
      v.members.emplace_back(std::move(key), value());
    } while (eat(','));
    expect('}');
    return v;
  }

  Value array() {
    Value v = Value::array();
    expect('[');
    if (eat(']')) return v;
    do v.items.push_back(value());
    while (eat(','));
    expect(']');
    return v;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  unsigned hex4() {
    if (p_ + 4 > t_.size()) fail("short \\u escape");
    unsigned cp = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = t_[p_++];
      cp <<= 4;
      if (h >= '0' && h <= '9')
        cp |= unsigned(h - '0');
      else if (h >= 'a' && h <= 'f')
        cp |= unsigned(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        cp |= unsigned(h - 'A' + 10);
      else
        fail("bad \\u escape");
    }
    return cp;
  }

  std::string string() {
    ++p_;  // the opening quote
    std::string out;
    while (true) {
      if (p_ >= t_.size()) fail("unterminated string");
      const char c = t_[p_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ >= t_.size()) fail("unterminated escape");
      const char e = t_[p_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && word("\\u")) {  // surrogate pair
            const unsigned lo = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default:
          fail("bad escape");
      }
    }
  }

  Value number() {
    const std::size_t start = p_;
    if (p_ < t_.size() && t_[p_] == '-') ++p_;
    bool is_float = false;
    while (p_ < t_.size()) {
      const char c = t_[p_];
      if (c >= '0' && c <= '9')
        ++p_;
      else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        is_float = true;
        ++p_;
      } else
        break;
    }
    const std::string text = t_.substr(start, p_ - start);
    if (text.empty() || text == "-") fail("expected a value");
    char* end = nullptr;
    if (!is_float) {
      errno = 0;
      const long long v = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0 && *end == '\0') return Value::integer(v);
    }
    const double d = std::strtod(text.c_str(), &end);
    if (*end != '\0') fail("bad number '" + text + "'");
    Value v;
    v.type = Value::Type::Float;
    v.f = d;
    return v;
  }

  const std::string& t_;
  std::size_t p_ = 0;
};

void write_string(std::ostringstream& out, const std::string& s) {
  out << '"';
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out << "\\\"";
        break;
      case '\\':
        out << "\\\\";
        break;
      case '\n':
        out << "\\n";
        break;
      case '\r':
        out << "\\r";
        break;
      case '\t':
        out << "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out << buf;
        } else {
          out << ch;
        }
    }
  }
  out << '"';
}

bool is_container(const Value& v) {
  return v.type == Value::Type::Array || v.type == Value::Type::Object;
}

// A container of scalars only goes on one line.
bool flat(const Value& v) {
  for (const Value& x : v.items)
    if (is_container(x)) return false;
  for (const auto& m : v.members)
    if (is_container(m.second)) return false;
  return true;
}

void write_value(std::ostringstream& out, const Value& v, int indent) {
  switch (v.type) {
    case Value::Type::Null:
      out << "null";
      return;
    case Value::Type::Bool:
      out << (v.b ? "true" : "false");
      return;
    case Value::Type::Int:
      out << v.i;
      return;
    case Value::Type::Float: {
      std::string t = shortest_double(v.f);
      // Keep floats floats when read back ("2" would come back as an integer).
      if (t.find_first_of(".eEn") == std::string::npos) t += ".0";
      out << t;
      return;
    }
    case Value::Type::String:
      write_string(out, v.s);
      return;
    default:
      break;
  }
  const bool is_obj = v.type == Value::Type::Object;
  const std::size_t n = is_obj ? v.members.size() : v.items.size();
  const char open = is_obj ? '{' : '[', close = is_obj ? '}' : ']';
  if (n == 0) {
    out << open << close;
    return;
  }
  const bool one_line = flat(v);
  const std::string pad(std::size_t(indent + 2), ' ');
  out << open;
  for (std::size_t k = 0; k < n; ++k) {
    if (k) out << ',';
    out << (one_line ? (k ? " " : "") : "\n" + pad);
    if (is_obj) {
      write_string(out, v.members[k].first);
      out << ": ";
      write_value(out, v.members[k].second, indent + 2);
    } else {
      write_value(out, v.items[k], indent + 2);
    }
  }
  if (!one_line) out << '\n' << std::string(std::size_t(indent), ' ');
  out << close;
}

}  // namespace

Value parse(const std::string& text) {
  return Parser(text).document();
}

std::string write(const Value& v) {
  std::ostringstream out;
  write_value(out, v, 0);
  out << '\n';
  return out.str();
}

}  // namespace moe::json
