"""netprops.data: loading real and synthetic datasets as device-resident tensors."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST, FashionMNIST

import netprops
from netprops import data as data_mod
from netprops.data import (
    DATASET_NAMES,
    Data,
    DatasetCorruptError,
    DatasetNotFoundError,
    Split,
    load_dataset,
    synthetic_dataset,
)

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# ------------------------------------------------------------------ helpers


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """Encode a uint8 tensor as an IDX file (the format's spec, written independently)."""
    header = bytes([0, 0, 0x08, tensor.dim()]) + b"".join(
        int(d).to_bytes(4, "big") for d in tensor.shape
    )
    return header + tensor.contiguous().numpy().tobytes()


def random_split(n: int, seed: int, shape=(28, 28), classes: int = 10):
    g = netprops.make_generator(seed)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g, dtype=torch.uint8)
    return images, labels


def write_idx_set(directory: Path, *, gz: bool, n_train: int = 12, n_test: int = 5, seed: int = 0):
    """Write a small MNIST-format set; return {key: tensor} of what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = random_split(n_train, seed)
    test_images, test_labels = random_split(n_test, seed + 1)
    tensors = {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
    for key, tensor in tensors.items():
        payload = idx_bytes(tensor)
        name = IDX_STEMS[key] + (".gz" if gz else "")
        (directory / name).write_bytes(gzip.compress(payload) if gz else payload)
    return tensors


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Hide every default location: Debian, $NETPROPS_DATA and the user's cache."""
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.delenv("NETPROPS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    return tmp_path


@pytest.fixture(scope="module")
def fashion() -> Data:
    """The Debian copy; a missing dataset fails (never skips) so it cannot hide."""
    if not (DEBIAN / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is not installed at {DEBIAN}: run "
            "`apt-get install -y dataset-fashion-mnist` (bash .ci/setup does)"
        )
    return load_dataset("fashion-mnist", root=DEBIAN)


# --------------------------------------------------------------- real data


def test_real_fashion_mnist_shapes_and_contents(fashion, device):
    data = fashion.to(device)
    assert data.name == "fashion-mnist"
    assert data.classes == tuple(FashionMNIST.classes)
    assert data.source == str(DEBIAN)
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    for split in (data.train, data.test):
        assert split.images.dtype == torch.uint8
        assert split.labels.dtype == torch.int64
        assert split.images.device.type == torch.device(device).type
        assert split.labels.device.type == torch.device(device).type
        assert int(split.labels.min()) == 0
        assert int(split.labels.max()) == 9
    # Fashion-MNIST is balanced: 6000 / 1000 images per class.
    assert data.train.labels.bincount().tolist() == [6000] * 10
    assert data.test.labels.bincount().tolist() == [1000] * 10
    assert len(data.train) == 60000
    assert len(data.test) == 10000


def test_real_fashion_mnist_standard_normalization(fashion, device):
    """The stored mean/std are the training set's: the float view is ~standardized."""
    sample = fashion.train.to(device).subset(10000, seed=0)  # a sixth, to keep it quick
    var, mean = torch.var_mean(sample.float(torch.float64))
    assert abs(float(mean)) < 0.01
    assert abs(float(var) - 1.0) < 0.01


def test_real_fashion_mnist_matches_torchvision_reader(fashion, tmp_path):
    """Our loader and torchvision's FashionMNIST dataset agree on the same raw files."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in IDX_STEMS.values():
        (raw / stem).write_bytes(gzip.decompress((DEBIAN / f"{stem}.gz").read_bytes()))
    reference = FashionMNIST(str(tmp_path), train=False, download=False)
    torch.testing.assert_close(fashion.test.images[:, 0], reference.data)
    torch.testing.assert_close(fashion.test.labels, reference.targets)


def test_real_fashion_mnist_subset_is_deterministic(fashion, device):
    train = fashion.train.to(device)
    a, b, c = train.subset(500, seed=3), train.subset(500, seed=3), train.subset(500, seed=4)
    assert len(a) == 500
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.mean == train.mean
    assert a.std == train.std


def test_real_fashion_mnist_passes_the_identity_check(fashion):
    """The genuine copy's training-pixel mean is the spec's (the fixture loaded it with
    verify_counts=True, so the check ran); it sits far inside the tolerance."""
    mean = fashion.train.images.double().mean().item() / 255
    assert abs(mean - 0.2860) < 1e-4
    assert abs(mean - fashion.train.mean[0]) < data_mod._IDENTITY_TOLERANCE / 10


def test_fashion_mnist_files_loaded_as_mnist_are_rejected(isolated):
    """Same file names, same format: only the pixel statistics tell them apart."""
    if not (DEBIAN / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"Fashion-MNIST is not installed at {DEBIAN}")
    with pytest.raises(DatasetCorruptError) as info:
        load_dataset("mnist", root=DEBIAN)
    message = str(info.value)
    assert str(DEBIAN) in message
    assert "not mnist" in message
    assert "0.2860" in message  # measured
    assert "0.1307" in message  # expected
    assert "another dataset's files" in message
    assert "fashion-mnist" in message


@pytest.fixture
def tiny_full_specs(monkeypatch):
    """Make the tiny synthetic sets count as *full* copies, so verify_counts=True runs."""
    for name, n_train, n_test in (("mnist", 12, 5), ("cifar10", 10, 3)):
        spec = dataclasses.replace(data_mod._SPECS[name], n_train=n_train, n_test=n_test)
        monkeypatch.setitem(data_mod._SPECS, name, spec)


def write_constant_idx_set(directory: Path, value: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, n in (("train", 12), ("test", 5)):
        images = torch.full((n, 28, 28), value, dtype=torch.uint8)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        (directory / IDX_STEMS[f"{key}_images"]).write_bytes(idx_bytes(images))
        (directory / IDX_STEMS[f"{key}_labels"]).write_bytes(idx_bytes(labels))


@pytest.mark.parametrize(
    ("value", "passes"),
    [(33, True), (29, True), (38, True), (27, False), (39, False), (73, False), (128, False)],
)
def test_identity_tolerance_on_full_copies(tmp_path, isolated, tiny_full_specs, value, passes):
    """MNIST's mean is 0.1307 (33.3 / 255); ±0.02 is ±5.1 grey levels (28.2 to 38.4).
    Fashion-MNIST's 0.2860 is 72.9 / 255."""
    write_constant_idx_set(tmp_path / "root", value)
    if passes:
        assert load_dataset("mnist", root=tmp_path / "root").name == "mnist"
    else:
        with pytest.raises(DatasetCorruptError, match=r"training-pixel mean is 0\.\d{4}"):
            load_dataset("mnist", root=tmp_path / "root")
    # A partial copy skips the identity check (a subset's mean need not match).
    data = load_dataset("mnist", root=tmp_path / "root", verify_counts=False)
    assert int(data.train.images[0, 0, 0, 0]) == value


def test_identity_check_is_per_channel_for_cifar10(tmp_path, isolated, tiny_full_specs):
    write_cifar(tmp_path / "root", per_batch=2, n_test=3, pixel_means=(125, 123, 114))
    assert load_dataset("cifar10", root=tmp_path / "root").train.images.shape[0] == 10
    write_cifar(tmp_path / "root", per_batch=2, n_test=3, pixel_means=(125, 123, 150))
    with pytest.raises(DatasetCorruptError, match=r"\(0\.4902, 0\.4824, 0\.5882\)"):
        load_dataset("cifar10", root=tmp_path / "root")


def test_found_through_netprops_data_env(monkeypatch, isolated, tmp_path):
    written = write_idx_set(tmp_path / "env-dir", gz=True)
    monkeypatch.setenv("NETPROPS_DATA", str(tmp_path / "env-dir"))
    data = load_dataset("mnist", verify_counts=False)
    assert data.source == str(tmp_path / "env-dir")
    torch.testing.assert_close(data.test.labels, written["test_labels"].long())


def test_root_argument_is_searched_before_netprops_data(monkeypatch, isolated, tmp_path):
    write_idx_set(tmp_path / "env-dir", gz=True, seed=0)
    explicit = write_idx_set(tmp_path / "explicit", gz=False, seed=5)
    monkeypatch.setenv("NETPROPS_DATA", str(tmp_path / "env-dir"))
    data = load_dataset("mnist", root=tmp_path / "explicit", verify_counts=False)
    assert data.source == str(tmp_path / "explicit")
    torch.testing.assert_close(data.train.labels, explicit["train_labels"].long())


# ------------------------------------------------------------------ IDX files


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("layout", ["flat", "torchvision", "named"])
def test_idx_round_trip(tmp_path, isolated, device, name, gz, layout):
    torchvision_dir = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}[name]
    directory = {
        "flat": tmp_path / "root",
        "torchvision": tmp_path / "root" / torchvision_dir / "raw",
        "named": tmp_path / "root" / name,
    }[layout]
    written = write_idx_set(directory, gz=gz)
    data = load_dataset(name, root=tmp_path / "root", device=device, verify_counts=False)
    assert data.name == name
    expected_classes = FashionMNIST.classes if name == "fashion-mnist" else MNIST.classes
    assert len(data.classes) == len(expected_classes) == 10
    assert data.source == str(directory)
    for split in ("train", "test"):
        got: Split = getattr(data, split)
        assert got.images.device.type == torch.device(device).type
        torch.testing.assert_close(got.images[:, 0].cpu(), written[f"{split}_images"])
        torch.testing.assert_close(got.labels.cpu(), written[f"{split}_labels"].long())


