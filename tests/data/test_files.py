"""Loading .npy, .npz and .csv files, and one clear error for every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowmatch.data.files import SUPPORTED_EXTENSIONS, load_array
from flowmatch.errors import FlowmatchError


class _Sentinel:
    """Unpickling this object would create a file; loading must never get that far."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def expect_error(path, *fragments, **kwargs) -> str:
    """load_array(path) raises one line that names the file and contains each fragment."""
    with pytest.raises(FlowmatchError) as info:
        load_array(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(7, 3))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, np.uint8])
def test_npy_round_trip(tmp_path, data, dtype):
    arr = (data * 10).astype(dtype)
    np.save(tmp_path / "a.npy", arr)
    x = load_array(tmp_path / "a.npy")
    assert x.dtype == torch.float32 and x.shape == (7, 3)
    assert torch.equal(x, torch.from_numpy(arr.astype(np.float32)))


def test_npy_one_dim_and_fortran_order(tmp_path, data):
    np.save(tmp_path / "v.npy", data[:, 0])
    assert load_array(str(tmp_path / "v.npy")).shape == (7, 1)
    np.save(tmp_path / "f.npy", np.asfortranarray(data))
    assert torch.allclose(load_array(tmp_path / "f.npy"), torch.from_numpy(data).float())


def test_bool_array(tmp_path):
    np.save(tmp_path / "b.npy", np.array([[True, False]]))
    assert torch.equal(load_array(tmp_path / "b.npy"), torch.tensor([[1.0, 0.0]]))


