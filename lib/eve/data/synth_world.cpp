#include "eve/data/synth_world.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

namespace eve::data::synth {
namespace {

const char* const kShapeNames[kShapes] = {"circle", "square", "triangle", "star", "diamond"};
const char* const kColorNames[kColors] = {"red", "green", "blue", "yellow", "purple", "orange"};
const char* const kPatternNames[kPatterns] = {"plain", "striped", "checkered", "dotted"};
const uint8_t kColorRgb[kColors][3] = {{214, 39, 40},  {44, 160, 44},  {31, 90, 220},
                                       {240, 210, 30}, {148, 60, 189}, {250, 127, 14}};
// Muted background families: base shade and texture shade.
const uint8_t kToneRgb[kTones][2][3] = {{{168, 168, 168}, {128, 128, 128}},
                                        {{214, 200, 172}, {176, 160, 130}},
                                        {{72, 74, 80}, {104, 106, 112}},
                                        {{176, 192, 200}, {140, 156, 166}}};
// Paraphrases used in captions (the first is the canonical word).
const std::vector<std::string> kShapeWords[kShapes] = {
    {"circle", "disk", "round shape"}, {"square", "block"}, {"triangle"}, {"star"}, {"diamond", "rhombus"}};
const std::vector<std::string> kPatternWords[kPatterns] = {
    {"plain", "smooth", "solid"}, {"striped", "stripy"}, {"checkered", "checkerboard"}, {"dotted", "spotted"}};
// How annotators name a background pattern.
const std::vector<std::string> kPatternAnswers[kPatterns] = {
    {"plain", "plain", "plain", "solid", "none"},
    {"striped", "striped", "stripes", "stripes", "lines"},
    {"checkered", "checkered", "checkerboard", "checkers", "squares"},
    {"dotted", "dotted", "dots", "polka dots", "spots"}};
const char* const kNumberWords[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"};

std::string num_word(int n) { return n >= 0 && n <= 10 ? kNumberWords[n] : std::to_string(n); }

std::string plural(const std::string& w) { return w + "s"; }

std::string article(const std::string& w) {
  return (std::string("aeiou").find(w[0]) != std::string::npos ? "an " : "a ") + w;
}

std::string shape_word(Shape s, Rng& rng, bool vary) {
  const auto& words = kShapeWords[static_cast<int>(s)];
  return vary && rng.chance(0.3) ? rng.pick(words) : words[0];
}

// "small red circle" (without article).
std::string object_words(const Object& o, Rng& rng, bool size) {
  std::string w;
  if (size) w = o.large ? (rng.chance(0.3) ? "big " : "large ") : "small ";
  return w + color_name(o.color) + " " + shape_word(o.shape, rng, true);
}

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

std::string object_list(const Scene& s, Rng& rng, bool size) {
  std::vector<std::string> items;
  for (const auto& o : s.objects) items.push_back(article(object_words(o, rng, size)));
  return join_list(items);
}

double dist2(double ax, double ay, double bx, double by) { return (ax - bx) * (ax - bx) + (ay - by) * (ay - by); }

bool inside(const Object& o, double px, double py) {
  const double r = o.radius(), dx = px - o.x, dy = py - o.y;
  switch (o.shape) {
    case Shape::circle: return dx * dx + dy * dy <= r * r;
    case Shape::square: return std::fabs(dx) <= 0.82 * r && std::fabs(dy) <= 0.82 * r;
    case Shape::diamond: return std::fabs(dx) / 0.85 + std::fabs(dy) <= 1.08 * r;
    case Shape::triangle: {
      // Upward triangle with its centroid slightly below the centre.
      const double top = -r, bottom = 0.75 * r, half = 1.0 * r;
      if (dy < top || dy > bottom) return false;
      return std::fabs(dx) <= half * (dy - top) / (bottom - top);
    }
    case Shape::star: {
      const double d = std::sqrt(dx * dx + dy * dy);
      if (d > r) return false;
      double a = std::atan2(dx, -dy);  // 0 at the top point
      const double sector = 2 * M_PI / 5;
      a = std::fmod(a + 20 * M_PI, sector);
      const double t = std::fabs(a - sector / 2) / (sector / 2);  // 1 at a point, 0 between
      const double limit = r * (0.42 + 0.58 * t);
      return d <= limit;
    }
  }
  return false;
}

int count_if(const Scene& s, int color, int shape) {
  int n = 0;
  for (const auto& o : s.objects)
    if ((color < 0 || static_cast<int>(o.color) == color) && (shape < 0 || static_cast<int>(o.shape) == shape)) ++n;
  return n;
}

std::string describe(int color, int shape) {
  if (color < 0 && shape < 0) return "shape";
  if (color < 0) return kShapeNames[shape];
  if (shape < 0) return std::string(kColorNames[color]) + " shape";
  return std::string(kColorNames[color]) + " " + kShapeNames[shape];
}

}  // namespace

const char* shape_name(Shape s) { return kShapeNames[static_cast<int>(s)]; }
const char* color_name(Color c) { return kColorNames[static_cast<int>(c)]; }
const char* pattern_name(Pattern p) { return kPatternNames[static_cast<int>(p)]; }

SceneLabels scene_labels(const Scene& scene) {
  SceneLabels l;
  l.background = pattern_name(scene.pattern);
  bool color[kColors] = {}, shape[kShapes] = {};
  for (const auto& o : scene.objects) {
    color[static_cast<int>(o.color)] = true;
    shape[static_cast<int>(o.shape)] = true;
  }
  for (int c = 0; c < kColors; ++c)
    if (color[c]) l.colors.push_back(kColorNames[c]);
  for (int s = 0; s < kShapes; ++s)
    if (shape[s]) l.shapes.push_back(kShapeNames[s]);
  l.count = static_cast<int>(scene.objects.size());
  return l;
}

Object random_object(Rng& rng) {
  Object o;
  o.shape = static_cast<Shape>(rng.below(kShapes));
  o.color = static_cast<Color>(rng.below(kColors));
  o.large = rng.chance(0.5);
  o.shade = rng.between(-12, 12);
  return o;
}

bool place_object(Scene& scene, Object o, Rng& rng) {
  const double r = o.radius(), margin = 0.03;
  for (int attempt = 0; attempt < 60; ++attempt) {
    o.x = rng.uniform(r + margin, 1 - r - margin);
    o.y = rng.uniform(r + margin, 1 - r - margin);
    bool free = true;
    for (const auto& p : scene.objects) {
      const double need = r + p.radius() + margin;
      if (dist2(o.x, o.y, p.x, p.y) < need * need) {
        free = false;
        break;
      }
    }
    if (free) {
      scene.objects.push_back(o);
      return true;
    }
  }
  return false;
}

Scene random_scene(Rng& rng, int min_objects, int max_objects) {
  Scene s;
  s.pattern = static_cast<Pattern>(rng.below(kPatterns));
  s.tone = rng.below(kTones);
  s.orientation = rng.below(3);
  s.period = rng.uniform(0.10, 0.2);
  const int n = rng.between(min_objects, max_objects);
  for (int i = 0; i < n; ++i) {
    // Keep drawing until the object fits; a crowded scene falls back to small objects.
    Object o = random_object(rng);
    if (!place_object(s, o, rng)) {
      o.large = false;
      place_object(s, o, rng);
    }
  }
  return s;
}

image::Image render(const Scene& s, int size, Rng& rng) {
  image::Image img = image::Image::uninitialized(size, size);
  const auto& base = kToneRgb[s.tone][0];
  const auto& alt = kToneRgb[s.tone][1];
  constexpr int kSub = 3;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      int acc[3] = {0, 0, 0};
      for (int sy = 0; sy < kSub; ++sy) {
        for (int sx = 0; sx < kSub; ++sx) {
          const double px = (x + (sx + 0.5) / kSub) / size, py = (y + (sy + 0.5) / kSub) / size;
          const uint8_t* c = base;
          int shade = 0;
          const Object* hit = nullptr;
          for (const auto& o : s.objects)
            if (inside(o, px, py)) hit = &o;
          if (hit) {
            c = kColorRgb[static_cast<int>(hit->color)];
            shade = hit->shade;
          } else {
            const double u = px / s.period, v = py / s.period;
            bool texture = false;
            switch (s.pattern) {
              case Pattern::plain: break;
              case Pattern::striped: {
                const double t = s.orientation == 0 ? v : s.orientation == 1 ? u : (u + v) * 0.7071;
                texture = std::fmod(t, 1.0) < 0.5;
                break;
              }
              case Pattern::checkered:
                texture = (static_cast<int>(std::floor(u)) + static_cast<int>(std::floor(v))) % 2 != 0;
                break;
              case Pattern::dotted: {
                const double fu = u - std::floor(u) - 0.5, fv = v - std::floor(v) - 0.5;
                texture = fu * fu + fv * fv < 0.09;
                break;
              }
            }
            if (texture) c = alt;
          }
          for (int k = 0; k < 3; ++k) acc[k] += c[k] + shade;
        }
      }
      uint8_t* p = img.at(x, y);
      for (int k = 0; k < 3; ++k) {
        const int v = (acc[k] + kSub * kSub / 2) / (kSub * kSub) + rng.between(-4, 4);
        p[k] = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
    }
  }
  return img;
}

std::string region_name(double x, double y) {
  const char* v = y < 1.0 / 3 ? "top" : y > 2.0 / 3 ? "bottom" : "";
  const char* h = x < 1.0 / 3 ? "left" : x > 2.0 / 3 ? "right" : "";
  if (!*v && !*h) return "center";
  if (!*v) return h;
  if (!*h) return v;
  return std::string(v) + " " + h;
}

// ---------------------------------------------------------------------------------------
// Captions

std::vector<std::string> captions(const Scene& s, Rng& rng, int n) {
  const int count = static_cast<int>(s.objects.size());
  auto pattern_word = [&] { return rng.pick(kPatternWords[static_cast<int>(s.pattern)]); };
  auto shapes_word = [&](int k) { return k == 1 ? std::string("shape") : std::string(rng.chance(0.5) ? "shapes" : "objects"); };
  std::vector<std::function<std::string()>> templates = {
      [&] { return object_list(s, rng, false) + " on " + article(pattern_word()) + " background"; },
      [&] {
        return count == 1 ? "there is one shape, " + object_list(s, rng, true)
                          : "there are " + num_word(count) + " " + shapes_word(count) + ": " + object_list(s, rng, false);
      },
      [&] { return article(pattern_word()) + " background with " + object_list(s, rng, true); },
      [&] {
        const Object& a = s.objects[static_cast<size_t>(rng.below(count))];
        if (count == 1)
          return "the " + object_words(a, rng, false) + " is in the " + region_name(a.x, a.y) + " of the picture";
        const Object* b = &a;
        while (b == &a) b = &s.objects[static_cast<size_t>(rng.below(count))];
        const double dx = b->x - a.x, dy = b->y - a.y;
        std::string rel = std::fabs(dx) >= std::fabs(dy) ? (dx > 0 ? "to the left of" : "to the right of")
                                                         : (dy > 0 ? "above" : "below");
        return article(object_words(a, rng, false)) + " " + rel + " " + article(object_words(*b, rng, false));
      },
      [&] {
        std::map<int, int> by_color;
        for (const auto& o : s.objects) by_color[static_cast<int>(o.color)]++;
        std::vector<std::string> parts;
        for (auto [c, k] : by_color) parts.push_back(num_word(k) + " " + kColorNames[c] + " " + (k == 1 ? "shape" : "shapes"));
        return join_list(parts) + " over " + article(pattern_word()) + " pattern";
      },
      [&] {
        std::map<int, int> by_shape;
        for (const auto& o : s.objects) by_shape[static_cast<int>(o.shape)]++;
        std::vector<std::string> parts;
        for (auto [sh, k] : by_shape) {
          std::string w = kShapeWords[sh][0];
          parts.push_back(k == 1 ? article(w) : num_word(k) + " " + plural(w));
        }
        return std::string(rng.chance(0.5) ? "an image of " : "a picture of ") + join_list(parts);
      },
      [&] {
        const Object& a = s.objects[static_cast<size_t>(rng.below(count))];
        std::string out = article(object_words(a, rng, true)) + " near the " + region_name(a.x, a.y);
        if (count > 1) out += " and " + num_word(count - 1) + " other " + (count == 2 ? "shape" : "shapes");
        return out;
      },
      [&] { return "the picture shows " + object_list(s, rng, true); },
      [&] { return object_list(s, rng, true); },
  };
  std::vector<size_t> order(templates.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  rng.shuffle(order);
  std::vector<std::string> out;
  for (size_t i = 0; i < order.size() && static_cast<int>(out.size()) < n; ++i) {
    std::string c = templates[order[i]]();
    if (rng.chance(0.5)) c[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(c[0])));
    if (rng.chance(0.4)) c += ".";
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  // Nine templates always yield five different captions for n <= 5; larger n repeats
  // templates with new paraphrase draws.
  for (int guard = 0; static_cast<int>(out.size()) < n && guard < 100; ++guard) {
    std::string c = templates[static_cast<size_t>(rng.below(static_cast<int>(templates.size())))]();
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Questions with ten human-style answers

namespace {

enum class AnswerKind { yes_no, number, color, shape, region, pattern };

struct Draft {
  std::string question, question_type, truth;
  AnswerKind kind;
  double difficulty;  // probability that one annotator errs
  double x = 0, y = 0;  // for region questions
  int number = 0;
};

std::string wrong_answer(const Draft& d, Rng& rng) {
  switch (d.kind) {
    case AnswerKind::yes_no: return d.truth == "yes" ? "no" : "yes";
    case AnswerKind::number: {
      int v = d.number + (rng.chance(0.5) ? 1 : -1);
      if (v < 0) v = d.number + 1;
      return std::to_string(v);
    }
    case AnswerKind::color: {
      static const std::map<std::string, std::vector<std::string>> near = {
          {"red", {"orange", "pink"}}, {"orange", {"red", "yellow"}}, {"yellow", {"orange", "gold"}},
          {"green", {"dark green", "teal"}}, {"blue", {"purple", "dark blue"}}, {"purple", {"blue", "violet"}}};
      return rng.pick(near.at(d.truth));
    }
    case AnswerKind::shape: {
      static const std::map<std::string, std::vector<std::string>> near = {
          {"circle", {"oval", "ball"}}, {"square", {"diamond", "rectangle"}}, {"triangle", {"star", "pyramid"}},
          {"star", {"triangle", "flower"}}, {"diamond", {"square", "rhombus"}}};
      return rng.pick(near.at(d.truth));
    }
    case AnswerKind::region:
    case AnswerKind::pattern:
      break;
  }
  return d.truth;
}

Question finish(const Draft& d, Rng& rng) {
  Question q;
  q.question = d.question;
  q.question_type = d.question_type;
  q.truth = d.truth;
  q.answer_type = d.kind == AnswerKind::yes_no ? "yes/no" : d.kind == AnswerKind::number ? "number" : "other";
  for (int i = 0; i < 10; ++i) {
    std::string a;
    bool right = true;
    if (d.kind == AnswerKind::region) {
      // Each annotator judges the position by eye; near a boundary they disagree.
      const double jitter = 0.03 + d.difficulty * 0.2;
      a = region_name(d.x + rng.normal() * jitter, d.y + rng.normal() * jitter);
      right = a == d.truth;
    } else if (d.kind == AnswerKind::pattern) {
      for (int p = 0; p < kPatterns; ++p)
        if (d.truth == kPatternNames[p]) a = rng.pick(kPatternAnswers[p]);
      right = a == d.truth;
    } else if (rng.chance(d.difficulty)) {
      a = wrong_answer(d, rng);
      right = false;
    } else {
      a = d.truth;
      if (d.kind == AnswerKind::number && rng.chance(0.12)) a = num_word(d.number);
      if ((d.kind == AnswerKind::shape || d.kind == AnswerKind::color) && rng.chance(0.08)) a = "the " + a;
    }
    q.answers.push_back(a);
    const double u = rng.uniform();
    q.confidences.push_back(right ? (u < 0.85 ? "yes" : "maybe") : (u < 0.55 ? "maybe" : u < 0.8 ? "no" : "yes"));
  }
  // Most frequent answer; ties go to the one given first.
  std::map<std::string, int> counts;
  for (const auto& a : q.answers) counts[a]++;
  int best = 0;
  for (const auto& a : q.answers)
    if (counts[a] > best) {
      best = counts[a];
      q.multiple_choice_answer = a;
    }
  return q;
}

int unique_index(const Scene& s, int color, int shape) {
  int found = -1;
  for (size_t i = 0; i < s.objects.size(); ++i) {
    const auto& o = s.objects[i];
    if ((color < 0 || static_cast<int>(o.color) == color) && (shape < 0 || static_cast<int>(o.shape) == shape)) {
      if (found >= 0) return -1;
      found = static_cast<int>(i);
    }
  }
  return found;
}

double object_difficulty(const Object& o) { return o.large ? 0.04 : 0.1; }

// Each maker returns false when the scene does not support the question.
bool yes_no_question(const Scene& s, Rng& rng, Draft& d) {
  d.kind = AnswerKind::yes_no;
  const bool yes = rng.chance(0.5);
  const Object& o = rng.pick(s.objects);
  switch (rng.below(4)) {
    case 0: {  // colour-shape binding
      int color = static_cast<int>(o.color), shape = static_cast<int>(o.shape);
      if (!yes) {
        // Mostly a confusable combination: an existing shape in another colour.
        for (int tries = 0; tries < 20 && count_if(s, color, shape) > 0; ++tries) {
          if (rng.chance(0.6)) color = rng.below(kColors);
          else shape = rng.below(kShapes);
        }
        if (count_if(s, color, shape) > 0) return false;
      }
      d.question = "is there " + article(describe(color, shape)) + (rng.chance(0.3) ? " in the image?" : "?");
      d.question_type = "is there a";
      d.truth = yes ? "yes" : "no";
      d.difficulty = yes ? object_difficulty(o) : 0.06;
      return true;
    }
    case 1: {
      int shape = yes ? static_cast<int>(o.shape) : rng.below(kShapes);
      if (!yes && count_if(s, -1, shape) > 0) return false;
      d.question = "are there any " + plural(kShapeNames[shape]) + "?";
      d.question_type = "are there";
      d.truth = yes ? "yes" : "no";
      d.difficulty = 0.05;
      return true;
    }
    case 2: {
      const int shape = static_cast<int>(o.shape);
      const int idx = unique_index(s, -1, shape);
      if (idx < 0) return false;
      int color = yes ? static_cast<int>(o.color) : (static_cast<int>(o.color) + 1 + rng.below(kColors - 1)) % kColors;
      d.question = std::string("is the ") + kShapeNames[shape] + " " + kColorNames[color] + "?";
      d.question_type = "is the";
      d.truth = yes ? "yes" : "no";
      d.difficulty = object_difficulty(o);
      return true;
    }
    default: {
      int p = yes ? static_cast<int>(s.pattern) : (static_cast<int>(s.pattern) + 1 + rng.below(kPatterns - 1)) % kPatterns;
      d.question = std::string("is the background ") + kPatternNames[p] + "?";
      d.question_type = "is the";
      d.truth = yes ? "yes" : "no";
      d.difficulty = 0.07;
      return true;
    }
  }
}

bool number_question(const Scene& s, Rng& rng, Draft& d) {
  d.kind = AnswerKind::number;
  const Object& o = rng.pick(s.objects);
  switch (rng.below(3)) {
    case 0:
      d.number = static_cast<int>(s.objects.size());
      d.question = rng.chance(0.5) ? "how many shapes are there?" : "how many objects are in the picture?";
      break;
    case 1: {
      const int color = rng.chance(0.7) ? static_cast<int>(o.color) : rng.below(kColors);
      d.number = count_if(s, color, -1);
      d.question = std::string("how many ") + kColorNames[color] + " shapes are there?";
      break;
    }
    default: {
      const int shape = rng.chance(0.7) ? static_cast<int>(o.shape) : rng.below(kShapes);
      d.number = count_if(s, -1, shape);
      d.question = "how many " + plural(kShapeNames[shape]) + (rng.chance(0.5) ? " are there?" : " can you see?");
      break;
    }
  }
  d.question_type = "how many";
  d.truth = std::to_string(d.number);
  d.difficulty = 0.03 + 0.04 * d.number;
  return true;
}

bool other_question(const Scene& s, Rng& rng, Draft& d, int variant) {
  const Object& o = rng.pick(s.objects);
  switch (variant) {
    case 0: {
      if (unique_index(s, -1, static_cast<int>(o.shape)) < 0) return false;
      d.kind = AnswerKind::color;
      d.question = std::string("what color is the ") + shape_name(o.shape) + "?";
      d.question_type = "what color is the";
      d.truth = color_name(o.color);
      d.difficulty = object_difficulty(o);
      return true;
    }
    case 1: {
      if (unique_index(s, static_cast<int>(o.color), -1) < 0) return false;
      d.kind = AnswerKind::shape;
      d.question = std::string("what shape is the ") + color_name(o.color) + (rng.chance(0.5) ? " object?" : " shape?");
      d.question_type = "what";
      d.truth = shape_name(o.shape);
      d.difficulty = object_difficulty(o) + 0.02;
      return true;
    }
    case 2: {
      if (unique_index(s, static_cast<int>(o.color), static_cast<int>(o.shape)) < 0) return false;
      d.kind = AnswerKind::region;
      d.question = std::string("where is the ") + color_name(o.color) + " " + shape_name(o.shape) + "?";
      d.question_type = "where is the";
      d.truth = region_name(o.x, o.y);
      d.x = o.x;
      d.y = o.y;
      d.difficulty = 0.1;
      return true;
    }
    default:
      d.kind = AnswerKind::pattern;
      d.question = rng.chance(0.5) ? "what is the pattern of the background?" : "what is the background pattern?";
      d.question_type = "what is the";
      d.truth = pattern_name(s.pattern);
      return true;
  }
}

}  // namespace

std::vector<Question> questions(const Scene& s, Rng& rng, int n) {
  std::vector<Question> out;
  std::vector<std::string> asked;
  auto add = [&](Draft& d) {
    if (std::find(asked.begin(), asked.end(), d.question) != asked.end()) return false;
    asked.push_back(d.question);
    out.push_back(finish(d, rng));
    return true;
  };
  // Kinds in turn: yes/no, number, then "other" variants in random order.
  std::vector<int> other = {0, 1, 2, 3};
  rng.shuffle(other);
  size_t next_other = 0;
  for (int slot = 0, guard = 0; static_cast<int>(out.size()) < n && guard < 200; ++guard) {
    Draft d;
    const int kind = slot % 4 == 0 ? 0 : slot % 4 == 1 ? 1 : 2;
    bool ok = kind == 0   ? yes_no_question(s, rng, d)
              : kind == 1 ? number_question(s, rng, d)
                          : other_question(s, rng, d, other[next_other++ % other.size()]);
    if (ok && add(d)) ++slot;
    else if (kind == 2 && guard % 8 == 7) ++slot;  // this scene cannot support more of them
  }
  rng.shuffle(out);
  return out;
}

std::vector<Question> color_questions(const Scene& s, Rng& rng) {
  std::vector<Question> out;
  for (int c = 0; c < kColors; ++c) {
    Draft d;
    d.kind = AnswerKind::yes_no;
    d.question = "is there " + article(describe(c, -1)) + "?";
    d.question_type = "is there a";
    // Annotators miss a colour more often when its largest shape is small; they deny an
    // absent colour as surely as they see a large shape.
    const Object* largest = nullptr;
    for (const auto& o : s.objects)
      if (static_cast<int>(o.color) == c && (largest == nullptr || o.large)) largest = &o;
    d.truth = largest != nullptr ? "yes" : "no";
    d.difficulty = largest != nullptr ? object_difficulty(*largest) : 0.04;
    out.push_back(finish(d, rng));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Statements about image pairs

bool Statement::holds(const Scene& l, const Scene& r) const {
  const int la = count_if(l, color_a, shape_a), ra = count_if(r, color_a, shape_a);
  switch (kind) {
    case Kind::both_have: return la > 0 && ra > 0;
    case Kind::exactly_one_has: return (la > 0) != (ra > 0);
    case Kind::neither_has: return la == 0 && ra == 0;
    case Kind::more_shapes: {
      const size_t nl = l.objects.size(), nr = r.objects.size();
      return left_more ? nl > nr : nr > nl;
    }
    case Kind::total_count: return la + ra == number;
    case Kind::left_right: return la > 0 && count_if(r, color_b, shape_b) > 0;
    case Kind::same_count: return l.objects.size() == r.objects.size();
  }
  return false;
}

void Statement::inject(Scene& scene, bool second, Rng& rng) const {
  const int c = second ? color_b : color_a, sh = second ? shape_b : shape_a;
  if (kind == Kind::more_shapes || kind == Kind::same_count || scene.objects.size() >= 4) return;
  Object o = random_object(rng);
  if (c >= 0) o.color = static_cast<Color>(c);
  if (sh >= 0) o.shape = static_cast<Shape>(sh);
  place_object(scene, o, rng);
}

Statement random_statement(Rng& rng) {
  Statement st;
  // Statements lean towards what a small vision model grounds first: the presence of a colour
  // (the image side of "is there a red shape?"), in the two kinds whose label follows each
  // image's answer directly (both, left-and-right), drawn 3x as often as each other kind.
  static const int kKindWeights[7] = {3, 1, 1, 1, 1, 3, 1};  // in the order of Statement::Kind
  int pick = rng.below(11), kind = 0;
  while (pick >= kKindWeights[kind]) pick -= kKindWeights[kind++];
  st.kind = static_cast<Statement::Kind>(kind);
  auto pick_description = [&](int& color, int& shape) {
    const int r = rng.below(20);
    if (r < 12) {  // 60%: a colour
      color = rng.below(kColors);
    } else if (r < 17) {  // 25%: a colour and a shape
      color = rng.below(kColors);
      shape = rng.below(kShapes);
    } else {  // 15%: a shape
      shape = rng.below(kShapes);
    }
  };
  pick_description(st.color_a, st.shape_a);
  const std::string a = describe(st.color_a, st.shape_a);
  switch (st.kind) {
    case Statement::Kind::both_have:
      st.text = rng.chance(0.5) ? "both images contain " + article(a) : "each image has at least one " + a;
      break;
    case Statement::Kind::exactly_one_has:
      st.text = rng.chance(0.5) ? "exactly one image contains " + article(a) : "only one of the images has " + article(a);
      break;
    case Statement::Kind::neither_has:
      st.text = rng.chance(0.5) ? "neither image contains " + article(a) : "there are no " + plural(a) + " in either image";
      break;
    case Statement::Kind::more_shapes:
      st.left_more = rng.chance(0.5);
      st.text = st.left_more ? "the left image has more shapes than the right image"
                             : "the right image contains more shapes than the left image";
      break;
    case Statement::Kind::total_count:
      st.number = rng.between(1, 4);
      st.text = st.number == 1 ? (rng.chance(0.5) ? "there is exactly one " : "the two images contain one ") + a + " in total"
                               : (rng.chance(0.5) ? "there are exactly " : "the two images contain ") + num_word(st.number) +
                                     " " + plural(a) + " in total";
      break;
    case Statement::Kind::left_right:
      pick_description(st.color_b, st.shape_b);
      st.text = "the left image contains " + article(a) + " and the right image contains " +
                article(describe(st.color_b, st.shape_b));
      break;
    case Statement::Kind::same_count:
      st.text = rng.chance(0.5) ? "both images have the same number of shapes" : "the two images show equally many shapes";
      break;
  }
  return st;
}

}  // namespace eve::data::synth
