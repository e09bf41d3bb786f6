// Raw text for the text-based corpora, as lines: data.source = "text" (UTF-8 files named by a
// path or a glob(3) pattern, in sorted order) and "kjv" (the King James Bible from the
// bible-kjv package's `bible` program, one verse per line, references stripped).
#pragma once

#include <string>
#include <vector>

namespace moe {

// The files a data.path names: the file itself, or the sorted matches of a glob(3) pattern.
// Throws UserError naming data.path when nothing matches or a match is not a readable file.
std::vector<std::string> expand_data_path(const std::string& pattern);

// One line per file: "path size mtime_ns", identifying the inputs without reading them (the
// cache key of prepared data).
std::string files_fingerprint(const std::vector<std::string>& files);

// The non-blank lines of the files, in order, without line terminators ("\n" or "\r\n").
std::vector<std::string> read_text_lines(const std::vector<std::string>& files);

// The KJV: `bible -f "Gen1:1-Rev22:21"`, one verse per line with the reference prefix
// ("Ge1:1 ", "1Co13:4 ", ...) removed. Throws UserError when the program is missing.
std::vector<std::string> kjv_lines();

}  // namespace moe
