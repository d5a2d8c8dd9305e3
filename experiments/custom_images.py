"""Chapter 04, custom datasets: TinyVGG on an image folder, without and with TrivialAugment.

``--images ROOT`` is a folder with ``train/<class>/<image>`` and ``test/<class>/<image>``.
Without it, the course's own pizza, steak and sushi photos (75 training and 25 test a
class) are fetched from the course's repository on first use and checked
(``jaxdl.data.course_image_folders``); where they cannot be had (no network,
``--offline``), the script says so and writes a stand-in to the work directory: 75
training and 25 test images a class of three Fashion-MNIST footwear classes, as 64x64 RGB
PNGs (the shape of the course's folder). A run started on the stand-in resumes on it.

TinyVGG(3, 10, n_classes), cross-entropy, Adam lr 0.001, batch 32, 5 epochs, images
resized to 64x64; model_0 without augmentation, model_1 with random TrivialAugmentWide
(31 magnitude bins) on the training images. Writes example and augmented images, both
models' train and test curves in one plot, and a prediction, with its probability, on
one image file from outside the dataset (``--image PATH``; default on the course's photos:
the course's own ``04-pizza-dad.jpeg``, fetched and checked the same way; on the stand-in:
the sneaker drawn for the project, ``notebooks/images/sneaker.png``; on your own folder:
its first test image).
"""
import pathlib

import jax
from jaxdl import data, plots, train
from jaxdl.models import TinyVGG
from jaxdl.run import experiment

cfg = experiment.parse_args(
    "custom_images", epochs=5, batch_size=32, lr=1e-3, optimizer="adam", description=__doc__,
    extra_args=[("--images", {"help": "folder with train/ and test/ class folders (default: a stand-in)"}),
                ("--image", {"help": "one image file to predict on (default: notebooks/images/sneaker.png "
                                     "on the stand-in, else the first test image)"}),
                ("--image-size", {"type": experiment.positive_int, "default": 64,
                                 "help": "side of the square images the model sees"})],
    may_change=["image"])
exp = experiment.Experiment(cfg)
size = (cfg.extra["image_size"],) * 2

SNEAKER = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "images" / "sneaker.png"
root, image_path = cfg.extra["images"], cfg.extra["image"]
stand_in = exp.path("images")
if root is None and not (stand_in / "test").exists():  # the course's photos, unless a run began on the stand-in
    allowed = False if cfg.offline else None  # None: downloads unless $JAXDL_OFFLINE
    try:
        root = data.course_image_folders("pizza_steak_sushi", allowed=allowed)[0].parent
        print(f"using the course's pizza, steak and sushi photos in {root}")
    except data.DownloadError as err:
        print(f"the course's photos cannot be had here: {err}")
    if root is not None and image_path is None:
        try:
            image_path = data.fetch_course_file("04-pizza-dad.jpeg", allowed=allowed)
        except data.DownloadError as err:
            print(f"the course's photo cannot be had here ({err}); predicting on the first test image")
if root is None:  # the stand-in: footwear from Fashion-MNIST as a small RGB photo folder
    root = stand_in
    data.folder.check_memory_for(300, size, "the stand-in folder")
    if not (root / "test").exists():  # Sandal, Sneaker, Ankle boot
        data.export_image_folder(data.load_dataset("fashion_mnist", cfg.data_dir, offline=cfg.offline or None), root,
                                 classes=(5, 7, 9), per_class={"train": 75, "test": 25}, size=size)
    print(f"using the stand-in image folder {root}")
    image_path = image_path or SNEAKER
root = pathlib.Path(root)
data.walk_through_dir(root)
train_folder, test_folder = data.image_folder_splits(root, size)
exp.check_data("images", train_folder, test_folder)  # a resume refuses a folder whose files changed
train_set, test_set = train_folder.load(), test_folder.load()
if cfg.examples is not None:
    train_set, test_set = train_set.take(cfg.examples), test_set.take(max(cfg.examples // 5, 1))
classes = train_folder.classes
image_path = image_path or test_folder.samples[0][0]
image = data.read_image(image_path, size)[None]  # read before training: a wrong path is found now
plots.display_random_images(train_set.images, train_set.labels, classes, jax.random.fold_in(exp.key, 0), n=5,
                            path=exp.path("random_images.png"), title="Training images")
originals = train_set.images[:3]
plots.plot_transformed_images(originals, data.trivial_augment_wide(jax.random.fold_in(exp.key, 1), originals),
                              path=exp.path("augmented_images.png"), title="TrivialAugmentWide")

test_data = exp.batches(test_set, shuffle=False)
augment_key = jax.random.fold_in(exp.key, 2)
histories = {}
for name, transform in (("model_0", None), ("model_1", data.trivial_augment_wide)):
    train_data = exp.batches(train_set, transform=transform, transform_key=augment_key if transform else None)
    state, histories[name] = exp.fit(name, TinyVGG(input_shape=3, hidden_units=10, output_shape=len(classes)),
                                     train_data, test_data)
plots.plot_loss_curves({"model_0 (no augmentation)": histories["model_0"],
                        "model_1 (TrivialAugmentWide)": histories["model_1"]},
                       exp.path("loss_curves.png"), title="TinyVGG: train (solid) and test (dashed)")

# predict on one image file, as the course's "custom image" cell
probabilities = train.make_predictions(state, image)[0]
label = int(probabilities.argmax())
print(f"{image_path}: Pred: {classes[label]} | Prob: {probabilities[label]:.3f}")
plots.plot_image_prediction(image[0], f"Pred: {classes[label]} | Prob: {probabilities[label]:.3f}",
                            exp.path("custom_image_prediction.png"))
exp.save(model_0_test_acc=histories["model_0"]["test_acc"][-1], model_1_test_acc=histories["model_1"]["test_acc"][-1],
         custom_image={"path": str(image_path), "prediction": classes[label], "probability": float(probabilities[label])})