def test_images_need_allow_images(tmp_path):
    imgs = np.zeros((4, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "img.npy", imgs)
    expect_error(tmp_path / "img.npy", "(4, 1, 8, 8)", "(N, D)")
    assert load_array(tmp_path / "img.npy", allow_images=True).shape == (4, 1, 8, 8)


@pytest.mark.parametrize("key", ["anything", "x", "data"])
def test_npz_single_array_any_name(tmp_path, data, key):
    np.savez(tmp_path / "a.npz", **{key: data})
    assert torch.allclose(load_array(tmp_path / "a.npz"), torch.from_numpy(data).float())


@pytest.mark.parametrize("key", ["x", "data"])
def test_npz_picks_x_or_data(tmp_path, data, key):
    np.savez_compressed(tmp_path / "a.npz", labels=np.arange(7), **{key: data})
    assert torch.allclose(load_array(tmp_path / "a.npz"), torch.from_numpy(data).float())


def test_csv_without_and_with_header(tmp_path, data):
    expected = torch.from_numpy(data).float()
    np.savetxt(tmp_path / "plain.csv", data, delimiter=",")
    assert torch.allclose(load_array(tmp_path / "plain.csv"), expected)
    np.savetxt(tmp_path / "head.csv", data, delimiter=",", header="a,b,c", comments="")
    assert torch.allclose(load_array(tmp_path / "head.csv"), expected)
    np.savetxt(tmp_path / "comment.csv", data, delimiter=",", header="a,b,c")  # "# a,b,c"
    assert torch.allclose(load_array(tmp_path / "comment.csv"), expected)


def test_csv_whitespace_blank_lines_and_bom(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("\ufeffx, y\n1, 2\n\n 3 ,4e0\n", encoding="utf-8")
    assert torch.equal(load_array(path), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


def test_single_column_csv(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("1\n2\n3\n")
    assert load_array(path).shape == (3, 1)


# ---------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.csv", "no such file")


def test_directory(tmp_path):
    (tmp_path / "d.npy").mkdir()
    expect_error(tmp_path / "d.npy", "not a regular file")


@pytest.mark.parametrize("name", ["data.txt", "data"])
def test_unknown_extension(tmp_path, name):
    (tmp_path / name).write_text("1,2\n")
    expect_error(tmp_path / name, "use one of", *SUPPORTED_EXTENSIONS)


def test_not_a_path():
    with pytest.raises(FlowmatchError, match=r"str or pathlib\.Path"):
        load_array(3)


@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_garbage_binary(tmp_path, ext):
    path = tmp_path / f"junk{ext}"
    path.write_bytes(b"this is not numpy data at all\x00\x01")
    expect_error(path, "not a valid")


def test_empty_npy_file(tmp_path):
    (tmp_path / "e.npy").write_bytes(b"")
    expect_error(tmp_path / "e.npy", "not a valid")


def test_truncated_npy(tmp_path, data):
    np.save(tmp_path / "t.npy", data)
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[:-10])
    expect_error(tmp_path / "t.npy", "truncated")


def test_corrupt_npz_member(tmp_path, data):
    np.savez(tmp_path / "c.npz", x=data)
    raw = bytearray((tmp_path / "c.npz").read_bytes())
    raw[60:200] = b"\x00" * 140  # clobber the member's header
    (tmp_path / "c.npz").write_bytes(bytes(raw))
    with pytest.raises(FlowmatchError) as info:
        load_array(tmp_path / "c.npz")
    assert str(tmp_path / "c.npz") in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_pickled_objects_are_never_loaded(tmp_path, ext):
    sentinel = tmp_path / "pwned"
    arr = np.array([_Sentinel(sentinel), 1.0], dtype=object)
    path = tmp_path / f"obj{ext}"
    if ext == ".npy":
        np.save(path, arr, allow_pickle=True)
    else:
        np.savez(path, x=arr)
    expect_error(path, "pickle")
    assert not sentinel.exists()


def test_npz_ambiguous_lists_keys(tmp_path, data):
    np.savez(tmp_path / "m.npz", first=data, second=data)
    expect_error(tmp_path / "m.npz", "first", "second", "'x'")


def test_npz_without_arrays(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "z.npz", "w") as zf:
        zf.writestr("readme.txt", "hi")
    expect_error(tmp_path / "z.npz", "no arrays")


@pytest.mark.parametrize(
    "arr",
    [np.zeros((0, 3)), np.zeros((5, 0)), np.zeros((0,))],
    ids=["no-rows", "no-columns", "empty-1d"],
)
def test_empty_array(tmp_path, arr):
    np.save(tmp_path / "e.npy", arr)
    expect_error(tmp_path / "e.npy", "empty")


def test_scalar_array(tmp_path):
    np.save(tmp_path / "s.npy", np.float64(3.0))
    expect_error(tmp_path / "s.npy", "single number")


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n", "a,b\n"])
def test_empty_csv(tmp_path, content):
    (tmp_path / "e.csv").write_text(content)
    expect_error(tmp_path / "e.csv", "no data rows")


def test_non_finite_npy(tmp_path, data):
    data[2, 1] = np.nan
    data[4, 0] = np.nan
    data[5, 2] = -np.inf
    np.save(tmp_path / "n.npy", data)
    expect_error(tmp_path / "n.npy", "2 NaN", "1 Inf", "(2, 1)")


def test_non_finite_csv(tmp_path):
    (tmp_path / "n.csv").write_text("a,b\n1,2\n3,inf\n")
    expect_error(tmp_path / "n.csv", "0 NaN", "1 Inf", "line 3, column 2")


def test_float32_overflow(tmp_path):
    np.save(tmp_path / "big.npy", np.array([[1.0], [1e300]]))
    expect_error(tmp_path / "big.npy", "float32 range")


@pytest.mark.parametrize(
    ("arr", "word"),
    [
        (np.array([["a", "b"]]), "text"),
        (np.array([[1 + 2j]]), "complex"),
        (np.zeros(3, dtype=[("a", "f8"), ("b", "f8")]), "structured"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "dates"),
    ],
)
def test_non_numeric_dtype(tmp_path, arr, word):
    np.save(tmp_path / "s.npy", arr)
    expect_error(tmp_path / "s.npy", word, "numeric")
    np.savez(tmp_path / "s.npz", x=arr)
    expect_error(tmp_path / "s.npz", word)


def test_ragged_csv(tmp_path):
    (tmp_path / "r.csv").write_text("1,2\n3,4\n5\n")
    expect_error(tmp_path / "r.csv", "line 3 has 1 values", "line 1 has 2")


def test_non_numeric_cell_with_header(tmp_path):
    (tmp_path / "data.csv").write_text("x,y,color\n1,2,3\n4,5,red\n")
    expect_error(tmp_path / "data.csv", "line 3, column 3 ('color')", "'red'", "numeric")


def test_non_numeric_cell_without_header(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n3,4\n5,abc\n")
    msg = expect_error(tmp_path / "data.csv", "line 3, column 2", "'abc'")
    assert "('" not in msg  # no header, so no column name


def test_empty_cell(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n3,\n")
    expect_error(tmp_path / "data.csv", "line 2, column 2", "empty")


def test_non_utf8_csv(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00\x81binary")
    expect_error(tmp_path / "b.csv", "UTF-8")
