// Reads tests/unit/netlink/golden/*.hex: '#' comment lines, then whitespace-separated hex bytes.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ipoib::netlink::testing {

inline std::vector<std::uint8_t> parse_hex_text(const std::string& text) {
  std::vector<std::uint8_t> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line[0] == '#') {
      continue;
    }
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      out.push_back(static_cast<std::uint8_t>(std::stoul(word, nullptr, 16)));
    }
  }
  return out;
}

inline std::vector<std::uint8_t> read_hex_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("cannot open " + path);
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_hex_text(buf.str());
}

// The bytes with nlmsg_seq and nlmsg_pid (offsets 8..15) zeroed: they vary per run.
inline std::vector<std::uint8_t> without_seq_pid(std::vector<std::uint8_t> bytes) {
  for (std::size_t i = 8; i < 16 && i < bytes.size(); ++i) {
    bytes[i] = 0;
  }
  return bytes;
}

}  // namespace ipoib::netlink::testing