def test_full_counts_are_verified_by_default(tmp_path, isolated):
    write_idx_set(tmp_path / "root", gz=False)
    with pytest.raises(DatasetCorruptError, match="60000"):
        load_dataset("fashion-mnist", root=tmp_path / "root")


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_truncated_file_is_corrupt(tmp_path, isolated, gz):
    root = tmp_path / "root"
    write_idx_set(root, gz=gz)
    victim = root / (IDX_STEMS["train_images"] + (".gz" if gz else ""))
    content = victim.read_bytes()
    victim.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetCorruptError, match=IDX_STEMS["train_images"]):
        load_dataset("mnist", root=root, verify_counts=False)


def test_bad_magic_is_corrupt(tmp_path, isolated):
    root = tmp_path / "root"
    write_idx_set(root, gz=False)
    victim = root / IDX_STEMS["test_labels"]
    content = bytearray(victim.read_bytes())
    content[2] = 0x0D  # float32 payload instead of uint8
    victim.write_bytes(bytes(content))
    with pytest.raises(DatasetCorruptError, match="magic"):
        load_dataset("mnist", root=root, verify_counts=False)


def test_label_out_of_range_is_corrupt(tmp_path, isolated):
    root = tmp_path / "root"
    write_idx_set(root, gz=False)
    labels = torch.tensor([0, 1, 2, 3, 12], dtype=torch.uint8)
    (root / IDX_STEMS["test_labels"]).write_bytes(idx_bytes(labels))
    with pytest.raises(DatasetCorruptError, match=r"labels outside \[0, 10\)"):
        load_dataset("mnist", root=root, verify_counts=False)


