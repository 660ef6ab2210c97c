// eve-tokenize's library: training with fixed special ids, encoding records and lines,
// truncation, order under threads, bad records, decoding, and models trained elsewhere.
#include <gtest/gtest.h>

#include <sentencepiece_trainer.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/text/sentencepiece_commands.h"
#include "eve/text/sentencepiece_tokenizer.h"

namespace {

namespace fs = std::filesystem;
using namespace eve::text;

const std::string kFixtures = EVE_TEST_FIXTURES "/text";

std::string temp_dir() {
  static const std::string dir = [] {
    std::string d = (fs::temp_directory_path() / ("eve-tok-test." + std::to_string(getpid()))).string();
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

void write(const std::string& path, const std::string& text) { eve::io::write_file_atomic(path, text); }

class Tokenize : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TrainOptions t;
    t.inputs = {kFixtures + "/captions.txt", kFixtures + "/questions.jsonl"};
    t.output = temp_dir() + "/tok.model";
    t.vocab_size = 300;
    t.threads = 1;
    trained_ = new TrainResult(run_train(t));
    tok_ = new SentencePieceTokenizer(t.output);
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete trained_;
    eve::io::try_remove_tree(temp_dir());
  }
  static std::string model() { return temp_dir() + "/tok.model"; }

  // Runs run_encode on `input` text and returns the output.
  static std::string encode(const std::string& input, EncodeOptions opts, LineStats* stats = nullptr) {
    static int n = 0;
    std::string path = temp_dir() + "/in" + std::to_string(n++) + (opts.plain ? ".txt" : ".jsonl");
    write(path, input);
    opts.model = model();
    opts.inputs = {path};
    std::string out;
    LineStats s = run_encode(opts, [&](std::string_view v) { out += v; });
    if (stats) *stats = s;
    return out;
  }
  static std::string error_of(const std::string& input, EncodeOptions opts = {}) {
    try {
      encode(input, opts);
    } catch (const eve::Error& e) {
      std::string what = e.what();
      return what.substr(what.find(".jsonl:") + 7);  // "line: message (hint)"
    }
    return "no error";
  }

  static TrainResult* trained_;
  static SentencePieceTokenizer* tok_;
};
TrainResult* Tokenize::trained_ = nullptr;
SentencePieceTokenizer* Tokenize::tok_ = nullptr;

std::vector<int> wrap(const std::vector<int>& pieces) {
  std::vector<int> ids{kClsId};
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  ids.push_back(kSepId);
  return ids;
}

TEST_F(Tokenize, TrainedModelHasFixedSpecialIds) {
  TokenizerInfo want{300, 0, 1, 2, 3, 4};
  EXPECT_EQ(trained_->info, want);
  EXPECT_EQ(trained_->texts, 1800u);  // 1500 captions + 300 questions
  EXPECT_EQ(tok_->id_to_piece(0), "[PAD]");
  EXPECT_EQ(tok_->id_to_piece(1), "[UNK]");
  EXPECT_EQ(tok_->id_to_piece(2), "[CLS]");
  EXPECT_EQ(tok_->id_to_piece(3), "[SEP]");
  EXPECT_EQ(tok_->id_to_piece(4), "[MASK]");
  EXPECT_EQ(trained_->info_path, temp_dir() + "/tok.json");
  EXPECT_EQ(read_tokenizer_info(trained_->info_path), want);
  EXPECT_EQ(model_info(model()), want);
  // [MASK] is a control symbol: text never produces it.
  std::vector<int> ids = tok_->encode("[MASK]");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kMaskId), 0);
}

