#include "study/study_expand.hpp"

#include <cstddef>

namespace moe::study_detail {

namespace {

bool is_number(const ParamValue& v) {
  return v.kind == ParamValue::Kind::Int || v.kind == ParamValue::Kind::Float;
}

double as_double(const ParamValue& v) {
  return v.kind == ParamValue::Kind::Int ? double(v.i) : v.f;
}

// 4 and 4.0 mean the same number in a where clause.
bool same_value(const ParamValue& a, const ParamValue& b) {
  return a == b || (is_number(a) && is_number(b) && as_double(a) == as_double(b));
}

bool matches(const Exclusion& e, const std::vector<Param>& params) {
  for (const auto& [key, allowed] : e.where) {
    const Param* p = nullptr;
    for (const Param& q : params)
      if (q.key == key) p = &q;
    if (!p) return false;
    bool any = false;
    for (const ParamValue& v : allowed) any = any || same_value(v, p->value);
    if (!any) return false;
  }
  return true;
}

// The point at odometer position odo, before exclusions.
RawPoint point_at(const std::vector<Axis>& axes, const std::vector<std::size_t>& odo) {
  RawPoint r;
  for (std::size_t a = 0; a < axes.size(); ++a)
    for (std::size_t k = 0; k < axes[a].keys.size(); ++k) {
      r.params.push_back({axes[a].keys[k], axes[a].values[odo[a]][k]});
      r.origins.push_back(axes[a].origins[odo[a]]);
    }
  return r;
}

// Applies the exclusions; false when one skips the point.
bool apply_exclusions(const std::vector<Exclusion>& exclusions, RawPoint& r) {
  for (const Exclusion& e : exclusions) {
    if (!matches(e, r.params)) continue;
    if (e.skip) return false;
    for (std::size_t q = r.params.size(); q-- > 0;)
      for (const std::string& d : e.drop)
        if (r.params[q].key == d) {
          r.params.erase(r.params.begin() + std::ptrdiff_t(q));
          r.origins.erase(r.origins.begin() + std::ptrdiff_t(q));
          break;
        }
  }
  return true;
}

// Advances the odometer, last axis fastest; false when the first axis wraps (or no axes).
bool advance(const std::vector<Axis>& axes, std::vector<std::size_t>& odo) {
  for (std::size_t a = axes.size(); a-- > 0;) {
    if (++odo[a] < axes[a].values.size()) return true;
    odo[a] = 0;
  }
  return false;
}

}  // namespace

std::vector<RawPoint> expand_points(const std::vector<Axis>& axes,
                                    const std::vector<Exclusion>& exclusions) {
  std::vector<RawPoint> points;
  std::vector<std::size_t> odo(axes.size(), 0);
  do {
    RawPoint r = point_at(axes, odo);
    if (!apply_exclusions(exclusions, r)) continue;
    bool dup = false;
    for (const RawPoint& o : points) dup = dup || o.params == r.params;
    if (!dup) points.push_back(r);
  } while (advance(axes, odo));
  return points;
}

}  // namespace moe::study_detail
