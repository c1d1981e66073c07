#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace wharf::core {

namespace {

// Reads one mapping into a struct through its visit(): each visited key is
// read when present (a struct recursively), and any key no visit() names is
// an error naming it.
class Loader {
 public:
  Loader(const YAML::Node& n, std::string where) : n_(n), where_(std::move(where)) {
    if (!n_.IsMap()) throw std::runtime_error((where_.empty() ? "the configuration" : where_) + ": expected a mapping");
  }
  template <class T>
  Loader& operator()(const char* key, T& out) {
    known_.insert(key);
    YAML::Node v = n_[key];
    if (!v) return *this;
    if constexpr (requires(T& t, Loader& l) { t.visit(l); }) {
      if (v.IsNull()) return *this;
      Loader sub(v, name(key));
      out.visit(sub);
      sub.check_unknown();
    } else {
      try {
        out = v.as<T>();
      } catch (const YAML::Exception&) {
        throw std::runtime_error("configuration key " + name(key) + ": not a valid value");
      }
    }
    return *this;
  }
  void check_unknown() const {
    for (auto it = n_.begin(); it != n_.end(); ++it) {
      auto k = it->first.as<std::string>();
      if (!known_.count(k)) throw std::runtime_error("unknown configuration key " + name(k));
    }
  }

 private:
  std::string name(const std::string& key) const { return where_.empty() ? key : where_ + "." + key; }
  const YAML::Node& n_;
  std::string where_;
  std::set<std::string> known_;
};

void validate(const Config& c) {
  if (c.log.format != "text" && c.log.format != "json") throw std::runtime_error("log.format must be text or json");
  if (c.squash.limits.max_path_bytes > 65535)
    throw std::runtime_error("squash.limits.max_path_bytes must be at most 65535");
}

Config from_node(const YAML::Node& root, const std::string& where) {
  Config c;
  if (root.IsNull()) return c;
  try {
    Loader l(root, "");
    c.visit(l);
    l.check_unknown();
    validate(c);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("config " + where + ": " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("config " + where + ": " + e.what());
  }
  return c;
}

}  // namespace

Config load_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read config " + path + ": " + e.what());
  }
  return from_node(root, path);
}

Config parse_config(const std::string& yaml, const std::string& where) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const std::exception& e) {
    throw std::runtime_error("config " + where + ": " + e.what());
  }
  return from_node(root, where);
}

}  // namespace wharf::core