def test_image_label_count_mismatch_is_corrupt(tmp_path, isolated):
    root = tmp_path / "root"
    write_idx_set(root, gz=False)
    (root / IDX_STEMS["test_labels"]).write_bytes(idx_bytes(torch.zeros(4, dtype=torch.uint8)))
    with pytest.raises(DatasetCorruptError, match="5 images but 4 labels"):
        load_dataset("mnist", root=root, verify_counts=False)


def test_wrong_image_size_is_corrupt(tmp_path, isolated):
    root = tmp_path / "root"
    write_idx_set(root, gz=False)
    images, _ = random_split(5, 9, shape=(14, 14))
    (root / IDX_STEMS["test_images"]).write_bytes(idx_bytes(images))
    with pytest.raises(DatasetCorruptError, match="expected"):
        load_dataset("mnist", root=root, verify_counts=False)


# ------------------------------------------------------------- not found


def test_missing_dataset_lists_places_tried(tmp_path, isolated, monkeypatch):
    env_dir = tmp_path / "env-dir"
    monkeypatch.setenv("NETPROPS_DATA", str(env_dir))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path / "explicit")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for place in (
        tmp_path / "explicit",
        env_dir,
        tmp_path / "no-debian",
        tmp_path / "cache-home" / "netprops",
    ):
        assert str(place) in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "export NETPROPS_DATA=" in message
    assert "allow_download=False" in message


