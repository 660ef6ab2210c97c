// The in-place JSON reader (io/json_stream.h): values, the object and list walks, the kind
// of the value ahead, streaming the elements of a large list, and its error messages.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "common/error_of.h"
#include "eve/core/error.h"
#include "eve/io/json_stream.h"

namespace {

using eve::io::JsonCursor;
using eve::test::error_of;
using nlohmann::json;

TEST(JsonCursor, StringsNumbersAndSyntaxErrors) {
  auto value = [](const std::string& text) {
    JsonCursor c(text, "t.json");
    json v = c.value();
    c.finish();
    return v;
  };
  EXPECT_EQ(value(R"("a\"b\\c\/\n\u00e9\ud83d\ude00")"), "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(value(R"({"a": [1, -2, 3.5, 1e2, 18446744073709551615, true, null], "a": 0})"),
            json({{"a", 0}}));
  EXPECT_TRUE(value("-0.0").is_number_float());
  EXPECT_TRUE(value("9223372036854775807").is_number_integer());
  auto err = [&](const std::string& text) { return error_of([&] { value(text); }); };
  EXPECT_EQ(err("[1,]"), "t.json:1: invalid JSON: unexpected character ']'");
  EXPECT_EQ(err("{\"a\" 1}"), "t.json:1: invalid JSON: expected ':' after an object key, found '1'");
  EXPECT_EQ(err("\"abc"), "t.json:1: invalid JSON: unterminated string");
  EXPECT_EQ(err("\"a\tb\""), "t.json:1: invalid JSON: control character in a string (escape it)");
  EXPECT_EQ(err("\"\\ud800x\""), "t.json:1: invalid JSON: unpaired surrogate in a \\u escape");
  EXPECT_EQ(err("\"\\q\""), "t.json:1: invalid JSON: invalid escape '\\q'");
  EXPECT_EQ(err("\"\xff\""), "t.json:1: invalid JSON: invalid UTF-8 in a string");
  EXPECT_EQ(err("01"), "t.json:1: invalid JSON: unexpected text after the end of the document");
  EXPECT_EQ(err("1.e5"), "t.json:1: invalid JSON: invalid number");
  EXPECT_EQ(err("[tru]"), "t.json:1: invalid JSON: invalid literal");
  EXPECT_EQ(err("\n\n["), "t.json:3: invalid JSON: unexpected end of input");
  EXPECT_EQ(err(std::string(600, '[') + std::string(600, ']')),
            "t.json:1: invalid JSON: nested more than 512 levels deep");
}

TEST(JsonCursor, StringsWithoutEscapesPointIntoTheText) {
  const std::string text = R"(["plain", "esc\u0041ped"])";
  JsonCursor c(text, "t.json");
  std::vector<std::string_view> got;
  std::string scratch;
  c.array([&](size_t) { got.push_back(c.string(scratch)); });
  c.finish();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "plain");
  // No copy for the plain string: the view lies inside the document.
  EXPECT_GE(got[0].data(), text.data());
  EXPECT_LT(got[0].data(), text.data() + text.size());
  EXPECT_EQ(scratch, "escAped");  // the escaped one was decoded into the scratch buffer
}

TEST(JsonCursor, KindNamesTheValueAheadWithoutConsumingIt) {
  auto kind = [](const std::string& text) {
    JsonCursor c(text, "t.json");
    std::string k = c.kind();
    c.skip();  // still at the value: skipping it leaves only the end
    c.finish();
    return k;
  };
  EXPECT_EQ(kind(" {\"a\": 1}"), "an object");
  EXPECT_EQ(kind("[1, 2]"), "a list");
  EXPECT_EQ(kind("\"s\""), "a string");
  EXPECT_EQ(kind("true"), "a boolean");
  EXPECT_EQ(kind("false"), "a boolean");
  EXPECT_EQ(kind("null"), "null");
  EXPECT_EQ(kind("-12"), "an integer");
  EXPECT_EQ(kind("1.5"), "a number");
  EXPECT_EQ(kind("2e3"), "a number");
  EXPECT_EQ(error_of([] { JsonCursor c("  ", "t.json"); c.kind(); }),
            "t.json:1: invalid JSON: unexpected end of input");
  EXPECT_EQ(error_of([] { JsonCursor c("x", "t.json"); c.kind(); }),
            "t.json:1: invalid JSON: unexpected character 'x'");
  JsonCursor c("  [", "t.json");
  EXPECT_EQ(c.peek(), '[');
  EXPECT_EQ(c.peek(), '[');  // peek consumes nothing
}

TEST(JsonCursor, ObjectAndArrayWalksHandEachMemberAndIndex) {
  const std::string text = R"({"a": [10, 20, 30], "b": {"skip": [1, {"x": null}]}, "k\u00e9y": "v", "e": []})";
  JsonCursor c(text, "t.json");
  std::vector<std::string> keys;
  std::vector<int64_t> numbers;
  std::vector<size_t> indexes;
  c.object([&](std::string_view key) {
    keys.emplace_back(key);
    if (key == "a") {
      c.array([&](size_t i) {
        indexes.push_back(i);
        numbers.push_back(c.value().get<int64_t>());
      });
    } else if (key == "e") {
      c.array([&](size_t) { ADD_FAILURE() << "an empty list has no elements"; });
    } else {
      c.skip();
    }
  });
  c.finish();
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "k\xc3\xa9y", "e"}));
  EXPECT_EQ(numbers, (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(indexes, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(error_of([] {
              JsonCursor w("[1", "t.json");
              w.array([&](size_t) { w.skip(); });
            }),
            "t.json:1: invalid JSON: expected ']' after a list element, found the end");
  EXPECT_EQ(error_of([] {
              JsonCursor w("[]", "t.json");
              w.object([](std::string_view) {});
            }),
            "t.json:1: invalid JSON: expected '{' to open an object, found '['");
  EXPECT_EQ(error_of([] { JsonCursor("{\"a\": [1 2]}", "t.json").skip(); }),
            "t.json:1: invalid JSON: expected ']' after a list element, found '2'");
}

TEST(JsonStream, ForEachListElementOfATopLevelList) {
  std::vector<json> seen;
  json scalars = eve::io::for_each_list_element(
      "r.json", R"([{"id": 1}, {"id": 2}])", "", "a list of results",
      [&](json& e, size_t i) {
        EXPECT_EQ(i, seen.size());
        seen.push_back(std::move(e));
      });
  EXPECT_EQ(seen, (std::vector<json>{{{"id", 1}}, {{"id", 2}}}));
  EXPECT_EQ(scalars, json::object());
  EXPECT_EQ(error_of([] {
              eve::io::for_each_list_element("r.json", R"({"id": 1})", "", "a list of results",
                                             [](json&, size_t) {});
            }),
            "r.json: expected a list of results, found an object");
}

TEST(JsonStream, ForEachListElementOfAMemberKeepsTheScalars) {
  const std::string text =
      R"({"info": {"year": 2017}, "task": "vqa", "n": 2, "ok": true, "none": null,)"
      R"( "questions": [{"q": 1}, {"q": 2}], "more": [9]})";
  std::vector<int> qs;
  json scalars = eve::io::for_each_list_element("q.json", text, "questions", "a questions list",
                                                [&](json& e, size_t) { qs.push_back(e["q"]); });
  EXPECT_EQ(qs, (std::vector<int>{1, 2}));
  // Objects and lists other than the key are skipped, scalars returned.
  EXPECT_EQ(scalars, json({{"task", "vqa"}, {"n", 2}, {"ok", true}, {"none", nullptr}}));
  auto err = [](const std::string& doc) {
    return error_of([&] {
      eve::io::for_each_list_element("q.json", doc, "questions", "a questions list",
                                     [](json&, size_t) {});
    });
  };
  EXPECT_EQ(err("[]"), "q.json: expected a questions list, found a list");
  EXPECT_EQ(err(R"({"task": "vqa"})"), "q.json: expected a questions list, found no \"questions\" member");
  EXPECT_EQ(err(R"({"questions": 3})"), "q.json: expected a questions list, found \"questions\": an integer");
  EXPECT_EQ(err(R"({"questions": [], "questions": []})"), "q.json: the member \"questions\" appears twice");
  EXPECT_EQ(err(R"({"questions": []} x)"),
            "q.json:1: invalid JSON: unexpected text after the end of the document");
}

TEST(JsonStream, JsonKindNamesEveryType) {
  EXPECT_EQ(eve::io::json_kind(json()), "null");
  EXPECT_EQ(eve::io::json_kind(json::object()), "an object");
  EXPECT_EQ(eve::io::json_kind(json::array()), "a list");
  EXPECT_EQ(eve::io::json_kind(json("s")), "a string");
  EXPECT_EQ(eve::io::json_kind(json(false)), "a boolean");
  EXPECT_EQ(eve::io::json_kind(json(-3)), "an integer");
  EXPECT_EQ(eve::io::json_kind(json(3u)), "an integer");
  EXPECT_EQ(eve::io::json_kind(json(0.5)), "a number");
}

}  // namespace
