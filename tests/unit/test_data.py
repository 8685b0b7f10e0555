"""netprops.data: loading real and synthetic datasets as device-resident tensors."""

from __future__ import annotations

import gzip
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


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: a second OpenMP thread only adds barriers, which on a busy shared
    machine (a descheduled thread) turn microseconds into tens of milliseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def write_cifar(directory: Path, per_batch: int = 2, n_test: int = 3, seed: int = 0):
    """Write the official cifar-10-batches-py format (pickled dicts, latin1-readable)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        entry = {
            "batch_label": f"{name} of 5",
            "labels": rng.integers(0, 10, n).tolist(),
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "filenames": [f"img{i}.png" for i in range(n)],
        }
        with (directory / name).open("wb") as f:
            pickle.dump(entry, f)
        batches[name] = entry
    with (directory / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch}, f)
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