def test_missing_mnist_does_not_suggest_the_fashion_package(isolated):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist")
    assert "apt-get" not in str(info.value)
    assert "$NETPROPS_DATA is not set" in str(info.value)


def test_incomplete_directory_is_not_found(tmp_path, isolated):
    root = tmp_path / "root"
    write_idx_set(root, gz=True)
    (root / (IDX_STEMS["test_labels"] + ".gz")).unlink()
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(root))):
        load_dataset("mnist", root=root, verify_counts=False)


def test_download_skipped_when_offline(isolated, monkeypatch):
    monkeypatch.setattr(data_mod, "_online", lambda url: False)
    with pytest.raises(DatasetNotFoundError, match="download skipped"):
        load_dataset("mnist", allow_download=True)


def test_download_lands_in_cache(isolated, monkeypatch, tmp_path):
    """After a successful download the files are read from the cache's torchvision layout."""
    written = {}

    def fake_download(spec, root):
        written.update(write_idx_set(root / "MNIST" / "raw", gz=True))
        return None

    monkeypatch.setattr(data_mod, "_download", fake_download)
    data = load_dataset("mnist", allow_download=True, verify_counts=False)
    assert data.source == str(tmp_path / "cache-home" / "netprops" / "MNIST" / "raw")
    torch.testing.assert_close(data.train.labels, written["train_labels"].long())


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="fashion-mnist") as info:
        load_dataset("imagenet")
    for name in DATASET_NAMES:
        assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"device": "tpu"}, ValueError, "device"),
        ({"allow_download": "yes"}, TypeError, "allow_download"),
        ({"verify_counts": 1}, TypeError, "verify_counts"),
    ],
)
def test_load_dataset_validates_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset("mnist", **kwargs)


# ----------------------------------------------------------------- CIFAR-10


class _Py2StylePickler(pickle.Pickler):
    """Pickles arrays the way the official (Python 2, protocol 2) CIFAR-10 files hold them:
    ``numpy.core.multiarray._reconstruct`` with the pixels as a latin-1 ``str``."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            reconstruct = obj.__reduce__()[0]
            pixels = obj.tobytes().decode("latin1")
            return reconstruct, (np.ndarray, (0,), "b"), (1, obj.shape, obj.dtype, False, pixels)
        return NotImplemented


def cifar_pickle(obj, protocol: int | None = None, py2: bool = False) -> bytes:
    if not py2:
        return pickle.dumps(obj, protocol=protocol)
    buffer = io.BytesIO()
    _Py2StylePickler(buffer, protocol=2).dump(obj)
    raw = buffer.getvalue()
    for module in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
        raw = raw.replace(
            b"c" + module + b"\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n"
        )
    assert b"_reconstruct" not in raw or b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    return raw


def write_cifar(
    directory: Path,
    per_batch: int = 2,
    n_test: int = 3,
    seed: int = 0,
    protocol: int | None = None,
    py2: bool = False,
    pixel_means: tuple[int, int, int] | None = None,
):
    """Write the official cifar-10-batches-py format (pickled dicts, latin1-readable).

    ``pixel_means`` makes every pixel of channel c equal ``pixel_means[c]``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        if pixel_means is None:
            pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        else:
            pixels = np.repeat(np.array(pixel_means, dtype=np.uint8), 1024)[None].repeat(n, 0)
        entry = {
            "batch_label": f"{name} of 5",
            "labels": rng.integers(0, 10, n).tolist(),
            "data": pixels,
            "filenames": [f"img{i}.png" for i in range(n)],
        }
        (directory / name).write_bytes(cifar_pickle(entry, protocol, py2))
        batches[name] = entry
    meta = {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch}
    (directory / "batches.meta").write_bytes(cifar_pickle(meta, protocol, py2))
    return batches


CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_cifar10_reader(tmp_path, isolated, device, layout):
    root = tmp_path / "root"
    directory = root if layout == "flat" else root / "cifar-10-batches-py"
    batches = write_cifar(directory)
    data = load_dataset("cifar10", root=root, device=device, verify_counts=False)
    assert data.classes == CIFAR10_CLASSES
    assert data.train.images.shape == (10, 3, 32, 32)
    assert data.test.images.shape == (3, 3, 32, 32)
    train_rows = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    train_labels = [y for i in range(1, 6) for y in batches[f"data_batch_{i}"]["labels"]]
    # torchvision's CIFAR10 reshapes rows to (3, 32, 32) and transposes to HWC for PIL.
    expected_hwc = train_rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    got_hwc = data.train.images.permute(0, 2, 3, 1).cpu().numpy()
    np.testing.assert_array_equal(got_hwc, expected_hwc)
    assert data.train.labels.cpu().tolist() == train_labels
    assert data.test.labels.cpu().tolist() == batches["test_batch"]["labels"]
    assert data.train.mean == (0.4914, 0.4822, 0.4465)


def test_cifar10_meta_with_other_names_is_corrupt(tmp_path, isolated):
    write_cifar(tmp_path / "root")
    with (tmp_path / "root" / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": ["apple", "aquarium_fish"]}, f)
    with pytest.raises(DatasetCorruptError, match=r"batches\.meta"):
        load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)


def test_cifar10_bad_batch_is_corrupt(tmp_path, isolated):
    write_cifar(tmp_path / "root")
    with (tmp_path / "root" / "test_batch").open("wb") as f:
        pickle.dump({"data": np.zeros((3, 100), dtype=np.uint8), "labels": [0, 1, 2]}, f)
    with pytest.raises(DatasetCorruptError, match="test_batch"):
        load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)


def test_cifar10_truncated_pickle_is_corrupt(tmp_path, isolated):
    write_cifar(tmp_path / "root")
    victim = tmp_path / "root" / "data_batch_3"
    victim.write_bytes(victim.read_bytes()[:50])
    with pytest.raises(DatasetCorruptError, match="data_batch_3"):
        load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)


@pytest.mark.parametrize(
    ("protocol", "py2"),
    [(2, True), (0, False), (2, False), (4, False), (5, False)],
    ids=["official-py2", "p0", "p2", "p4", "p5"],
)
def test_cifar10_pickle_flavours_load(tmp_path, isolated, protocol, py2):
    """The official files (Python 2, numpy.core.multiarray) and Python 3 pickles at every
    protocol need only the globals the restricted unpickler allows."""
    batches = write_cifar(tmp_path / "root", protocol=protocol, py2=py2)
    data = load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)
    expected = batches["test_batch"]["data"].reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(data.test.images.numpy(), expected)
    assert data.test.labels.tolist() == batches["test_batch"]["labels"]


