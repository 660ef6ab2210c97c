// `eve-prep synth`: writes the toy world as raw annotation files and JPEGs, laid out like
// the real datasets so they flow through the other eve-prep subcommands.
//
//   images/COCO_synth_<12-digit image id>.jpg    the image pool (ids 1..count)
//   pairs_train.json                             caption pairs [{"image","caption":[5]}]
//   retrieval_{train,val,test}.json              Karpathy-style splits
//   vqa/questions_{train,val,test}.json          VQA v2 question files (data_subtype "synth")
//   vqa/annotations_{train,val,test}.json        VQA v2 annotation files, 10 answers each
//   vqa/answer_list.json                         answers seen in training, most frequent first
//   vqa/colors_{train,val}.json                  EVE/ALBEF VQA JSON: one yes/no question per
//                                                colour ("is there a red shape?", ten answers)
//                                                about every training image (the pool's and
//                                                NLVR2's) and every val image: a single-skill
//                                                set that teaches finding a named colour
//   vqa/vg_qa{,_val}.json                        EVE's VG QA form ("dataset": "vg", images under the
//                                                world's root): the pool's question forms about the
//                                                NLVR2 training images (extra VQA training data) and
//                                                dev images (a larger VQA validation set)
//   nlvr2/{train,dev,test1}.json                 NLVR2 JSON lines
//   nlvr2/images/<split>/<split>-<set>-<pair>-img{0,1}.jpg
//   corpus.txt                                   training text for the tokenizer
//   labels.jsonl                                 per-image attributes, one record per image of
//                                                the pool and of NLVR2: {"id", "image", "split",
//                                                "background", "colors", "shapes", "count"}; id
//                                                is the key eve-prep gives the image when the
//                                                world's root is its --images (so eve-embed's
//                                                row id), image the path under the root, split
//                                                train/val/test or nlvr2_train/_dev/_test1;
//                                                colours and shapes are lists of the distinct
//                                                ones present, read off the drawn scene
//   synth.json                                   options and counts
#pragma once

#include <cstdint>
#include <string>

namespace eve::data {

struct SynthOptions {
  std::string out;
  uint64_t seed = 0;
  int count = 1000;           // images in the pool (train 80%, val 10%, test 10%)
  int size = 64;              // image side in pixels
  int questions_per_image = 4;
  int nlvr_sets = -1;         // NLVR2 sets of 4 image pairs x 2 sentences; -1: count / 8
  int quality = 95;
  int threads = 0;
};

struct SynthReport {
  int images = 0, nlvr_images = 0, captions = 0, questions = 0, color_questions = 0, vg_questions = 0, statements = 0;
  int labels = 0;  // records of labels.jsonl
};

SynthReport write_synth_world(const SynthOptions& options);

}  // namespace eve::data
