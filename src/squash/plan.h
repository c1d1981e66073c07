// squash/plan.h — the merge planner: from the per-layer indexes (every tar
// entry of every layer, in order) to the exact list of entries of the
// squashed layer, so its size is known before the first byte is written.
//
// Semantics are those of applying the layers in order (umoci raw unpack, the
// OCI image spec's layer rules): for each layer, its whiteouts apply to the
// tree below it first ("a whiteout applies only to lower layers, wherever it
// stands in its own layer"), then its other entries in order (the last writer
// of a path wins). `.wh.NAME` deletes NAME and its subtree, `.wh..wh..opq`
// hides every lower child of its directory, other `.wh..wh.*` names are
// dropped. A directory over a directory keeps the children and takes the new
// metadata; a non-directory over a directory hides the subtree. Hardlinks
// share their target's content ("inode"), so a link keeps its content when
// the target path is later deleted or replaced. An entry (or whiteout, or
// hardlink target) whose parent path runs through a symlink a lower layer
// left lands where the symlink points, inside the root — as extracting the
// layers in order does (umoci, containerd).
//
// Directories no layer declares (parents of declared entries) are not
// emitted: an extractor creates them, as it did for the layers.
//
// Output order: first every directory (depth first: parents before
// children, siblings in byte order of their names), then other header-only
// entries (symlinks, devices, fifos, empty files and their hardlinks) in the
// same order, then the regular files with data in the order their data
// appears in the layers (bottom-up), each followed by its hardlinks (the
// first path of an inode in that order holds the content). That lets the
// writer decode each layer once, front to back.
//
// Memory: the merged tree is one 32-byte node per path component with its
// name in one arena, found through an open-addressing table of 4-byte slots
// (freed before the output is ordered); an output entry is 8 bytes. With the
// 56-byte index records that is ~100 bytes per entry at the peak plus the
// path bytes (bench/squash-entries.sh measures it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "squash/layer_index.h"

namespace wharf::squash {

// One entry of the output: a node of the plan's tree, and for a hardlink the
// node holding the content.
struct OutEntry {
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t node = 0;
  uint32_t link_to = kNone;  // kNone: not a hardlink
  bool hardlink() const { return link_to != kNone; }
};
static_assert(sizeof(OutEntry) == 8);

struct Plan {
  // A node of the merged tree (a path component). `layer`/`index` name the
  // entry whose content and metadata it takes (kSynthetic: a parent no layer
  // declares).
  struct Node {
    static constexpr uint32_t kSynthetic = UINT32_MAX;
    uint32_t name = 0;  // offset in `names`
    uint16_t name_len = 0;
    uint8_t dir = 0;
    uint8_t unused = 0;
    uint32_t parent = OutEntry::kNone;
    uint32_t first_child = OutEntry::kNone, prev = OutEntry::kNone, next = OutEntry::kNone;
    uint32_t layer = kSynthetic, index = 0;
  };
  static_assert(sizeof(Node) == 32);

  std::vector<OutEntry> headers_only;  // emitted before any data
  // Per layer: data-carrying files in stream order (each followed by its hardlinks).
  std::vector<std::vector<OutEntry>> data;
  uint64_t tar_size = 0;  // exact size of the squashed layer.tar incl. the end blocks

  std::vector<Node> nodes;  // [0] is the root
  std::string names;

  uint32_t layer(const OutEntry& o) const { return nodes[o.node].layer; }
  uint32_t index(const OutEntry& o) const { return nodes[o.node].index; }
  // A parent no layer created, left empty by a whiteout (0755 root, mtime 0).
  // Implied parents that still have children are not emitted at all.
  bool synthetic(const OutEntry& o) const { return nodes[o.node].layer == Node::kSynthetic; }
  // The node's path ("" for the root) into `out`.
  void path(uint32_t node, std::string& out) const;
};

// Throws LayerError when a hardlink points at nothing, LimitError when the
// merged tree's names exceed 4 GiB.
Plan plan_merge(const std::vector<LayerIndex>& layers);

// The entry as it is written for `o` (path, link and type rewritten).
TarEntry out_entry(const std::vector<LayerIndex>& layers, const Plan& plan, const OutEntry& o);

}  // namespace wharf::squash
