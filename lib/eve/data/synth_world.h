// The toy world behind `eve-prep synth`: scenes of 1-4 coloured shapes over textured
// backgrounds, their rendering, and the language about them (captions from a grammar with
// paraphrases, VQA questions with ten human-style answers, NLVR2-style statements about
// image pairs). Everything is a pure function of the Rng passed in.
#pragma once

#include <string>
#include <vector>

#include "eve/core/rng.h"
#include "eve/image/image.h"

namespace eve::data::synth {

enum class Shape { circle, square, triangle, star, diamond };
enum class Color { red, green, blue, yellow, purple, orange };
enum class Pattern { plain, striped, checkered, dotted };
constexpr int kShapes = 5, kColors = 6, kPatterns = 4, kTones = 4;

const char* shape_name(Shape s);
const char* color_name(Color c);
const char* pattern_name(Pattern p);

struct Object {
  Shape shape = Shape::circle;
  Color color = Color::red;
  bool large = false;
  double x = 0.5, y = 0.5;  // centre, as a fraction of the image side
  int shade = 0;            // small brightness jitter of the fill, in -12..12
  double radius() const { return large ? 0.15 : 0.09; }
};

struct Scene {
  std::vector<Object> objects;
  Pattern pattern = Pattern::plain;
  int tone = 0;         // background colour family, 0..kTones-1
  int orientation = 0;  // stripes: 0 horizontal, 1 vertical, 2 diagonal
  double period = 0.15; // texture period as a fraction of the side
};

// A scene with between min_objects and max_objects non-overlapping objects.
Scene random_scene(Rng& rng, int min_objects = 1, int max_objects = 4);
Object random_object(Rng& rng);
// Places `o` at a random free position; false when no position was found.
bool place_object(Scene& scene, Object o, Rng& rng);

// Renders at size x size pixels (supersampled edges, texture, a little sensor noise).
image::Image render(const Scene& scene, int size, Rng& rng);

// What a classifier or a probe is asked about one image, read off the scene the renderer
// draws (never from pixels): the background pattern, the distinct colours and shapes present
// (each list in the order of the enums above) and the number of shapes.
struct SceneLabels {
  std::string background;
  std::vector<std::string> colors, shapes;
  int count = 0;
};
SceneLabels scene_labels(const Scene& scene);

// The 3x3 region name of a point ("top left", "center", ...).
std::string region_name(double x, double y);

// `n` different captions.
std::vector<std::string> captions(const Scene& scene, Rng& rng, int n = 5);

struct Question {
  std::string question, question_type, answer_type;  // answer_type: yes/no, number, other
  std::string truth;                                  // what the scene says
  std::vector<std::string> answers, confidences;      // ten annotators
  std::string multiple_choice_answer;                 // the most frequent answer
};

// `n` questions of different kinds: at least one yes/no, one number and one other when
// n >= 3, with ten answers each.
std::vector<Question> questions(const Scene& scene, Rng& rng, int n = 4);

// One yes/no question per colour, "is there a <colour> shape?", with ten answers each: a
// single-skill set (finding a named colour in the image) for a grounding curriculum.
std::vector<Question> color_questions(const Scene& scene, Rng& rng);

// A statement about an image pair.
struct Statement {
  enum class Kind { both_have, exactly_one_has, neither_has, more_shapes, total_count, left_right, same_count };
  Kind kind = Kind::both_have;
  // Descriptions: a colour and/or a shape (either may be absent: any colour / any shape).
  int color_a = -1, shape_a = -1, color_b = -1, shape_b = -1;
  int number = 0;
  bool left_more = true;
  std::string text;

  bool holds(const Scene& left, const Scene& right) const;
  // Adds objects the statement talks about to `scene` (so both labels are reachable).
  void inject(Scene& scene, bool second_description, Rng& rng) const;
};

Statement random_statement(Rng& rng);

}  // namespace eve::data::synth
