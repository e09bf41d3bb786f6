// The shortest decimal text that reads back as exactly the same double (std::to_chars), for
// configs written into run files, study ids and JSON: "0.001", "1e-30", "3".
#pragma once

#include <string>

namespace moe {

// Shortest round-trip form; "nan", "inf", "-inf" for the non-finite values.
std::string shortest_double(double v);

}  // namespace moe
