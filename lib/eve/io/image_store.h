// The image store of a dataset dir: JPEGs in numbered tar shards plus an index for random
// access by key.
//
//   <prefix>-00000.tar, <prefix>-00001.tar, ...   ustar archives (see tar.h) of members
//                                                 "<key>.jpg", in the order added; readable
//                                                 by tar, Python's tarfile and webdataset
//   <prefix>.idx                                  the index, a text file:
//
//     eve-image-index 1                 magic and format version
//     shards <S>                        number of shards
//     images <N>                        number of entries that follow
//     <key>\t<shard>\t<offset>\t<size>  N lines, in the order added: shard number, byte
//                                       offset of the JPEG data inside that shard, length
//
// Keys are 1..200 bytes of UTF-8 without '/' or control characters (so no tab or newline);
// webdataset splits member names at the first '.', so keys meant to be webdataset sample
// keys are best kept free of dots. Writing is deterministic: the same
// images added in the same order give byte-identical shards and index. A shard is closed
// when the next image would take it past the size limit (an image larger than the limit
// gets a shard of its own); each shard and the index are written atomically, the index
// last, so a store without its index is incomplete.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "eve/io/tar.h"

namespace eve::io {

struct ImageLocation {
  uint32_t shard;
  uint64_t offset;
  uint64_t size;
};

// Why `key` cannot be an image key (empty when it can).
std::string image_key_problem(std::string_view key);
// "<dir>/<prefix>-<shard, 5 digits>.tar" and "<dir>/<prefix>.idx".
std::string image_shard_path(const std::string& dir, const std::string& prefix, uint32_t shard);
std::string image_index_path(const std::string& dir, const std::string& prefix);

class ImageStoreWriter {
 public:
  explicit ImageStoreWriter(std::string dir, uint64_t shard_bytes = uint64_t{1} << 30,
                            std::string prefix = "images");
  ~ImageStoreWriter();
  ImageStoreWriter(const ImageStoreWriter&) = delete;
  ImageStoreWriter& operator=(const ImageStoreWriter&) = delete;

  bool contains(const std::string& key) const { return index_.count(key) != 0; }
  void add(const std::string& key, std::string_view jpeg_bytes);  // duplicate key -> eve::Error
  void finish();  // closes the last shard, writes <prefix>.idx atomically
  size_t size() const { return entries_.size(); }

 private:
  std::string dir_, prefix_;
  uint64_t shard_bytes_;
  std::unique_ptr<TarWriter> shard_;
  uint32_t shards_ = 0;  // shards opened so far
  std::vector<std::pair<std::string, ImageLocation>> entries_;
  std::unordered_map<std::string, size_t> index_;
  bool finished_ = false;
};

class ImageStore {
 public:
  // Reads and checks the index (and that every shard exists and holds the ranges the
  // index names); errors name the index file and line.
  explicit ImageStore(const std::string& dir, std::string prefix = "images");
  ~ImageStore();
  ImageStore(ImageStore&&) noexcept;
  ImageStore& operator=(ImageStore&&) noexcept;

  size_t size() const;
  bool contains(const std::string& key) const;
  std::vector<std::string> keys() const;  // in index order
  // The image bytes; an unknown key is an error naming the key. Safe to call from several
  // threads at once.
  std::string read(const std::string& key) const;
  ImageLocation locate(const std::string& key) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eve::io
