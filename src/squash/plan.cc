#include "squash/plan.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>

namespace wharf::squash {

namespace {

constexpr uint32_t kNone = OutEntry::kNone;
constexpr uint32_t kSynthetic = Plan::Node::kSynthetic;
using Node = Plan::Node;

std::string_view basename(std::string_view p) {
  auto s = p.rfind('/');
  return s == std::string_view::npos ? p : p.substr(s + 1);
}

// Pushes the components of `p` onto `todo` so that the first is on top.
void push_components(std::string_view p, std::vector<std::string_view>& todo) {
  size_t end = p.size();
  while (end > 0) {
    size_t s = p.rfind('/', end - 1);
    size_t b = s == std::string_view::npos ? 0 : s + 1;
    if (end > b) todo.push_back(p.substr(b, end - b));
    if (s == std::string_view::npos) break;
    end = s;
  }
}

// The merged tree while the layers are applied: nodes (the Plan's, moved
// there at the end), their names, and an open-addressing table
// (parent, name) -> node with linear probing and tombstones.
class Tree {
 public:
  explicit Tree(const std::vector<LayerIndex>& layers) : layers_(layers) {
    size_t total = 1;
    for (const auto& l : layers) total += l.size();
    nodes.reserve(total);
    nodes.emplace_back();  // the root
    nodes[0].dir = 1;
    slots_.assign(std::bit_ceil(std::max<size_t>(16, total * 2)), kEmpty);
  }

  std::vector<Node> nodes;
  std::string names;

  std::string_view name(uint32_t n) const { return {names.data() + nodes[n].name, nodes[n].name_len}; }

  uint32_t child(uint32_t parent, std::string_view nm) const {
    if (parent == kNone) return kNone;
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(parent, nm) & mask;; i = (i + 1) & mask) {
      uint32_t s = slots_[i];
      if (s == kEmpty) return kNone;
      if (s != kTomb && nodes[s].parent == parent && name(s) == nm) return s;
    }
  }

  // Adds a child that is not there yet.
  uint32_t add_child(uint32_t parent, std::string_view nm, bool dir) {
    if (nm.size() > UINT16_MAX) throw LimitError("a path component is longer than 65535 bytes");
    if (names.size() + nm.size() > UINT32_MAX) throw LimitError("the merged tree's names take more than 4 GiB");
    if ((used_ + tombs_ + 1) * 2 > slots_.size()) rehash();
    uint32_t n;
    if (free_ != kNone) {
      n = free_;
      free_ = nodes[n].next;
    } else {
      n = static_cast<uint32_t>(nodes.size());
      nodes.emplace_back();
    }
    Node& d = nodes[n];
    d = Node{};
    d.name = static_cast<uint32_t>(names.size());
    d.name_len = static_cast<uint16_t>(nm.size());
    names.append(nm);
    d.dir = dir;
    d.parent = parent;
    d.next = nodes[parent].first_child;
    if (d.next != kNone) nodes[d.next].prev = n;
    nodes[parent].first_child = n;
    size_t mask = slots_.size() - 1;
    size_t i = hash(parent, nm) & mask;
    while (slots_[i] != kEmpty && slots_[i] != kTomb) i = (i + 1) & mask;
    if (slots_[i] == kTomb) --tombs_;
    slots_[i] = n;
    ++used_;
    return n;
  }

  // Removes `n`'s children (not `n`).
  void erase_children(uint32_t n) {
    stack_.clear();
    for (uint32_t c = nodes[n].first_child; c != kNone; c = nodes[c].next) stack_.push_back(c);
    nodes[n].first_child = kNone;
    while (!stack_.empty()) {
      uint32_t c = stack_.back();
      stack_.pop_back();
      for (uint32_t g = nodes[c].first_child; g != kNone; g = nodes[g].next) stack_.push_back(g);
      release(c);
    }
  }