TEST_F(Tokenize, TrainingIsTheSameForAnyThreadCountAndUnigramWorks) {
  TrainOptions t;
  t.inputs = {kFixtures + "/captions.txt"};
  t.vocab_size = 200;
  t.output = temp_dir() + "/t1.model";
  t.threads = 1;
  run_train(t);
  t.output = temp_dir() + "/t2.model";
  t.threads = 2;
  run_train(t);
  // The files differ only in the recorded num_threads: compare vocabularies and encodings.
  SentencePieceTokenizer a(temp_dir() + "/t1.model"), b(temp_dir() + "/t2.model");
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  for (int id = 0; id < a.vocab_size(); ++id) ASSERT_EQ(a.id_to_piece(id), b.id_to_piece(id)) << id;
  std::ifstream caps(kFixtures + "/captions.txt");
  for (std::string line; std::getline(caps, line);) ASSERT_EQ(a.encode(line), b.encode(line));
  t.model_type = "unigram";
  t.vocab_size = 120;
  t.output = temp_dir() + "/uni.model";
  EXPECT_EQ(run_train(t).info, (TokenizerInfo{120, 0, 1, 2, 3, 4}));
}

TEST_F(Tokenize, TrainingReadsDatasetDirectoriesAndReportsBadRecords) {
  std::string dir = temp_dir() + "/dataset";
  fs::create_directories(dir);
  write(dir + "/train.jsonl",
        "{\"image\":\"a\",\"texts\":[\"A red bus.\",\"The bus is red!\"]}\n"
        "{\"image\":\"b\",\"sentence\":\"Two dogs play on the grass.\"}\n");
  write(dir + "/val.jsonl", "{\"image\":\"c\"}\n");
  write(dir + "/notes.txt", "ignored: not a record file\n");
  TrainOptions t;
  t.inputs = {dir, kFixtures + "/captions.txt"};
  t.output = temp_dir() + "/ds.model";
  t.vocab_size = 150;
  try {
    run_train(t);
    FAIL() << "expected an error for the record without text";
  } catch (const eve::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              dir + "/val.jsonl:1: no field text, texts, question or sentence (use --skip-bad to "
                    "skip such records)");
  }
  t.bad.skip_bad = true;
  TrainResult r = run_train(t);
  EXPECT_EQ(r.texts, 1503u);
  EXPECT_EQ(r.lines.skipped, 1u);
  EXPECT_EQ(r.lines.summary(), "skipped 1 of 1503 records: 1 missing field");
}

