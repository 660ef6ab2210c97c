// Image-text retrieval recall as ALBEF / X-VLM / EVE's itm_eval computes it: ground truth by
// entry position in the test annotation (texts numbered image by image in file order, any
// number of captions per image), image->text rank = best position among the image's texts,
// text->image rank = position of its image, R@K = 100 * (#queries with rank < K) / #queries.
// Ties: a candidate is ahead of the ground truth only with a strictly higher score (numpy's
// argsort leaves tie order unspecified).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace eve {
class ThreadPool;
}

namespace eve::eval {

struct RetrievalAnnotations {
  std::string path;
  std::vector<std::string> images;     // the entries' "image" values ("" when absent)
  std::vector<uint32_t> text_offsets;  // texts of image i: [text_offsets[i], text_offsets[i+1])
  std::vector<uint32_t> text_image;    // image of each text
  std::vector<std::string> texts;      // the captions, image by image
  // Another name of each image ("" = none): the store key eve-prep gave it (add_image_keys).
  std::vector<std::string> keys;

  size_t image_count() const { return images.size(); }
  size_t text_count() const { return text_image.size(); }
};

// A JSON list of {"image": str, "caption": [str, ...]} (the Karpathy-split test files of
// ALBEF/X-VLM/EVE), or JSON Lines of {"image", "texts": [...]} (eve-prep retrieval records).
RetrievalAnnotations parse_retrieval_annotations(std::string_view text, const std::string& path);

// Names each image of `ann` also by its key in a dataset dir, so that rank ids of eve-embed
// (store keys, "<key>#<k>" for texts) resolve against a test file that names image paths.
// `records` is the dataset dir's split (eve-prep retrieval records, keys as "image"); a record
// is the entry whose caption list is the same. A record that matches no entry, or several,
// throws eve::Error naming it; entries without a record keep their one name.
void add_image_keys(RetrievalAnnotations& ann, const RetrievalAnnotations& records);

// A rank no query reaches: an image without captions, or a ground truth absent from a list.
constexpr int64_t kNotRetrieved = std::numeric_limits<int64_t>::max();

// Ranks from dense score matrices, row-major float: i2t is images x texts, t2i is texts x
// images. NaN scores are an error naming `source`, the row and the column.
std::vector<int64_t> image_to_text_ranks(const RetrievalAnnotations& ann, const float* i2t,
                                         const std::string& source, ThreadPool* pool);
std::vector<int64_t> text_to_image_ranks(const RetrievalAnnotations& ann, const float* t2i,
                                         const std::string& source, ThreadPool* pool);

// Ranks from JSON Lines {"query": id, "results": [[id, score], ...]}, one line per query, every
// query exactly once. Ids are entry positions (integers: image i = i-th entry, text t = t-th
// caption counted image by image) or strings: an image by its "image" value (unique in the
// annotation) or its key, a text as "<image>#<k>", its k-th caption (k from 0). A query's rank is the
// number of listed results scoring strictly higher than its best-scoring ground truth;
// a query whose ground truth is not listed is not retrieved.
enum class RetrievalDirection { image_to_text, text_to_image };
std::vector<int64_t> parse_rank_lists(std::string_view text, const std::string& path,
                                      const RetrievalAnnotations& ann,
                                      RetrievalDirection direction);

struct RetrievalScores {
  double txt_r1 = 0, txt_r5 = 0, txt_r10 = 0, txt_r_mean = 0;  // image query, percent
  double img_r1 = 0, img_r5 = 0, img_r10 = 0, img_r_mean = 0;  // text query, percent
  double r_mean = 0;
  size_t images = 0, texts = 0;
};

RetrievalScores retrieval_recall(const std::vector<int64_t>& image_to_text,
                                 const std::vector<int64_t>& text_to_image);

}  // namespace eve::eval