  // Removes `n` and its subtree. REQUIRES: n is not the root.
  void erase(uint32_t n) {
    erase_children(n);
    Node& d = nodes[n];
    if (d.prev != kNone)
      nodes[d.prev].next = d.next;
    else
      nodes[d.parent].first_child = d.next;
    if (d.next != kNone) nodes[d.next].prev = d.prev;
    release(n);
  }

  bool is_symlink(uint32_t n) const {
    const Node& d = nodes[n];
    return !d.dir && d.layer != kSynthetic && layers_[d.layer].type(d.index) == EntryType::Symlink;
  }

  // Where an entry at `path` lands: extracting a layer follows symlinks that
  // lower layers put among its parent directories (the final component is
  // not followed: an entry replaces a symlink). Resolution stays inside the
  // root (".." at the root is the root, absolute targets start at the root),
  // as umoci, containerd and docker do. Loops end after 40 links.
  // Sets `parent` to the deepest directory on the way that exists and
  // `missing` to the components below it that are not directories yet.
  void resolve(std::string_view path, uint32_t& parent, std::vector<std::string_view>& missing) {
    missing.clear();
    parent = 0;
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos) return;
    todo_.clear();
    push_components(path.substr(0, slash), todo_);
    chain_.clear();  // (node or kNone, name) from the root down
    int hops = 0;
    while (!todo_.empty()) {
      std::string_view comp = todo_.back();
      todo_.pop_back();
      if (comp == ".") continue;
      if (comp == "..") {
        if (!chain_.empty()) chain_.pop_back();
        continue;
      }
      uint32_t cur = chain_.empty() ? 0 : chain_.back().first;
      uint32_t c = child(cur, comp);
      if (c != kNone && is_symlink(c) && ++hops <= 40) {
        std::string_view target = layers_[nodes[c].layer].link(nodes[c].index);
        if (!target.empty() && target[0] == '/') chain_.clear();
        push_components(target, todo_);
        continue;
      }
      chain_.emplace_back(c, comp);
    }
    size_t k = 0;
    while (k < chain_.size() && chain_[k].first != kNone && nodes[chain_[k].first].dir) ++k;
    parent = k == 0 ? 0 : chain_[k - 1].first;
    for (size_t j = k; j < chain_.size(); ++j) missing.push_back(chain_[j].second);
  }

  // Creates the `missing` directories below `parent` (a non-directory in the
  // way is replaced) and returns the last.
  uint32_t make_parents(uint32_t parent, const std::vector<std::string_view>& missing) {
    for (auto nm : missing) {
      uint32_t c = child(parent, nm);
      if (c != kNone && nodes[c].dir) {
        parent = c;
        continue;
      }
      if (c != kNone) erase(c);
      parent = add_child(parent, nm, true);
    }
    return parent;
  }

  // Frees the table (the plan needs only the nodes from here on).
  void drop_table() { std::vector<uint32_t>().swap(slots_); }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX, kTomb = UINT32_MAX - 1;

  static size_t hash(uint32_t parent, std::string_view nm) {
    uint64_t h = std::hash<std::string_view>{}(nm) ^ (uint64_t{parent} * 0x9E3779B97F4A7C15ull);
    return static_cast<size_t>(h ^ (h >> 31));
  }

  // Takes `n` out of the table and onto the free list (its links are left as they are).
  void release(uint32_t n) {
    size_t mask = slots_.size() - 1;
    size_t i = hash(nodes[n].parent, name(n)) & mask;
    while (slots_[i] != n) i = (i + 1) & mask;
    slots_[i] = kTomb;
    --used_;
    ++tombs_;
    nodes[n].next = free_;
    free_ = n;
  }