class _RunsCode:
    """What a malicious "batch" holds: pickle calls ``func(*args)`` when loading it."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("victim", ["data_batch_2", "batches.meta"])
@pytest.mark.parametrize("via", ["os.system", "builtins.exec", "nested"])
def test_cifar10_pickle_cannot_run_code(tmp_path, isolated, victim, via):
    write_cifar(tmp_path / "root")
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    payload = {
        "os.system": _RunsCode(os.system, command),
        "builtins.exec": _RunsCode(exec, f"open({str(marker)!r}, 'w').close()"),
        # inside an otherwise valid batch, where a naive reader would look only at the keys
        "nested": {
            "data": np.zeros((2, 3072), dtype=np.uint8),
            "labels": [0, 1],
            "batch_label": _RunsCode(os.system, command),
        },
    }[via]
    (tmp_path / "root" / victim).write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DatasetCorruptError, match=re.escape(victim)) as info:
        load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)
    assert "not allowed" in str(info.value)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert not marker.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x02]r\xff\xff\xff\x7f.",  # LONG_BINPUT 2**31 - 1: a 16 GiB memo
        b"(lp2147483647\n.",  # the same at protocol 0
        b"\x80\x02B\xff\xff\xff\x7fabc.",  # BINBYTES claiming 2 GiB
    ],
    ids=["long-binput", "put", "binbytes"],
)
def test_cifar10_pickle_with_huge_memo_or_length_is_rejected_up_front(tmp_path, isolated, raw):
    """One damaged byte can turn a memo index or length prefix into billions; the C
    unpickler would allocate (and zero-fill) that much before failing."""
    write_cifar(tmp_path / "root")
    (tmp_path / "root" / "batches.meta").write_bytes(raw)
    with pytest.raises(DatasetCorruptError, match=r"batches\.meta"):
        load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)


@pytest.mark.parametrize(
    "meta",
    [
        {"label_names": 5},
        {"label_names": None},
        {"label_names": "airplane"},
        {"label_names": list(range(10))},
        {"label_names": list(CIFAR10_CLASSES[:9])},
        {"label_names": [*CIFAR10_CLASSES, "extra"]},
        {"num_cases_per_batch": 2},
        ["label_names"],
        5,
    ],
    ids=["int", "none", "str", "ints", "nine", "eleven", "missing", "list", "bare-int"],
)
def test_cifar10_meta_with_wrong_types_is_corrupt(tmp_path, isolated, meta):
    write_cifar(tmp_path / "root")
    (tmp_path / "root" / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(DatasetCorruptError, match=r"batches\.meta"):
        load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)


_GOOD_ROWS = np.zeros((3, 3072), dtype=np.uint8)


@pytest.mark.parametrize(
    "entry",
    [
        {"data": 5, "labels": [0, 1, 2]},
        {"data": _GOOD_ROWS.tolist(), "labels": [0, 1, 2]},
        {"data": _GOOD_ROWS.astype(np.float32), "labels": [0, 1, 2]},
        {"data": _GOOD_ROWS.astype(np.int64), "labels": [0, 1, 2]},
        {"data": _GOOD_ROWS.reshape(3, 3, 32, 32), "labels": [0, 1, 2]},
        {"data": _GOOD_ROWS, "labels": 5},
        {"data": _GOOD_ROWS, "labels": "012"},
        {"data": _GOOD_ROWS, "labels": ["a", "b", "c"]},
        {"data": _GOOD_ROWS, "labels": [0.0, 1.0, 2.0]},
        {"data": _GOOD_ROWS, "labels": [0, 1, 10]},
        {"data": _GOOD_ROWS, "labels": [0, 1, -1]},
        {"data": _GOOD_ROWS, "labels": [0, 1, 2**80]},
        {"data": _GOOD_ROWS, "labels": [0, 1]},
        {"data": _GOOD_ROWS, "labels": [[0], [1], [2]]},
        {"data": _GOOD_ROWS, "labels": {0: 1}},
        {"data": _GOOD_ROWS},
        {b"data": _GOOD_ROWS, b"labels": [0, 1, 2]},
        [_GOOD_ROWS, [0, 1, 2]],
        None,
    ],
)
def test_cifar10_batch_with_wrong_types_is_corrupt(tmp_path, isolated, entry):
    write_cifar(tmp_path / "root")
    (tmp_path / "root" / "test_batch").write_bytes(pickle.dumps(entry))
    with pytest.raises(DatasetCorruptError, match="test_batch"):
        load_dataset("cifar10", root=tmp_path / "root", verify_counts=False)


@pytest.mark.parametrize(("protocol", "py2"), [(2, True), (4, False)], ids=["py2", "p4"])
def test_cifar10_random_corruptions_only_raise_dataset_corrupt_error(
    tmp_path, isolated, protocol, py2
):
    """Seeded random byte damage to a batch: either a clear DatasetCorruptError naming
    the file, or (harmless damage, e.g. to a pixel) a valid dataset."""
    root = tmp_path / "root"
    batches = write_cifar(root, protocol=protocol, py2=py2)
    victim = root / "data_batch_2"
    original = victim.read_bytes()
    pixels = batches["data_batch_2"]["data"].tobytes()
    if py2:  # stored as latin-1 text: find it by its encoded form
        pixels = pixels.decode("latin1").encode("utf-8")
    start = original.index(pixels)
    structure = [i for i in range(len(original)) if not start <= i < start + len(pixels)]
    outcomes = {"corrupt": 0, "loaded": 0}
    for seed in range(60):
        rng = np.random.default_rng(seed)
        damaged = bytearray(original)
        for _ in range(int(rng.integers(1, 4))):
            # mostly hit the pickle's structure (opcodes, lengths, names), not the pixels
            where = (
                int(rng.choice(structure))
                if rng.random() < 0.9
                else int(rng.integers(len(original)))
            )
            damaged[where] = (damaged[where] + int(rng.integers(1, 256))) % 256
        if rng.random() < 0.2:
            damaged = damaged[: int(rng.integers(len(damaged)))]
        victim.write_bytes(bytes(damaged))
        try:
            data = load_dataset("cifar10", root=root, verify_counts=False)
        except DatasetCorruptError as exc:
            error = str(exc)
        else:
            error = None
        if error is not None:
            assert "data_batch_2" in error, (seed, error)
            outcomes["corrupt"] += 1
            continue
        outcomes["loaded"] += 1
        assert data.train.images.dtype == torch.uint8
        assert data.train.images.shape[1:] == (3, 32, 32)
        assert len(data.train) == len(data.train.labels)
        assert 0 <= int(data.train.labels.min()) <= int(data.train.labels.max()) < 10
    assert outcomes["corrupt"] >= 30, outcomes


# -------------------------------------------------------------- Split / Data


def test_float_view_is_normalized_and_cached(device):
    data = synthetic_dataset(n_train=40, n_test=8, image_shape=(3, 5, 4), seed=1, device=device)
    split = data.train
    mean = torch.tensor(split.mean, dtype=torch.float64, device=device).view(1, 3, 1, 1)
    std = torch.tensor(split.std, dtype=torch.float64, device=device).view(1, 3, 1, 1)
    reference = (split.images.double() / 255 - mean) / std
    torch.testing.assert_close(split.float(torch.float64), reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split.float(), reference.float())
    assert split.float() is split.float()
    assert split.float().dtype == torch.float32
    assert split.float(torch.float64).dtype == torch.float64


def test_float_rejects_integer_dtype(device):
    split = synthetic_dataset(n_train=4, n_test=2, device=device).train
    with pytest.raises(ValueError, match="floating-point"):
        split.float(torch.int32)


def test_subset_keeps_images_and_labels_aligned(device):
    data = synthetic_dataset(n_train=64, n_test=4, image_shape=(1, 6, 6), seed=2, device=device)
    full = data.train
    sub = full.subset(20, seed=7)
    flat_full = full.images.flatten(1)
    for image, label in zip(sub.images.flatten(1), sub.labels, strict=True):
        matches = (flat_full == image).all(dim=1).nonzero().flatten()
        assert matches.numel() >= 1
        assert label in full.labels[matches]
    assert sub.labels.unique().numel() > 1


def test_subset_is_device_independent(device):
    data = synthetic_dataset(n_train=50, n_test=4, seed=3)
    on_cpu = data.train.subset(10, seed=5)
    on_device = data.train.to(device).subset(10, seed=5)
    assert torch.equal(on_cpu.labels, on_device.labels.cpu())


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (51, ValueError), (2.5, TypeError)])
def test_subset_validates_n(n, error):
    split = synthetic_dataset(n_train=50, n_test=4).train
    with pytest.raises(error, match="n must be"):
        split.subset(n, seed=0)


def test_to_same_device_returns_self(device):
    data = synthetic_dataset(n_train=8, n_test=4, device=device)
    assert data.to(device) is data
    assert data.train.to(device) is data.train
    moved = data.to("cpu")
    assert moved.train.images.device.type == "cpu"
    assert torch.equal(moved.train.images, data.train.images.cpu())


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long), "uint8"),
        (torch.zeros(3, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), "uint8"),
        (torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.int32), "int64"),
        (torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), "length"),
    ],
)
def test_split_validates_tensors(images, labels, match):
    with pytest.raises(ValueError, match=match):
        Split(images, labels, (0.5,), (0.5,))


def test_split_validates_channel_statistics():
    with pytest.raises(ValueError, match="one entry per channel"):
        Split(
            torch.zeros(3, 2, 2, 2, dtype=torch.uint8),
            torch.zeros(3, dtype=torch.long),
            (0.5,),
            (0.5,),
        )


def test_repr_and_str_are_short(device):
    data = synthetic_dataset(n_train=8, n_test=4, device=device)
    assert "synthetic" in str(data)
    assert "8 train" in str(data)
    assert len(repr(data)) < 300


# ----------------------------------------------------------------- synthetic


def test_synthetic_dataset_shapes_and_name(device):
    data = synthetic_dataset(
        n_train=30, n_test=7, image_shape=(3, 4, 5), num_classes=4, seed=9, device=device
    )
    assert data.name == "synthetic-4c-3x4x5-seed9"
    assert data.name.startswith("synthetic-")
    assert data.source == "synthetic"
    assert data.classes == ("class0", "class1", "class2", "class3")
    assert data.train.images.shape == (30, 3, 4, 5)
    assert data.test.images.shape == (7, 3, 4, 5)
    assert data.train.images.dtype == torch.uint8
    assert data.train.labels.dtype == torch.int64
    assert int(data.train.labels.max()) < 4
    x = data.train.float().double()
    assert abs(float(x.mean())) < 1e-6


def test_synthetic_dataset_is_deterministic_and_device_independent(device):
    a = synthetic_dataset(n_train=20, n_test=5, seed=4)
    b = synthetic_dataset(n_train=20, n_test=5, seed=4, device=device)
    c = synthetic_dataset(n_train=20, n_test=5, seed=5)
    assert torch.equal(a.train.images, b.train.images.cpu())
    assert torch.equal(a.test.labels, b.test.labels.cpu())
    assert not torch.equal(a.train.images, c.train.images)


def test_synthetic_classes_are_separable(device):
    """Nearest class-mean on the training set classifies the test set far above chance."""
    data = synthetic_dataset(n_train=500, n_test=200, seed=0, device=device)
    x, y = data.train.float().flatten(1), data.train.labels
    means = torch.stack([x[y == k].mean(0) for k in range(10)])
    predicted = torch.cdist(data.test.float().flatten(1), means).argmin(1)
    accuracy = (predicted == data.test.labels).double().mean().item()
    assert accuracy > 0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_train": 0}, ValueError, "n_train"),
        ({"n_test": -1}, ValueError, "n_test"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"image_shape": (28, 28)}, ValueError, "image_shape"),
        ({"image_shape": (1, 0, 28)}, ValueError, "image_shape"),
        ({"image_shape": "1x28x28"}, TypeError, "image_shape"),
        ({"seed": -1}, ValueError, "seed"),
        ({"noise": 1.0}, ValueError, "noise"),
        ({"device": "tpu"}, ValueError, "device"),
    ],
)
def test_synthetic_dataset_validates_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        synthetic_dataset(**kwargs)
