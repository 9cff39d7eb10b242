// `unicorn preprocess`: an image file to the vision tower's input, written as safetensors, so
// the preprocessing can be checked against transformers' processor (or fed to other tools)
// without running a model.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "models/gemma3/config.h"
#include "vision/preprocess.h"

namespace unicorn::cli {

namespace {

struct PreprocessArgs {
  std::string model_dir;
  std::string image;
  std::string out;
  bool pan_and_scan = false;
};

int run_preprocess(const PreprocessArgs& args) {
  const gemma3::Config config = gemma3::load_config(args.model_dir);
  if (!config.vision)
    fail("{}: {} is a text-only model (no vision_config); preprocess needs a multimodal Gemma 3 model", args.model_dir,
         config.architecture.empty() ? config.model_type : config.architecture);

  vision::PreprocessOptions options;
  options.image_size = config.vision->image_size;
  options.pan_and_scan = args.pan_and_scan;
  const auto file = MappedFile::open(args.image);
  const vision::PreprocessedImage result = vision::preprocess_image(file->bytes(), options, args.image);

  SafetensorsWriter writer;
  writer.add("pixel_values", result.pixel_values);
  writer.set_metadata("num_crops", std::to_string(result.num_crops));
  writer.set_metadata("image_size", std::to_string(options.image_size));
  writer.set_metadata("source", args.image);
  writer.write(args.out);
  std::printf("%s: pixel_values %s (%s)\n", args.out.c_str(), shape_str(result.pixel_values.shape()).c_str(),
              result.num_crops == 0 ? "the whole image"
                                    : fmt::format("the whole image + {} pan-and-scan crops", result.num_crops).c_str());
  return 0;
}

const CommandRegistration reg(40, [](CLI::App& app, int& exit_code) {
  auto args = std::make_shared<PreprocessArgs>();
  CLI::App* cmd = app.add_subcommand(
      "preprocess",
      "Turn an image into the vision tower's input as transformers' Gemma3ImageProcessor (Pillow) does: "
      "decode, resize to the model's image size (bilinear), scale to [-1, 1]; writes pixel_values "
      "[images, 3, size, size] (f32) to a safetensors file");
  cmd->add_option("-m,--model", args->model_dir, "model folder; its config.json gives the image size")->required();
  cmd->add_option("--image", args->image, "PNG, JPEG or WebP file (told by its content, not its name)")->required();
  cmd->add_flag("--pan-and-scan", args->pan_and_scan,
                "also cut a wide or tall image into 2-4 crops (min crop 256 px, activation ratio 1.2); "
                "they follow the whole image in pixel_values");
  cmd->add_option("--out", args->out, "output .safetensors file")->required();
  cmd->callback([args, &exit_code] { exit_code = run_preprocess(*args); });
});

}  // namespace

}  // namespace unicorn::cli
