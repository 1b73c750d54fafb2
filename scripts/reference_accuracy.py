"""Train the sample-quality reference network (autoencoders/evaluation/reference.py) from scratch
on one data set at several seeds, and print its test accuracy and seconds per seed; nothing is
cached. The measurements in docs/disentanglement.md come from it:

    python scripts/reference_accuracy.py fashionmnist --seeds 0 1 2
    python scripts/reference_accuracy.py shapes --seeds 0 1 2              # conf/data/shapes.yaml's size
    python scripts/reference_accuracy.py shapes-disentangle --seeds 0 1 2  # experiment=disentangle's size

The network trains on one thread (as in a run); on shapes the accuracy per scale level is printed
too (the smallest sprites are the hard ones).
"""

import argparse
import json
import time

import torch

from autoencoders.data import ImageDataModule
from autoencoders.data.batches import to_pixels
from autoencoders.evaluation.reference import accuracy_of, recipe_for, train_reference

SETS = {
    "fashionmnist": {"name": "fashionmnist", "download": False},
    # conf/data/shapes.yaml, and conf/experiment/disentangle.yaml's overrides of it
    "shapes": {"name": "shapes", "subsample": 12000, "test_size": 2000, "val_size": 1000},
    "shapes-disentangle": {"name": "shapes", "resolution": 64, "subsample": 60000, "test_size": 2000, "val_size": 1000},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", choices=sorted(SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--root", default="~/.cache/autoencoders", help="where the data is found or generated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    datamodule = ImageDataModule(root=args.root, **SETS[args.data])
    datamodule.setup("fit")
    (images, labels), (test_images, test_labels) = datamodule.stored("train"), datamodule.stored("test")
    recipe = recipe_for(datamodule.name)
    for seed in args.seeds:
        wall, cpu = time.perf_counter(), time.process_time()
        net = train_reference(tuple(images.shape[1:]), datamodule.num_classes, {**recipe, "seed": seed}, images, labels)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        result = {
            "data": args.data,
            "seed": seed,
            "test_accuracy": round(accuracy_of(net, test_images, test_labels), 4),
        }
        if datamodule.has_factors:
            with torch.no_grad():
                right = torch.cat([net(to_pixels(chunk)).argmax(1) for chunk in test_images.split(1000)]) == test_labels
            scale = datamodule.factors["test"][:, datamodule.factor_names.index("scale")]
            result["by_scale"] = [round(float(right[scale == level].float().mean()), 3) for level in scale.unique()]
        result.update(
            train_seconds=round(wall, 1),
            cpu_seconds=round(cpu, 1),
            recipe={**recipe, "seed": seed},
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
