#include "ipoib/cni/network_attachment.h"

#include <cstdint>
#include <optional>

#include "ipoib/base/strings.h"
#include "ipoib/cni/config.h"

namespace ipoib::cni {
namespace {

Error yaml_error(const std::string& what) {
  return Error(ErrorCode::kDecodeFailure, "YAML NetworkAttachmentDefinition: " + what);
}

// A YAML line without its line break (and a CR before it); `indent` counts leading spaces.
struct Line {
  std::string_view text;
  std::size_t indent = 0;
  [[nodiscard]] std::string_view content() const { return text.substr(indent); }
  // Blank, or only a comment: YAML ignores it between keys.
  [[nodiscard]] bool ignorable() const { return content().empty() || content().front() == '#'; }
};

std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> lines;
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    const auto first = line.find_first_not_of(' ');
    lines.push_back({line, first == std::string_view::npos ? line.size() : first});
  }
  return lines;
}

// The value of `key:` on a line whose content starts with it; nullopt when it is another key.
std::optional<std::string_view> key_value(std::string_view content, std::string_view key) {
  if (!starts_with(content, key) || content.size() == key.size() || content[key.size()] != ':') {
    return std::nullopt;
  }
  std::string_view rest = content.substr(key.size() + 1);
  if (!rest.empty() && rest.front() != ' ') {
    return std::nullopt;  // "config:x" is a plain scalar, not a key
  }
  return trim(rest);
}

// A scalar with no quotes and no comment: "NetworkAttachmentDefinition" or "'...'" both match.
std::string_view unquote_simple(std::string_view value) {
  if (const auto hash = value.find(" #"); hash != std::string_view::npos) {
    value = trim(value.substr(0, hash));
  }
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
  }
  return value;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// A double-quoted escape at text[i] (just after the backslash); advances i past it.
Status unescape(std::string_view text, std::size_t& i, std::string& out) {
  const char c = text[i++];
  switch (c) {
    case '0':
      out.push_back('\0');
      return ok_status();
    case 'a':
      out.push_back('\a');
      return ok_status();
    case 'b':
      out.push_back('\b');
      return ok_status();
    case 't':
      out.push_back('\t');
      return ok_status();
    case 'n':
      out.push_back('\n');
      return ok_status();
    case 'v':
      out.push_back('\v');
      return ok_status();
    case 'f':
      out.push_back('\f');
      return ok_status();
    case 'r':
      out.push_back('\r');
      return ok_status();
    case 'e':
      out.push_back('\x1b');
      return ok_status();
    case ' ':
    case '"':
    case '/':
    case '\\':
      out.push_back(c);
      return ok_status();
    case 'x':
    case 'u':
    case 'U': {
      const std::size_t digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
      if (i + digits > text.size()) {
        break;
      }
      auto value = parse_uint("0x" + std::string(text.substr(i, digits)), 21);
      if (!value.ok() || *value > 0x10ffff || (*value >= 0xd800 && *value <= 0xdfff)) {
        break;
      }
      append_utf8(out, static_cast<std::uint32_t>(*value));
      i += digits;
      return ok_status();
    }
    default:
      break;
  }
  return yaml_error("spec.config: invalid escape \\" + std::string(1, c));
}

// A quoted (flow) scalar starting at lines[row], column `col` (the opening quote). Line breaks
// fold as YAML folds them: one break becomes a space, each further (empty) line a newline, and
// the spaces around a break are dropped; a backslash before a break in a double-quoted scalar
// joins the lines with nothing between.
Result<std::string> quoted_scalar(const std::vector<Line>& lines, std::size_t row,
                                  std::size_t col) {
  const char quote = lines[row].text[col];
  std::string out;
  std::string_view text = lines[row].text.substr(col + 1);
  for (;;) {
    bool joined = false;                   // the line ended in an escaped line break
    std::size_t content_end = out.size();  // out[..content_end) cannot be trailing spaces
    for (std::size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (c == quote) {
        if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          out.push_back('\'');
          ++i;
          content_end = out.size();
          continue;
        }
        const std::string_view after = trim(text.substr(i + 1));
        if (!after.empty() && after.front() != '#') {
          return yaml_error("spec.config: text after the closing quote");
        }
        return out;
      }
      if (quote == '"' && c == '\\') {
        if (i + 1 == text.size()) {
          joined = true;  // the spaces before an escaped break are content
          content_end = out.size();
          break;
        }
        ++i;
        IPOIB_TRY(unescape(text, i, out));
        --i;
        content_end = out.size();
        continue;
      }
      out.push_back(c);
      if (c != ' ' && c != '\t') {
        content_end = out.size();
      }
    }
    out.resize(content_end);
    std::size_t empty_lines = 0;
    do {
      if (++row == lines.size()) {
        return yaml_error("spec.config: unterminated quoted string");
      }
      text = trim(lines[row].text);
    } while (text.empty() && ++empty_lines > 0);
    if (!joined) {
      out += empty_lines == 0 ? std::string(" ") : std::string(empty_lines, '\n');
    }
  }
}

