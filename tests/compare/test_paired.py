"""ae-compare --paired: runs against a baseline, image by image, checked against hand computation."""

from __future__ import annotations

import math

import pytest

from autoencoders.compare.paired import paired_difference
from autoencoders.rundir.per_image import write_per_image
from tests.compare.test_compare import read_csv, run_cli, write_run


def test_the_paired_difference_and_its_standard_error_by_hand():
    a = {0: 10.0, 1: 12.0, 2: 9.0, 3: 15.0}
    b = {3: 15.5, 2: 10.0, 1: 12.5, 0: 11.0}  # by test index, whatever the order
    pair = paired_difference(a, b)
    # d = -1, -0.5, -1, -0.5: mean -0.75; sample std sqrt(4 * 0.25**2 / 3) = 0.288675; SE = std / 2.
    assert (pair.images, pair.mean, pair.baseline_mean) == (4, 11.5, 12.25)
    assert pair.difference == -0.75 and pair.standard_error == pytest.approx(math.sqrt(0.25 / 3) / 2)
    assert pair.z == pytest.approx(-0.75 / 0.1443376) and pair.verdict() == "lower"
    # Unpaired, the means' spread over images (std 2.65 and 2.47) would hide the difference.
    assert paired_difference(b, a).verdict() == "higher"
    close = paired_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 1: 1.5, 2: 3.1})  # d = -0.5, 0.5, -0.1
    assert close.verdict() == "within 2 SE"
    same = paired_difference({0: 1.0, 1: 2.0}, {0: 3.0, 1: 4.0})  # every image 2 lower: no spread at all
    assert same.standard_error == 0 and same.z == -math.inf and same.verdict() == "lower"


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0}, r"different test images \(2 and 2 images, 1 in common\)"),
        ({0: 1.0}, {0: 2.0}, "at least 2 images, not 1"),
        ({0: 1.0, 1: math.inf}, {0: 1.0, 1: 2.0}, "not finite"),
    ],
)
def test_pairs_that_cannot_be_formed_are_refused(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b)


NLL = {  # per arm and seed: each image's value is base + the arm's offset + image noise
    "vae": 0.0,
    "iwae_k5": -0.4,
    "iwae_k50": -0.9,
}


def fake_sweep(root, arms=NLL, seeds=("0", "1"), images=50):
    num = 0
    for arm, offset in arms.items():
        for seed in seeds:
            run = root / f"{num}_iwae_vs_vae={arm},seed={seed}"
            values = [
                80 + 7 * math.sin(i) + offset + 0.3 * math.cos(3 * i + int(seed) + len(arm)) for i in range(images)
            ]
            write_run(run, [f"iwae_vs_vae={arm}", f"seed={seed}"], {"test/nll": sum(values) / images})
            write_per_image(run, "test/nll", [2 * i for i in range(images)], values)
            num += 1
    return root


def test_each_run_is_paired_with_its_seeds_baseline(tmp_path, capsys):
    root = fake_sweep(tmp_path / "sweep")
    code, out, err = run_cli(capsys, root, "--paired", "test/nll", "--baseline", "iwae_vs_vae=vae", "--format", "csv")
    assert code == 0, err
    rows = read_csv(out)
    assert [(row["run"], row["baseline"]) for row in rows] == [
        ("2_iwae_vs_vae=iwae_k5,seed=0", "0_iwae_vs_vae=vae,seed=0"),
        ("3_iwae_vs_vae=iwae_k5,seed=1", "1_iwae_vs_vae=vae,seed=1"),
        ("4_iwae_vs_vae=iwae_k50,seed=0", "0_iwae_vs_vae=vae,seed=0"),
        ("5_iwae_vs_vae=iwae_k50,seed=1", "1_iwae_vs_vae=vae,seed=1"),
    ]
    for row in rows:  # the printed figures are the hand formula's on the files written
        arm, seed = row["run"].split("=")[1].split(",")[0], row["run"][-1]

        def values(name, seed=seed):
            return [80 + 7 * math.sin(i) + NLL[name] + 0.3 * math.cos(3 * i + int(seed) + len(name)) for i in range(50)]

        differences = [x - y for x, y in zip(values(arm), values("vae"))]
        mean = sum(differences) / 50
        se = math.sqrt(sum((d - mean) ** 2 for d in differences) / 49 / 50)
        assert float(row["difference"]) == pytest.approx(mean, rel=1e-3) and row["images"] == "50"
        assert float(row["std error"]) == pytest.approx(se, rel=1e-2) and row["verdict"] == "lower"
    code, out, _ = run_cli(capsys, root, "--paired", "test/nll", "--baseline", "iwae_vs_vae=iwae_k5", "--format", "csv")
    assert code == 0 and {row["verdict"] for row in read_csv(out) if "k50" in row["run"]} == {"lower"}
    assert {row["verdict"] for row in read_csv(out) if "=vae" in row["run"]} == {"higher"}


def test_paired_errors_say_what_to_do(tmp_path, capsys):
    root = fake_sweep(tmp_path / "sweep")
    cases = [
        (["--baseline", "iwae_vs_vae=iwae"], 2, "no run has iwae_vs_vae=iwae; its values here: iwae_k5, iwae_k50, vae"),
        (["--baseline", "model=vae"], 2, "unknown override key 'model' for --baseline"),
        (["--baseline", "vae"], 2, "--baseline takes KEY=VALUE"),
    ]
    for extra, code, message in cases:
        found, _, err = run_cli(capsys, root, "--paired", "test/nll", *extra)
        assert found == code and message in err, err
    found, _, err = run_cli(capsys, root, "--paired", "test/mse", "--baseline", "iwae_vs_vae=vae")
    assert found == 2 and "per-image values, which runs keep for test/nll only" in err
    (root / "3_iwae_vs_vae=iwae_k5,seed=1" / "test_nll.csv").unlink()
    found, _, err = run_cli(capsys, root, "--paired", "test/nll", "--baseline", "iwae_vs_vae=vae")
    assert (
        found == 1
        and "3_iwae_vs_vae=iwae_k5,seed=1 against 1_iwae_vs_vae=vae,seed=1" in err
        and "does not exist" in err
    )
    with pytest.raises(SystemExit) as stopped:
        run_cli(capsys, root, "--paired", "test/nll")
    assert stopped.value.code == 2 and "--paired METRIC and --baseline KEY=VALUE go together" in capsys.readouterr().err


def test_a_baseline_per_seed_is_needed(tmp_path, capsys):
    root = fake_sweep(tmp_path / "sweep", seeds=("0",))
    fake_sweep(tmp_path / "sweep" / "again", arms={"vae": 0.1}, seeds=("0",))  # a second vae of seed 0
    found, _, err = run_cli(capsys, root, "--paired", "test/nll", "--baseline", "iwae_vs_vae=vae")
    assert found == 2 and "needs exactly one baseline run, found 2" in err
