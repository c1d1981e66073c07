#include "squash/plan.h"

#include <algorithm>
#include <deque>
#include <map>

namespace wharf::squash {

namespace {

constexpr uint32_t kSynthetic = UINT32_MAX;

struct Node {
  uint32_t layer = kSynthetic;  // metadata source (kSynthetic: implicit parent dir)
  uint32_t index = 0;
  bool dir = false;
  uint64_t inode = 0;  // non-dirs: (layer << 32 | index) of the entry defining the content
};

using Tree = std::map<std::string, Node>;

uint64_t inode_of(uint32_t layer, uint32_t index) { return (uint64_t{layer} << 32) | index; }

// Removes `path`'s children (not the path itself).
void erase_children(Tree& t, const std::string& path) {
  if (path.empty()) {  // root: everything but the root entry
    auto root = t.find("");
    Node keep;
    bool had = root != t.end();
    if (had) keep = root->second;
    t.clear();
    if (had) t.emplace("", keep);
    return;
  }
  // Children of "a" sort in ["a/", "a0"): '0' follows '/'.
  t.erase(t.lower_bound(path + '/'), t.lower_bound(path + '0'));
}

void erase_subtree(Tree& t, const std::string& path) {
  erase_children(t, path);
  if (!path.empty()) t.erase(path);
}

std::string_view basename(std::string_view p) {
  auto s = p.rfind('/');
  return s == std::string_view::npos ? p : p.substr(s + 1);
}
std::string dirname(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? std::string() : p.substr(0, s);
}

void ensure_parents(Tree& t, const std::string& path) {
  std::string parent = dirname(path);
  if (parent.empty()) return;
  auto it = t.find(parent);
  if (it != t.end() && it->second.dir) return;
  ensure_parents(t, parent);
  if (it != t.end()) erase_subtree(t, parent);  // a non-directory in the way is replaced
  Node d;
  d.dir = true;
  t[parent] = d;
}

std::vector<std::string> split_path(std::string_view p) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Where an entry at `path` really lands: extracting a layer follows symlinks
// that lower layers put among its parent directories (the final component is
// not followed: an entry replaces a symlink). Resolution stays inside the root
// (".." at the root is the root, absolute targets start at the root), as
// umoci, containerd and docker do. Loops end after 40 links.
std::string resolve_parents(const Tree& t, const std::vector<LayerIndex>& layers, const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return path;
  std::deque<std::string> todo;
  for (auto& c : split_path(std::string_view(path).substr(0, slash))) todo.push_back(std::move(c));
  std::string cur;
  int hops = 0;
  while (!todo.empty()) {
    std::string comp = std::move(todo.front());
    todo.pop_front();
    if (comp == ".") continue;
    if (comp == "..") {
      cur = dirname(cur);
      continue;
    }
    std::string next = cur.empty() ? comp : cur + "/" + comp;
    auto it = t.find(next);
    if (it != t.end() && !it->second.dir && it->second.layer != kSynthetic) {
      const auto& e = layers[it->second.layer].entries[it->second.index];
      if (e.type == EntryType::Symlink && ++hops <= 40) {
        if (!e.link.empty() && e.link[0] == '/') cur.clear();
        auto parts = split_path(e.link);
        for (auto p = parts.rbegin(); p != parts.rend(); ++p) todo.push_front(*p);
        continue;
      }
    }
    cur = std::move(next);
  }
  std::string base = path.substr(slash + 1);
  return cur.empty() ? base : cur + "/" + base;
}

}  // namespace

TarEntry out_entry(const std::vector<LayerIndex>& layers, const OutEntry& o) {
  TarEntry e;
  if (o.synthetic_dir) {
    e.type = EntryType::Dir;
    e.mode = 0755;
  } else {
    e = layers[o.layer].entries[o.index];
  }
  e.path = *o.path;
  if (o.hardlink) {
    e.type = EntryType::HardLink;
    e.link = *o.link_to;
    e.size = 0;
  }
  return e;
}

Plan plan_merge(const std::vector<LayerIndex>& layers) {
  auto owned = std::make_shared<Tree>();  // its keys are the output paths: the Plan keeps it
  Tree& tree = *owned;
  for (uint32_t l = 0; l < layers.size(); ++l) {
    const auto& entries = layers[l].entries;
    // 1. Whiteouts of this layer apply to the tree below it.
    for (const auto& e : entries) {
      auto base = basename(e.path);
      if (!base.starts_with(".wh.")) continue;
      std::string parent = dirname(resolve_parents(tree, layers, e.path));
      if (base == ".wh..wh..opq") {
        erase_children(tree, parent);
      } else if (base.starts_with(".wh..wh.")) {
        // other AUFS metadata: dropped
      } else {
        std::string victim = parent.empty() ? std::string(base.substr(4)) : parent + "/" + std::string(base.substr(4));
        erase_subtree(tree, victim);
      }
    }
    // 2. The other entries, in order; the last writer of a path wins.
    for (uint32_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      if (basename(e.path).starts_with(".wh.")) continue;
      const std::string path = resolve_parents(tree, layers, e.path);
      Node n;
      n.layer = l;
      n.index = i;
      if (e.type == EntryType::Dir) {
        n.dir = true;
        auto it = tree.find(path);
        if (it != tree.end() && it->second.dir) {
          it->second = n;  // keeps the children, takes the new metadata
          continue;
        }
        if (it != tree.end()) tree.erase(it);
        ensure_parents(tree, path);
        tree[path] = n;
        continue;
      }
      if (path.empty()) throw LayerError("layer has a non-directory entry for the root");
      if (e.type == EntryType::HardLink) {
        auto t = tree.find(resolve_parents(tree, layers, e.link));
        if (t == tree.end() || t->second.dir)
          throw LayerError("hardlink \"" + e.path + "\" points at \"" + e.link + "\", which is not a file at that point");
        n.inode = t->second.inode;
        // Metadata of a hardlink is its target's (they share the inode).
        n.layer = static_cast<uint32_t>(n.inode >> 32);
        n.index = static_cast<uint32_t>(n.inode & 0xffffffff);
      } else {
        n.inode = inode_of(l, i);
      }
      erase_subtree(tree, path);
      ensure_parents(tree, path);
      tree[path] = n;
    }
  }

  // Group non-directories by inode; the first path in byte order holds the
  // content. One flat record per path (24 bytes; a map of vectors cost ~80
  // per entry at 10^6 entries): sorted by (inode, byte order of the path).
  struct Link {
    uint64_t inode;
    uint64_t seq;  // position of the path in byte order
    const std::string* path;
  };
  Plan plan;
  plan.data.resize(layers.size());
  plan.paths = owned;
  std::vector<Link> links;
  uint64_t seq = 0;
  for (auto it = tree.begin(); it != tree.end(); ++it, ++seq) {
    const auto& [path, n] = *it;
    if (n.dir) {
      OutEntry o;
      o.path = &path;
      if (n.layer == kSynthetic) {
        // A parent no layer declares is not invented: extracting the
        // squashed layer creates it, as extracting the layers did (with the
        // extractor's mode and time, not ours). Only one left empty (its
        // children deleted by a later whiteout) must be written, or it would
        // vanish.
        auto child = tree.lower_bound(path + '/');
        if (child != tree.end() && child->first < path + '0') continue;
        o.synthetic_dir = true;
      } else {
        o.layer = n.layer;
        o.index = n.index;
      }
      plan.headers_only.push_back(std::move(o));
      continue;
    }
    links.push_back({n.inode, seq, &path});
  }
  std::sort(links.begin(), links.end(),
            [](const Link& a, const Link& b) { return a.inode != b.inode ? a.inode < b.inode : a.seq < b.seq; });
  // Groups [begin, end) of one inode: those with data in inode order, which
  // is (layer, index), the stream order; the others later sorted by first path.
  std::vector<std::pair<size_t, size_t>> data_groups, header_groups;
  for (size_t i = 0; i < links.size();) {
    size_t j = i + 1;
    while (j < links.size() && links[j].inode == links[i].inode) ++j;
    uint64_t ino = links[i].inode;
    const auto& def = layers[static_cast<uint32_t>(ino >> 32)].entries[static_cast<uint32_t>(ino & 0xffffffff)];
    (def.type == EntryType::File && def.size > 0 ? data_groups : header_groups).emplace_back(i, j);
    i = j;
  }
  std::sort(header_groups.begin(), header_groups.end(),
            [&](const auto& a, const auto& b) { return links[a.first].seq < links[b.first].seq; });
  auto emit = [&](const std::pair<size_t, size_t>& g, std::vector<OutEntry>& out) {
    uint64_t ino = links[g.first].inode;
    uint32_t l = static_cast<uint32_t>(ino >> 32), i = static_cast<uint32_t>(ino & 0xffffffff);
    for (size_t k = g.first; k < g.second; ++k)
      out.push_back(OutEntry{l, i, links[k].path, k > g.first ? links[g.first].path : nullptr, k > g.first, false});
  };
  for (auto& g : header_groups) emit(g, plan.headers_only);
  for (auto& g : data_groups) emit(g, plan.data[static_cast<uint32_t>(links[g.first].inode >> 32)]);

  // Exact size: every header as it will be written, data, padding, end blocks.
  std::string scratch;
  auto account = [&](const OutEntry& o) {
    scratch.clear();
    TarEntry e = out_entry(layers, o);
    plan.tar_size += write_header(e, scratch);
    if (e.type == EntryType::File) plan.tar_size += e.size + tar_padding(e.size);
  };
  for (const auto& o : plan.headers_only) account(o);
  for (const auto& per : plan.data)
    for (const auto& o : per) account(o);
  plan.tar_size += 1024;
  return plan;
}

}  // namespace wharf::squash
