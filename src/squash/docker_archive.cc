#include "squash/docker_archive.h"

#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/reference.h"
#include "squash/tar.h"

namespace wharf::squash {

using nlohmann::json;

std::string squashed_config(const std::string& original, const std::string& diff_id,
                            const std::string& source_manifest) {
  json c = json::parse(original);
  c["rootfs"] = {{"type", "layers"}, {"diff_ids", json::array({diff_id})}};
  json history = json::array();
  if (c.contains("history") && c["history"].is_array())
    for (auto h : c["history"]) {
      h["empty_layer"] = true;
      history.push_back(std::move(h));
    }
  json entry = {{"created_by", "wharf squash of " + source_manifest},
                {"comment", "all layers of " + source_manifest + " flattened into one"}};
  if (c.contains("created")) entry["created"] = c["created"];
  history.push_back(std::move(entry));
  c["history"] = std::move(history);
  return c.dump();  // keys sorted: deterministic
}

namespace {

TarEntry file(const std::string& path, uint64_t size) {
  TarEntry e;
  e.path = path;
  e.type = EntryType::File;
  e.mode = 0644;
  e.size = size;
  return e;
}

std::string manifest_json(const ArchiveLayout& a, const std::string& config_name) {
  json m = {{"Config", config_name}, {"Layers", json::array({a.layer_dir + "/layer.tar"})}};
  m["RepoTags"] = a.repo_tag ? json::array({*a.repo_tag}) : json::array();
  return json::array({m}).dump();
}

std::string repositories_json(const ArchiveLayout& a) {
  if (!a.repo_tag) return "{}";
  auto colon = a.repo_tag->rfind(':');
  return json{{a.repo_tag->substr(0, colon), {{a.repo_tag->substr(colon + 1), a.layer_dir}}}}.dump();
}

void add_file(std::string& out, const std::string& path, const std::string& data) {
  write_header(file(path, data.size()), out);
  out += data;
  out.append(tar_padding(data.size()), '\0');
}

}  // namespace

std::string archive_head(const ArchiveLayout& a) {
  std::string out;
  TarEntry d;
  d.path = a.layer_dir;
  d.type = EntryType::Dir;
  d.mode = 0755;
  write_header(d, out);
  write_header(file(a.layer_dir + "/layer.tar", a.layer_size), out);
  return out;
}

std::string archive_tail(const ArchiveLayout& a, const std::string& config) {
  std::string out(tar_padding(a.layer_size), '\0');
  std::string config_name = core::sha256_of(config).hex() + ".json";
  add_file(out, config_name, config);
  add_file(out, "manifest.json", manifest_json(a, config_name));
  add_file(out, "repositories", repositories_json(a));
  out.append(1024, '\0');
  return out;
}

uint64_t archive_size(const ArchiveLayout& a, const std::string& config) {
  return archive_head(a).size() + a.layer_size + archive_tail(a, config).size();
}

bool valid_repo_tag(const std::string& host, const std::string& name, const std::string& tag) {
  if (host.empty() || !core::valid_tag(tag) || !core::valid_repository_name(name)) return false;
  // host: DNS labels or an IP, optional :port
  auto colon = host.rfind(':');
  std::string h = host.substr(0, colon);
  if (colon != std::string::npos) {
    auto port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  }
  if (h.empty()) return false;
  for (char c : h)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) return false;
  return h.front() != '-' && h.front() != '.' && h.back() != '-' && h.back() != '.';
}

}  // namespace wharf::squash