// A block scalar (`|`, `>`, with optional chomping and indentation indicators) whose header is
// `header` on lines[row]; its content is the following lines indented more than `key_indent`.
Result<std::string> block_scalar(const std::vector<Line>& lines, std::size_t row,
                                 std::size_t key_indent, std::string_view header) {
  const bool folded = header.front() == '>';
  char chomp = ' ';
  std::size_t explicit_indent = 0;
  std::string_view rest = header.substr(1);
  while (!rest.empty() && rest.front() != ' ' && rest.front() != '#') {
    const char c = rest.front();
    if ((c == '-' || c == '+') && chomp == ' ') {
      chomp = c;
    } else if (c >= '1' && c <= '9' && explicit_indent == 0) {
      explicit_indent = key_indent + static_cast<std::size_t>(c - '0');
    } else {
      return yaml_error("spec.config: bad block scalar header '" + std::string(header) + "'");
    }
    rest.remove_prefix(1);
  }
  if (!trim(rest).empty() && trim(rest).front() != '#') {
    return yaml_error("spec.config: text after the block scalar header");
  }
  std::size_t indent = explicit_indent;
  std::string out;
  std::size_t breaks = 0;  // newlines owed before the next content line
  bool any = false;
  for (std::size_t r = row + 1; r < lines.size(); ++r) {
    const Line& line = lines[r];
    if (line.content().empty()) {
      ++breaks;
      continue;
    }
    if (line.indent <= key_indent) {
      break;
    }
    if (indent == 0) {
      indent = line.indent;
    }
    if (line.indent < indent) {
      return yaml_error("spec.config: block scalar line less indented than its first line");
    }
    if (any) {
      // Folding joins two adjacent lines with a space; more-indented lines keep their breaks.
      const bool fold = folded && breaks == 0 && line.indent == indent;
      out += fold ? std::string(" ") : std::string(breaks + 1, '\n');
    }
    any = true;
    breaks = 0;
    out += line.text.substr(indent);
  }
  if (any && chomp != '-') {
    out += chomp == '+' ? std::string(breaks + 1, '\n') : std::string("\n");
  }
  return out;
}

// A plain (unquoted) scalar: the rest of the line and more-indented continuation lines, folded.
std::string plain_scalar(const std::vector<Line>& lines, std::size_t row, std::size_t key_indent,
                         std::string_view first) {
  std::string out(first);
  if (const auto hash = out.find(" #"); hash != std::string::npos) {
    out.resize(hash);
  }
  for (std::size_t r = row + 1; r < lines.size(); ++r) {
    if (lines[r].content().empty()) {
      continue;
    }
    if (lines[r].indent <= key_indent || lines[r].content().front() == '#') {
      break;
    }
    out += " " + std::string(trim(lines[r].content()));
  }
  return std::string(trim(out));
}

