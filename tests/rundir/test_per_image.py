"""Per-image test values in the run directory: written whole, read back exactly, bad files named."""

import pytest

from autoencoders.rundir.per_image import PerImageError, read_per_image, write_per_image


def test_values_come_back_bit_for_bit_by_test_index(tmp_path):
    values = [86.76000000000001, 1 / 3, 1e-300, float("inf")]
    path = write_per_image(tmp_path, "test/nll", [7, 0, 3, 12], values)
    assert path == tmp_path / "test_nll.csv" and path.read_text().splitlines()[0] == "test_index,value"
    assert read_per_image(tmp_path, "test/nll") == dict(zip([7, 0, 3, 12], values))
    with pytest.raises(ValueError):  # one value per index, never a silently shorter file
        write_per_image(tmp_path, "test/nll", [1, 2], [0.5])
    assert read_per_image(tmp_path, "test/nll") == dict(zip([7, 0, 3, 12], values))  # the old file stays whole


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        ("index,nll\n0,1.0\n", "does not start with the header test_index,value"),
        ("test_index,value\n0,1.0\n0,2.0\n", "line 3: test index 0 again"),
        ("test_index,value\n0,one\n", "line 2: '0,one' is not an index and a number"),
    ],
)
def test_a_file_it_did_not_write_is_named_with_what_is_wrong(tmp_path, text, message):
    if text is not None:
        (tmp_path / "test_nll.csv").write_text(text)
    with pytest.raises(PerImageError, match=message):
        read_per_image(tmp_path, "test/nll")
