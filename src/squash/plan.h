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
// Output order: first every directory (parents before children, byte order),
// then other header-only entries (symlinks, devices, fifos, empty files and
// their hardlinks), then the regular files with data in the order their data
// appears in the layers (bottom-up), each followed by its hardlinks. That
// lets the writer decode each layer once, front to back.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "squash/tar.h"

namespace wharf::squash {

struct LayerIndex {
  std::vector<TarEntry> entries;
  InflateCheckpoints checkpoints;  // gzip layers large enough to split; see layer_decoder.h
};

// One entry of the output (32 bytes: 10^6 of them are a plan). `layer` and
// `index` point into the indexes given to plan_merge(); `path` and
// `link_to` into the Plan's own path storage (valid while the Plan lives).
struct OutEntry {
  uint32_t layer = 0;      // layer of the entry whose content/metadata is used
  uint32_t index = 0;      // its position in that layer's index
  const std::string* path = nullptr;     // output path (cleaned)
  const std::string* link_to = nullptr;  // hardlinks: the output path holding the content
  bool hardlink = false;   // emit as a hardlink to link_to
  // A parent no layer created, left empty by a whiteout (0755 root, mtime 0).
  // Implied parents that still have children are not emitted at all.
  bool synthetic_dir = false;
};

struct Plan {
  std::vector<OutEntry> headers_only;  // emitted before any data
  // Per layer: data-carrying files in stream order (each followed by its hardlinks).
  std::vector<std::vector<OutEntry>> data;
  uint64_t tar_size = 0;  // exact size of the squashed layer.tar incl. the end blocks
  std::shared_ptr<const void> paths;  // owns the strings OutEntry points at
};

// Throws LayerError when a hardlink points at nothing.
Plan plan_merge(const std::vector<LayerIndex>& layers);

// The entry as it is written for `o` (path, link and type rewritten).
TarEntry out_entry(const std::vector<LayerIndex>& layers, const OutEntry& o);

}  // namespace wharf::squash