TEST_F(Tokenize, TrainingErrorsAreClear) {
  TrainOptions t;
  t.inputs = {temp_dir() + "/missing.txt"};
  t.output = temp_dir() + "/x.model";
  try {
    run_train(t);
    FAIL();
  } catch (const eve::Error& e) {
    EXPECT_EQ(std::string(e.what()), temp_dir() + "/missing.txt: no such file or directory");
  }
  t.inputs = {kFixtures + "/captions.txt"};
  t.vocab_size = 100000;
  try {
    run_train(t);
    FAIL();
  } catch (const eve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("(try a smaller --vocab-size or more text)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(t.output));
}

TEST_F(Tokenize, EncodeTextWrapsCleansAndTruncates) {
  EncodeOptions o;
  RecordEncoder enc(o, tok_->info(), [](const std::string& s) { return tok_->encode(s); });
  EXPECT_EQ(enc.encode_text("A Dog, running!", CleanMode::caption),
            wrap(tok_->encode("a dog running")));
  EXPECT_EQ(enc.encode_text("A Dog, running!", CleanMode::none),
            wrap(tok_->encode("A Dog, running!")));
  std::string long_text;
  for (int i = 0; i < 25; ++i) long_text += "striped giraffe ";
  std::vector<int> all = tok_->encode(clean_caption(long_text));
  ASSERT_GT(all.size(), 38u);
  std::vector<int> ids = enc.encode_text(long_text, CleanMode::caption);
  ASSERT_EQ(ids.size(), 40u);
  EXPECT_EQ(ids.front(), kClsId);
  EXPECT_EQ(ids.back(), kSepId);
  EXPECT_EQ(std::vector<int>(ids.begin() + 1, ids.end() - 1),
            std::vector<int>(all.begin(), all.begin() + 38));
  o.max_tokens = 5;
  RecordEncoder short_enc(o, tok_->info(), [](const std::string& s) { return tok_->encode(s); });
  ids = short_enc.encode_text(long_text, CleanMode::caption);
  EXPECT_EQ(ids, (std::vector<int>{kClsId, all[0], all[1], all[2], kSepId}));
  o.max_tokens = 2;
  EXPECT_THROW(RecordEncoder(o, tok_->info(), {}), eve::UsageError);
}

TEST_F(Tokenize, EncodeRecordsKeepsKeysAndOrderAndAddsIdsBesideText) {
  std::string out = encode(
      "{\"image\":\"k1\",\"text\":\"A Dog!\",\"extra\":{\"z\":[1,2.5,null]},\"a\":1}\n"
      "\n"
      "{\"texts\":[\"A dog.\",\"The cat\"],\"image\":\"k2\"}\n"
      "{\"question_id\":7,\"question\":\"Is <PERSON> here?\",\"ids\":[9]}\n",
      {});
  auto j = [](const std::vector<int>& v) { return eve::io::json(v).dump(); };
  EXPECT_EQ(out,
            "{\"image\":\"k1\",\"text\":\"A Dog!\",\"ids\":" + j(wrap(tok_->encode("a dog"))) +
                ",\"extra\":{\"z\":[1,2.5,null]},\"a\":1}\n"
                "{\"texts\":[\"A dog.\",\"The cat\"],\"ids_list\":[" +
                j(wrap(tok_->encode("a dog"))) + "," + j(wrap(tok_->encode("the cat"))) +
                "],\"image\":\"k2\"}\n"
                "{\"question_id\":7,\"question\":\"Is <PERSON> here?\",\"ids\":" +
                j(wrap(tok_->encode("is <person> here"))) + "}\n");
}

TEST_F(Tokenize, EncodeSelectedFieldAndCleaningMode) {
  EncodeOptions o;
  o.fields = {"caption"};
  o.clean = CleanMode::question;
  std::string out = encode("{\"caption\":\"The <person>, here.\",\"text\":\"not this\"}\n", o);
  EXPECT_EQ(out, "{\"caption\":\"The <person>, here.\",\"ids\":" +
                     eve::io::json(wrap(tok_->encode("the <person> here"))).dump() +
                     ",\"text\":\"not this\"}\n");
}

TEST_F(Tokenize, BadRecordsNameTheLine) {
  EXPECT_EQ(error_of("{\"text\":\"ok\"}\n{\"image\":\"x\"}\n"),
            "2: no field text, texts, question or sentence (use --skip-bad to skip such records)");
  EXPECT_EQ(error_of("{\"text\":5}\n"),
            "1: field \"text\" must be a string or a list of strings, not number (use --skip-bad "
            "to skip such records)");
  EXPECT_EQ(error_of("{\"texts\":[\"a\",3]}\n"),
            "1: field \"texts\" item 1 must be a string, not number (use --skip-bad to skip such "
            "records)");
  EXPECT_EQ(error_of("{\"text\":\"?!\"}\n").substr(0, 38), "1: field \"text\" is empty after cleanin");
  EXPECT_EQ(error_of("\n\n{\"text\": \"a\"\n").substr(0, 16), "3: invalid JSON:");
  EXPECT_EQ(error_of("[1,2]\n").substr(0, 26), "1: expected a JSON object ");
  EXPECT_EQ(error_of("{\"text\":\"a\",\"sentence\":\"b\"}\n").substr(0, 79),
            "1: fields \"text\" and \"sentence\" would both write \"ids\"; choose one with --field");
  EncodeOptions o;
  o.fields = {"caption"};
  EXPECT_EQ(error_of("{\"text\":\"a\"}\n", o).substr(0, 26), "1: missing field \"caption\"");
}

TEST_F(Tokenize, SkipBadCountsByReasonAndMaxBadFails) {
  std::string input =
      "{\"text\":\"one\"}\n{\"text\":5}\nnot json\n{\"text\":\"two\"}\n{\"x\":1}\n{\"text\":\"...\"}\n";
  EncodeOptions o;
  o.bad.skip_bad = true;
  LineStats stats;
  std::string out = encode(input, o, &stats);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
  EXPECT_EQ(stats.records, 6u);
  EXPECT_EQ(stats.skipped, 4u);
  EXPECT_EQ(stats.summary(),
            "skipped 4 of 6 records: 1 empty after cleaning, 1 invalid JSON, 1 missing field, 1 "
            "wrong type");
  o.bad.max_bad = 0.5;
  try {
    encode(input, o);
    FAIL();
  } catch (const eve::TooManyBadInputs& e) {
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(std::string(e.what()).find("skipped 4 of 6 records"), std::string::npos);
  }
}

TEST_F(Tokenize, OutputIsTheSameForAnyThreadCount) {
  std::string input;
  std::ifstream caps(kFixtures + "/captions.txt");
  std::string line;
  for (int i = 0; std::getline(caps, line); ++i) {
    eve::io::ordered_json rec;
    rec["id"] = i;
    if (i % 3 == 0)
      rec["texts"] = {line, "caption " + std::to_string(i)};
    else
      rec["text"] = line;
    input += (i % 97 == 5 ? std::string("{broken\n") : rec.dump() + "\n");
  }
  EncodeOptions o;
  o.bad.skip_bad = true;
  o.threads = 1;
  std::string one = encode(input, o);
  for (int threads : {2, 3, 8}) {
    o.threads = threads;
    EXPECT_EQ(encode(input, o), one) << threads << " threads";
  }
  EXPECT_EQ(std::count(one.begin(), one.end(), '\n'), 1500 - 16);
  // Records come out in input order.
  EXPECT_EQ(one.substr(0, 8), "{\"id\":0,");
}

TEST_F(Tokenize, PlainModeAndDecodeRoundTrip) {
  EncodeOptions o;
  o.plain = true;
  std::string out = encode("A dog, on the GRASS.\nThe cat\n", o);
  std::string want;
  for (const char* s : {"a dog on the grass", "the cat"}) {
    for (int id : wrap(tok_->encode(s))) want += std::to_string(id) + " ";
    want.back() = '\n';
  }
  EXPECT_EQ(out, want);

  std::string ids_path = temp_dir() + "/ids.txt";
  write(ids_path, out + "\n");
  DecodeOptions d;
  d.model = model();
  d.inputs = {ids_path};
  d.plain = true;
  std::string text;
  run_decode(d, [&](std::string_view v) { text += v; });
  EXPECT_EQ(text, "a dog on the grass\nthe cat\n\n");
  d.keep_special = true;
  text.clear();
  run_decode(d, [&](std::string_view v) { text += v; });
  EXPECT_EQ(text, "[CLS] a dog on the grass [SEP]\n[CLS] the cat [SEP]\n\n");
}

TEST_F(Tokenize, DecodeRecordsAndBadIds) {
  DecodeOptions d;
  RecordDecoder dec(
      d, tok_->info(), [](const std::vector<int>& ids) { return tok_->decode(ids); },
      [](int id) { return tok_->id_to_piece(id); });
  std::vector<int> dog = wrap(tok_->encode("a dog"));
  std::string line = "{\"ids\":" + eve::io::json(dog).dump() + ",\"k\":1,\"ids_list\":[" +
                     eve::io::json(dog).dump() + ",[2,4,3]]}";
  EXPECT_EQ(dec.decode_json_line(line),
            "{\"ids\":" + eve::io::json(dog).dump() + ",\"decoded\":\"a dog\",\"k\":1,\"ids_list\":[" +
                eve::io::json(dog).dump() + ",[2,4,3]],\"decoded_list\":[\"a dog\",\"\"]}\n");
  try {
    dec.decode_plain_line("2 300 3");
    FAIL();
  } catch (const RecordError& e) {
    EXPECT_STREQ(e.what(), "token id 300 outside the vocabulary (size 300)");
  }
  EXPECT_THROW(dec.decode_plain_line("2 x 3"), RecordError);
  EXPECT_THROW(dec.decode_json_line("{\"ids\":[\"a\"]}"), RecordError);
  EXPECT_THROW(dec.decode_json_line("{\"ids\":[-1]}"), RecordError);
}

// A model trained with sentencepiece's own piece names, as released models have them.
std::string train_foreign(const std::string& name, bool with_mask) {
  std::string prefix = temp_dir() + "/" + name;
  std::string args = "--input=" + kFixtures + "/captions.txt --model_prefix=" + prefix +
                     " --vocab_size=200 --model_type=bpe --pad_id=3 --minloglevel=2";
  if (with_mask) args += " --user_defined_symbols=<mask>";
  auto status = sentencepiece::SentencePieceTrainer::Train(args);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return prefix + ".model";
}

TEST_F(Tokenize, ForeignModelsGetIdsFromTheirPieces) {
  EXPECT_EQ(model_info(train_foreign("foreign", true)), (TokenizerInfo{200, 3, 0, 1, 2, 4}));
  std::string no_mask = train_foreign("nomask", false);
  try {
    model_info(no_mask);
    FAIL();
  } catch (const eve::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              no_mask + ": the model has no mask token (neither [MASK] nor <mask> is a piece) "
                        "(train a model with eve-tokenize train)");
  }
}

// The library-free reader (what torch programs use to check a bundle's tokenizer) sees the
// pieces and special ids that sentencepiece itself sees, for eve's and foreign models.
TEST_F(Tokenize, LibraryFreeReaderAgreesWithSentencepiece) {
  for (const std::string& path : {model(), train_foreign("foreign2", true)}) {
    SentencePieceTokenizer sp(path);
    std::vector<std::string> pieces = read_sentencepiece_pieces(path);
    ASSERT_EQ(static_cast<int>(pieces.size()), sp.vocab_size()) << path;
    for (int id = 0; id < sp.vocab_size(); ++id) EXPECT_EQ(pieces[id], sp.id_to_piece(id)) << path << " " << id;
    EXPECT_EQ(read_sentencepiece_info(path), sp.info()) << path;
  }
  const std::string bytes = eve::io::read_file(model());
  const std::string cut = temp_dir() + "/cut.model", text = temp_dir() + "/text.model";
  write(cut, bytes.substr(0, bytes.size() / 2 + 1));
  write(text, "{\"vocab_size\": 300}\n");
  for (const std::string& bad : {cut, text}) {
    try {
      read_sentencepiece_pieces(bad);
      ADD_FAILURE() << bad;
    } catch (const eve::Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(bad + ": not a sentencepiece model (", 0), 0u) << e.what();
    }
  }
}

TEST(TokenizerInfo, JsonKeysAndValidation) {
  TokenizerInfo info{500, 0, 1, 2, 3, 4};
  EXPECT_EQ(to_json(info).dump(),
            "{\"vocab_size\":500,\"pad_id\":0,\"unk_id\":1,\"cls_id\":2,\"sep_id\":3,\"mask_id\":4}");
  EXPECT_EQ(tokenizer_info_from_json(nlohmann::json::parse(to_json(info).dump()), "t.json"), info);
  try {
    tokenizer_info_from_json(nlohmann::json::parse(R"({"vocab_size":5,"pad_id":0,"unk_id":1,"cls_id":2,"sep_id":3,"mask_id":9})"), "t.json");
    FAIL();
  } catch (const eve::Error& e) {
    EXPECT_STREQ(e.what(), "t.json:mask_id: id 9 outside the vocabulary (size 5)");
  }
  EXPECT_THROW(tokenizer_info_from_json(nlohmann::json::parse(R"({"vocab_size":5})"), "t.json"),
               eve::Error);
  EXPECT_EQ(tokenizer_info_path("a/tok.model"), "a/tok.json");
  EXPECT_EQ(tokenizer_info_path("a/spm"), "a/spm.json");
}

}  // namespace
