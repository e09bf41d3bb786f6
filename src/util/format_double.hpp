// The shortest decimal text that reads back as exactly the same double (std::to_chars in
// printf's %g style), for configs written into run files and study ids: "0.001", "1e-30", "3".
#pragma once

#include <string>

namespace moe {

// Shortest round-trip form; "nan", "inf", "-inf" for the non-finite values.
std::string shortest_double(double v);

}  // namespace moe