// spec.config of one YAML document (lines [begin, end)); nullopt when it is not a NAD.
Result<std::optional<std::string>> document_config(const std::vector<Line>& lines,
                                                   std::size_t begin, std::size_t end) {
  bool is_nad = false;
  std::optional<std::size_t> spec_row;
  for (std::size_t r = begin; r < end; ++r) {
    if (lines[r].indent != 0 || lines[r].ignorable()) {
      continue;
    }
    if (auto kind = key_value(lines[r].content(), "kind")) {
      is_nad = unquote_simple(*kind) == "NetworkAttachmentDefinition";
    } else if (auto spec = key_value(lines[r].content(), "spec")) {
      if (!spec->empty() && spec->front() != '#') {
        return yaml_error("spec: expected a block mapping (flow style is not read)");
      }
      spec_row = r;
    }
  }
  if (!is_nad) {
    return std::optional<std::string>();
  }
  if (!spec_row) {
    return yaml_error("no spec");
  }
  std::optional<std::size_t> child_indent;
  for (std::size_t r = *spec_row + 1; r < end; ++r) {
    const Line& line = lines[r];
    if (line.ignorable()) {
      continue;
    }
    if (line.indent == 0) {
      break;
    }
    if (!child_indent) {
      child_indent = line.indent;
    }
    if (line.indent != *child_indent) {
      continue;
    }
    const auto value = key_value(line.content(), "config");
    if (!value) {
      continue;
    }
    if (value->empty() || value->front() == '#') {
      return yaml_error("spec.config: empty (the config must follow `config:` on its line)");
    }
    const std::size_t col = static_cast<std::size_t>(value->data() - line.text.data());
    switch (value->front()) {
      case '\'':
      case '"': {
        IPOIB_TRY_ASSIGN(std::string text, quoted_scalar(lines, r, col));
        return std::optional<std::string>(std::move(text));
      }
      case '|':
      case '>': {
        IPOIB_TRY_ASSIGN(std::string text, block_scalar(lines, r, line.indent, *value));
        return std::optional<std::string>(std::move(text));
      }
      case '{':
      case '[':
        return yaml_error(
            "spec.config: must be a string (quote the JSON, or use a `|` block), not a YAML "
            "mapping or list");
      case '&':
      case '*':
      case '!':
        return yaml_error("spec.config: anchors, aliases and tags are not read");
      default:
        return std::optional<std::string>(plain_scalar(lines, r, line.indent, *value));
    }
  }
  return yaml_error("no spec.config");
}

}  // namespace

Result<std::vector<std::string>> nad_yaml_configs(std::string_view yaml) {
  const std::vector<Line> lines = split_lines(yaml);
  std::vector<std::string> configs;
  std::size_t begin = 0;
  for (std::size_t r = 0; r <= lines.size(); ++r) {
    const bool boundary = r == lines.size() || lines[r].text == "---" ||
                          starts_with(lines[r].text, "--- ") || lines[r].text == "...";
    if (!boundary) {
      continue;
    }
    IPOIB_TRY_ASSIGN(std::optional<std::string> config, document_config(lines, begin, r));
    if (config) {
      configs.push_back(std::move(*config));
    }
    begin = r + 1;
  }
  if (configs.empty()) {
    return yaml_error("none in the file (neither JSON nor `kind: NetworkAttachmentDefinition`)");
  }
  return configs;
}

Result<std::vector<NetworkConfigText>> network_config_texts(std::string_view file_text) {
  std::vector<NetworkConfigText> out;
  auto doc = parse_json(file_text, "config");
  if (doc.ok()) {
    if (!doc->is_object() ||
        doc->value("kind", nlohmann::json()) != "NetworkAttachmentDefinition") {
      out.push_back({"", std::string(file_text)});
      return out;
    }
    const nlohmann::json* config = nullptr;
    if (const auto spec = doc->find("spec"); spec != doc->end() && spec->is_object()) {
      if (const auto it = spec->find("config"); it != spec->end() && it->is_string()) {
        config = &*it;
      }
    }
    if (config == nullptr) {
      return Error(ErrorCode::kInvalidNetworkConfig,
                   "NetworkAttachmentDefinition: spec.config missing or not a string");
    }
    out.push_back({"spec.config", config->get<std::string>()});
    return out;
  }
  auto configs = nad_yaml_configs(file_text);
  if (!configs.ok()) {
    // Text that starts like JSON is broken JSON: the parser's message says where.
    const std::string_view start = trim(file_text);
    if (!start.empty() && (start.front() == '{' || start.front() == '[')) {
      return std::move(doc).error();
    }
    return std::move(configs).error();
  }
  for (std::size_t i = 0; i < configs->size(); ++i) {
    std::string where =
        configs->size() == 1 ? "spec.config" : "document " + std::to_string(i + 1) + " spec.config";
    out.push_back({std::move(where), std::move((*configs)[i])});
  }
  return out;
}

}  // namespace ipoib::cni