  void rehash() {
    size_t cap = std::bit_ceil(std::max<size_t>(16, (used_ + 1) * 4));
    std::vector<uint32_t> old(cap, kEmpty);
    old.swap(slots_);
    size_t mask = cap - 1;
    for (uint32_t s : old) {
      if (s == kEmpty || s == kTomb) continue;
      size_t i = hash(nodes[s].parent, name(s)) & mask;
      while (slots_[i] != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
    tombs_ = 0;
  }

  const std::vector<LayerIndex>& layers_;
  std::vector<uint32_t> slots_;
  size_t used_ = 0, tombs_ = 0;
  uint32_t free_ = kNone;
  std::vector<uint32_t> stack_;
  std::vector<std::string_view> todo_;
  std::vector<std::pair<uint32_t, std::string_view>> chain_;
};

}  // namespace

void Plan::path(uint32_t node, std::string& out) const {
  out.clear();
  size_t len = 0;
  uint32_t depth = 0;
  for (uint32_t n = node; n != 0; n = nodes[n].parent) len += nodes[n].name_len + (depth++ ? 1 : 0);
  out.resize(len);
  size_t end = len;
  bool last = true;
  for (uint32_t n = node; n != 0; n = nodes[n].parent) {
    if (!last) out[--end] = '/';
    last = false;
    end -= nodes[n].name_len;
    std::memcpy(out.data() + end, names.data() + nodes[n].name, nodes[n].name_len);
  }
}

TarEntry out_entry(const std::vector<LayerIndex>& layers, const Plan& plan, const OutEntry& o) {
  TarEntry e;
  if (plan.synthetic(o)) {
    e.type = EntryType::Dir;
    e.mode = 0755;
  } else {
    e = layers[plan.layer(o)].entry(plan.index(o));
  }
  plan.path(o.node, e.path);
  if (o.hardlink()) {
    e.type = EntryType::HardLink;
    plan.path(o.link_to, e.link);
    e.size = 0;
  }
  return e;
}

Plan plan_merge(const std::vector<LayerIndex>& layers) {
  Tree tree(layers);
  uint32_t parent;
  std::vector<std::string_view> missing;
  for (uint32_t l = 0; l < layers.size(); ++l) {
    const auto& entries = layers[l];
    // 1. Whiteouts of this layer apply to the tree below it.
    for (uint32_t i = 0; i < entries.size(); ++i) {
      std::string_view path = entries.path(i);
      auto base = basename(path);
      if (!base.starts_with(".wh.")) continue;
      tree.resolve(path, parent, missing);
      if (!missing.empty()) continue;  // its directory does not exist: nothing to hide
      if (base == ".wh..wh..opq") {
        tree.erase_children(parent);
      } else if (base.starts_with(".wh..wh.")) {
        // other AUFS metadata: dropped
      } else if (uint32_t victim = tree.child(parent, base.substr(4)); victim != kNone) {
        tree.erase(victim);
      }
    }
    // 2. The other entries, in order; the last writer of a path wins.
    for (uint32_t i = 0; i < entries.size(); ++i) {
      std::string_view path = entries.path(i);
      auto base = basename(path);
      if (base.starts_with(".wh.")) continue;
      const EntryType type = entries.type(i);
      if (path.empty()) {
        if (type != EntryType::Dir) throw LayerError("layer has a non-directory entry for the root");
        tree.nodes[0].layer = l;
        tree.nodes[0].index = i;
        continue;
      }
      uint32_t meta_layer = l, meta_index = i;
      if (type == EntryType::HardLink) {
        // Resolved before the entry's own path changes anything.
        std::string_view target = entries.link(i);
        uint32_t tp;
        std::vector<std::string_view> tmissing;
        tree.resolve(target, tp, tmissing);
        uint32_t t = tmissing.empty() ? tree.child(tp, basename(target)) : kNone;
        if (t == kNone || tree.nodes[t].dir)
          throw LayerError("hardlink \"" + std::string(path) + "\" points at \"" + std::string(target) +
                           "\", which is not a file at that point");
        // A hardlink shares its target's inode: content and metadata.
        meta_layer = tree.nodes[t].layer;
        meta_index = tree.nodes[t].index;
      }
      tree.resolve(path, parent, missing);
      uint32_t c = missing.empty() ? tree.child(parent, base) : kNone;
      if (type == EntryType::Dir && c != kNone && tree.nodes[c].dir) {
        tree.nodes[c].layer = l;  // keeps the children, takes the new metadata
        tree.nodes[c].index = i;
        continue;
      }
      if (c != kNone) tree.erase(c);  // a non-directory hides the subtree; a directory replaces a file
      uint32_t dirn = tree.make_parents(parent, missing);
      uint32_t n = tree.add_child(dirn, base, type == EntryType::Dir);
      tree.nodes[n].layer = meta_layer;
      tree.nodes[n].index = meta_index;
    }
  }
  tree.drop_table();

  // Depth first, siblings in byte order: directories are emitted as met;
  // other nodes are collected with their position (in `prev`, which the
  // tree no longer needs) and grouped by inode below.
  Plan plan;
  plan.data.resize(layers.size());
  auto& nodes = tree.nodes;
  std::vector<uint32_t> others;
  {
    uint32_t seq = 0;
    std::vector<uint32_t> stack, kids;
    if (nodes[0].layer != kSynthetic) plan.headers_only.push_back(OutEntry{0, kNone});
    stack.push_back(0);
    while (!stack.empty()) {
      uint32_t n = stack.back();
      stack.pop_back();
      if (n != 0) {
        Node& d = nodes[n];
        d.prev = seq++;
        if (!d.dir) {
          others.push_back(n);
          continue;
        }
        // A parent no layer declares is not invented: extracting the
        // squashed layer creates it, as extracting the layers did (with the
        // extractor's mode and time, not ours). Only one left empty (its
        // children deleted by a later whiteout) must be written, or it
        // would vanish.
        if (d.layer != kSynthetic || d.first_child == kNone) plan.headers_only.push_back(OutEntry{n, kNone});
      }
      kids.clear();
      for (uint32_t c = nodes[n].first_child; c != kNone; c = nodes[c].next) kids.push_back(c);
      std::sort(kids.begin(), kids.end(),
                [&](uint32_t a, uint32_t b) { return tree.name(a) < tree.name(b); });
      stack.insert(stack.end(), kids.rbegin(), kids.rend());
    }
  }
  // Group by inode ((layer, index) of the defining entry); the first path in
  // output order holds the content. Groups with data go in inode order,
  // which is the stream order; the others in order of their first path.
  auto inode = [&](uint32_t n) { return (uint64_t{nodes[n].layer} << 32) | nodes[n].index; };
  std::sort(others.begin(), others.end(), [&](uint32_t a, uint32_t b) {
    uint64_t ia = inode(a), ib = inode(b);
    return ia != ib ? ia < ib : nodes[a].prev < nodes[b].prev;
  });
  auto has_data = [&](uint32_t n) {
    const auto& e = layers[nodes[n].layer][nodes[n].index];
    return e.type == EntryType::File && e.size > 0;
  };
  auto emit = [&](size_t first, std::vector<OutEntry>& out) {
    uint32_t head = others[first];
    out.push_back(OutEntry{head, kNone});
    for (size_t k = first + 1; k < others.size() && inode(others[k]) == inode(head); ++k)
      out.push_back(OutEntry{others[k], head});
  };
  std::vector<uint32_t> header_groups;  // first positions in `others`
  for (size_t i = 0; i < others.size(); ++i) {
    if (i > 0 && inode(others[i]) == inode(others[i - 1])) continue;
    if (has_data(others[i]))
      emit(i, plan.data[nodes[others[i]].layer]);
    else
      header_groups.push_back(static_cast<uint32_t>(i));
  }
  std::sort(header_groups.begin(), header_groups.end(),
            [&](uint32_t a, uint32_t b) { return nodes[others[a]].prev < nodes[others[b]].prev; });
  for (uint32_t g : header_groups) emit(g, plan.headers_only);
  std::vector<uint32_t>().swap(others);
  std::vector<uint32_t>().swap(header_groups);
  plan.nodes = std::move(tree.nodes);
  plan.names = std::move(tree.names);

  // Exact size: every header as it will be written, data, padding, end blocks.
  std::string scratch;
  auto account = [&](const OutEntry& o) {
    scratch.clear();
    TarEntry e = out_entry(layers, plan, o);
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
