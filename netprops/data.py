"""Image-classification datasets held as device-resident uint8 tensors.

A :class:`Data` holds a ``train`` and a ``test`` :class:`Split`; each split
keeps its images as ``uint8`` tensors of shape ``(N, C, H, W)`` and its labels
as ``int64`` tensors of shape ``(N,)`` on the target device, and hands out a
normalized float view on demand. No DataLoader, no PIL: training code indexes
these tensors directly (see :mod:`netprops.train`).

Real data (:func:`load_dataset`) is read from the files torchvision uses
(IDX files for MNIST / Fashion-MNIST, parsed with torchvision's own readers;
the ``cifar-10-batches-py`` pickles for CIFAR-10) and verified before use:
a truncated or inconsistent file raises :class:`DatasetCorruptError`, missing
files raise :class:`DatasetNotFoundError` listing every place that was tried.
A full copy (``verify_counts=True``) is also checked to *be* the dataset asked
for: MNIST and Fashion-MNIST use the same file names, so the mean training
pixel must match the dataset's known mean (one pass over the uint8 images).
CIFAR-10 pickles are read with an unpickler that resolves only numpy's array
reconstruction, so a crafted file cannot run code.

Where :func:`load_dataset` looks, in order:

1. the ``root`` argument;
2. the directory in ``$NETPROPS_DATA``;
3. ``/usr/share/datasets/fashion-mnist`` (Debian package
   ``dataset-fashion-mnist``; Fashion-MNIST only);
4. the cache directory ``$XDG_CACHE_HOME/netprops`` (``~/.cache/netprops``),
   downloading into it with torchvision when ``allow_download=True`` and the
   download host answers within a few seconds. The library default is
   ``allow_download=False`` (no network access unless asked for); the CLI
   passes ``True``.

In each directory three layouts are accepted: the files directly in it,
in a ``<name>/`` subdirectory (``fashion-mnist/``, ``mnist/``, ``cifar10/``),
or torchvision's layout (``FashionMNIST/raw/``, ``MNIST/raw/``,
``cifar-10-batches-py/``). IDX files may be gzipped or not.

:func:`synthetic_dataset` builds a small learnable problem for offline tests;
its name starts with ``synthetic-`` so it is never mistaken for real data.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import pickle
import pickletools
import socket
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from .devices import resolve_device
from .errors import check_choice, check_int, check_positive_int, check_probability, check_type
from .seeding import derive_seed, make_generator

__all__ = [
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST",
    "Data",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "Split",
    "default_cache_dir",
    "load_dataset",
    "synthetic_dataset",
]

log = logging.getLogger(__name__)

DATASET_NAMES = ("fashion-mnist", "mnist", "cifar10")

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_DOWNLOAD_PROBE_TIMEOUT_S = 3.0

#: How far (in [0, 1] pixel units, per channel) a full copy's training-pixel
#: mean may be from its spec's ``mean`` before the files are rejected as another
#: dataset's. The train and test sets of one dataset differ by <= 0.004
#: (Fashion-MNIST 0.2860 / 0.2868, MNIST 0.1307 / 0.1325, CIFAR-10
#: (0.4914, 0.4822, 0.4465) / (0.4942, 0.4851, 0.4504)), while MNIST and
#: Fashion-MNIST, which share file names, differ by 0.155.
_IDENTITY_TOLERANCE = 0.02


class DatasetNotFoundError(FileNotFoundError):
    """No complete copy of the dataset was found; the message lists where we looked."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but is truncated or inconsistent; the message names the file."""


@dataclass(frozen=True)
class _Spec:
    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_shape: tuple[int, int, int]
    n_train: int
    n_test: int
    torchvision_dir: str  # sub-directory of a torchvision root holding the files


_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)
_CIFAR_META = "batches.meta"

# Per-channel mean/std of the training images scaled to [0, 1] (the values
# torchvision tutorials use; CIFAR-10's std is the per-pixel one).
_SPECS = {
    "fashion-mnist": _Spec(
        "fashion-mnist",
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        (0.2860,),
        (0.3530,),
        (1, 28, 28),
        60000,
        10000,
        "FashionMNIST/raw",
    ),
    "mnist": _Spec(
        "mnist",
        tuple(str(i) for i in range(10)),
        (0.1307,),
        (0.3081,),
        (1, 28, 28),
        60000,
        10000,
        "MNIST/raw",
    ),
    "cifar10": _Spec(
        "cifar10",
        (
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
        ),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        (3, 32, 32),
        50000,
        10000,
        "cifar-10-batches-py",
    ),
}


#: At most this many subsets (distinct ``(n, seed)``) are kept per split by
#: :meth:`Split.subset`; the oldest is dropped first.
_SUBSET_CACHE_SIZE = 4


@dataclass(frozen=True, eq=False, repr=False)
class Split:
    """One split of a dataset, resident on one device.

    Attributes
    ----------
    images : torch.Tensor
        ``uint8``, shape ``(N, C, H, W)``.
    labels : torch.Tensor
        ``int64``, shape ``(N,)``, values in ``[0, num_classes)``.
    mean, std : tuple of float
        Per-channel statistics of the dataset's training images in ``[0, 1]``
        units, used by :meth:`float`.

    Derived tensors are cached on the split, so repeated training runs on one
    dataset pay for them once: :meth:`float` per dtype (4 bytes per pixel for
    float32), :meth:`subset` for the last few ``(n, seed)`` and :meth:`to` per
    device. A cached value is rebuilt when the tensors it came from (or the
    float tensor itself) were modified in place since, which the tensors'
    version counters tell; the memory is freed with the split.
    """

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _float_cache: dict[torch.dtype, tuple[torch.Tensor, tuple[int, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _derived_cache: dict[Any, tuple[Split, tuple[int, int], tuple[int, int]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        check_type("images", self.images, torch.Tensor)
        check_type("labels", self.labels, torch.Tensor)
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, C, H, W), "
                f"got {self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(
                f"labels must be an int64 tensor of shape (N,), "
                f"got {self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"images and labels must have the same length, "
                f"got {self.images.shape[0]} images and {self.labels.shape[0]} labels"
            )
        if self.images.device != self.labels.device:
            raise ValueError(
                f"images and labels must be on one device, "
                f"got {self.images.device} and {self.labels.device}"
            )
        channels = self.images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"mean and std must have one entry per channel ({channels}), "
                f"got mean={self.mean!r}, std={self.std!r}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"Split(images={tuple(self.images.shape)} {self.images.dtype}, "
            f"labels={tuple(self.labels.shape)}, device={self.device})"
        )

    @property
    def device(self) -> torch.device:
        """The device holding the tensors."""
        return self.images.device

    def _versions(self) -> tuple[int, int]:
        # In-place writes bump a tensor's version counter: a cache entry stamped
        # with other versions was derived from other values.
        return (self.images._version, self.labels._version)

    def float(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Return the normalized images ``(x / 255 - mean) / std``, shape ``(N, C, H, W)``.

        Computed once per dtype and cached, on the split's device. The tensor
        is shared by every caller: treat it as read-only (a copy that was
        modified in place is detected and recomputed at the next call, but
        other holders see the change).
        """
        check_type("dtype", dtype, torch.dtype)
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        entry = self._float_cache.get(dtype)
        if entry is not None and entry[1] == (*self._versions(), entry[0]._version):
            return entry[0]
        shape = (1, -1, 1, 1)
        # Normalize in float32 (or float64) and cast once, so low-precision
        # views are rounded only at the end. In place on one fresh buffer: the
        # same operations as out of place (identical values), a third of the
        # memory traffic and page faults.
        work = torch.float64 if dtype == torch.float64 else torch.float32
        mean = torch.tensor(self.mean, dtype=work, device=self.device).view(shape)
        std = torch.tensor(self.std, dtype=work, device=self.device).view(shape)
        converted = self.images.to(work).div_(255.0).sub_(mean).div_(std).to(dtype)
        self._float_cache[dtype] = (converted, (*self._versions(), converted._version))
        return converted

    def subset(self, n: int, seed: int = 0) -> Split:
        """Return ``n`` examples drawn without replacement (a seeded permutation).

        The permutation is drawn on the CPU, so a given ``(n, seed)`` selects
        the same examples on every device. Not stratified. The last few
        subsets are cached (the same ``Split`` object, with its float cache,
        is returned for the same ``(n, seed)``).

        Raises
        ------
        ValueError
            if ``n`` is not in ``[1, len(self)]``.
        """
        n = check_positive_int("n", n)
        if n > len(self):
            raise ValueError(f"n must be an int in [1, {len(self)}] (the split's size), got {n}")
        seed = check_int("seed", seed, min_value=0)

        def draw() -> Split:
            generator = make_generator(seed)
            index = torch.randperm(len(self), generator=generator)[:n].to(self.device)
            return Split(
                self.images.index_select(0, index),
                self.labels.index_select(0, index),
                self.mean,
                self.std,
            )

        return self._derived(("subset", n, seed), draw)

    def to(self, device: str | torch.device) -> Split:
        """Return this split on ``device`` (``self`` when it is already there).

        The copy is cached per device, so moving the same split again is free.
        """
        dev = resolve_device(device)
        if _same_device(self.device, dev):
            return self
        return self._derived(
            ("to", str(dev)),
            lambda: Split(self.images.to(dev), self.labels.to(dev), self.mean, self.std),
        )

    def _derived(self, key: tuple[Any, ...], build: Callable[[], Split]) -> Split:
        """The cached split for ``key`` if still current, else ``build()`` (and cache it)."""
        cache = self._derived_cache
        entry = cache.get(key)
        stamp = self._versions()
        if entry is not None and entry[1] == stamp and entry[0]._versions() == entry[2]:
            return entry[0]
        derived = build()
        if key[0] == "subset":
            subsets = [k for k in cache if k[0] == "subset" and k != key]
            for old in subsets[: max(0, len(subsets) - _SUBSET_CACHE_SIZE + 1)]:
                del cache[old]
        cache[key] = (derived, stamp, derived._versions())
        return derived


@dataclass(frozen=True, eq=False, repr=False)
class Data:
    """A dataset: its name, class names and the train/test splits.

    Attributes
    ----------
    name : str
        ``"fashion-mnist"``, ``"mnist"``, ``"cifar10"`` or ``"synthetic-..."``.
    classes : tuple of str
        Class names; label ``k`` is ``classes[k]``.
    train, test : Split
    source : str
        Where the data came from (a directory, or ``"synthetic"``).
    """

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.train.device

    def to(self, device: str | torch.device) -> Data:
        """Return the dataset on ``device`` (``self`` when it is already there)."""
        train, test = self.train.to(device), self.test.to(device)
        if train is self.train and test is self.test:
            return self
        return Data(self.name, self.classes, train, test, self.source)

    def __repr__(self) -> str:
        return f"Data(name={self.name!r}, train={self.train!r}, test={self.test!r})"

    def __str__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"{self.name}: {len(self.train)} train / {len(self.test)} test images "
            f"{c}x{h}x{w}, {self.num_classes} classes, on {self.device}"
            + (f" (from {self.source})" if self.source else "")
        )


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        index_a = a.index if a.index is not None else torch.cuda.current_device()
        index_b = b.index if b.index is not None else torch.cuda.current_device()
        return index_a == index_b
    return True


# --------------------------------------------------------------------- locations


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/netprops``, or ``~/.cache/netprops``: where downloads go."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "netprops"


def _candidate_dirs(spec: _Spec, directory: Path) -> list[Path]:
    """Directories under ``directory`` that may hold the dataset's files, in order."""
    return [directory, directory / spec.name, directory / spec.torchvision_dir]


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        path = directory / name
        if path.is_file():
            return path
    return None


def _complete_files(spec: _Spec, directory: Path) -> dict[str, Path] | None:
    """The dataset's files in ``directory`` if all are there, else None."""
    if spec.name == "cifar10":
        wanted = {name: name for name in (*_CIFAR_TRAIN, *_CIFAR_TEST)}
        found = {k: directory / v for k, v in wanted.items() if (directory / v).is_file()}
        if len(found) != len(wanted):
            return None
        meta = directory / _CIFAR_META
        if meta.is_file():
            found[_CIFAR_META] = meta
        return found
    found_idx = {key: _find_file(directory, stem) for key, stem in _MNIST_FILES.items()}
    if any(path is None for path in found_idx.values()):
        return None
    return found_idx  # type: ignore[return-value]


def _fix_command(spec: _Spec) -> str:
    lines = []
    if spec.name == "fashion-mnist":
        lines.append("  sudo apt-get install dataset-fashion-mnist")
    files = (
        "cifar-10-batches-py/ (data_batch_1..5, test_batch)"
        if spec.name == "cifar10"
        else ", ".join(f"{stem}[.gz]" for stem in _MNIST_FILES.values())
    )
    lines.append(f"  export NETPROPS_DATA=/path/to/dir   # a directory holding {files}")
    lines.append(
        f"  or let torchvision download it: load_dataset({spec.name!r}, allow_download=True) "
        f"(the default of `netprops study` and `netprops bench train`; `netprops baselines` "
        f"never downloads) on a machine with internet access"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------ readers


def _idx_header(data: bytes, path: Path, ndim: int) -> tuple[int, ...]:
    """Validate an IDX header (uint8 payload, ``ndim`` dims, complete payload); return dims."""
    if len(data) < 4 + 4 * ndim:
        raise DatasetCorruptError(f"{path}: file too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != ndim:
        raise DatasetCorruptError(
            f"{path}: bad IDX magic number {data[:4].hex()} "
            f"(expected 000008{ndim:02x}: uint8 payload with {ndim} dimension(s))"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + math.prod(dims)
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetCorruptError(
            f"{path}: file {kind}: header declares shape {dims} ({expected} bytes), "
            f"file holds {len(data)} bytes"
        )
    return dims


def _read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Read an IDX file (gzipped or not) with torchvision's reader, after validating it."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetCorruptError(f"{path}: cannot read/decompress: {exc}") from exc
    _idx_header(data, path, ndim)
    reader = read_image_file if ndim == 3 else read_label_file
    try:
        if path.suffix == ".gz":
            # torchvision's reader opens a path; give it the decompressed bytes.
            with tempfile.TemporaryDirectory(prefix="netprops-idx-") as tmp:
                plain = Path(tmp) / path.stem
                plain.write_bytes(data)
                tensor = reader(str(plain))
        else:
            tensor = reader(str(path))
    except (AssertionError, ValueError, TypeError, RuntimeError) as exc:
        raise DatasetCorruptError(f"{path}: torchvision could not parse it: {exc}") from exc
    return tensor.clone()  # own the memory (the reader's tensor views a bytearray)


def _check_split(
    spec: _Spec,
    images: torch.Tensor,
    labels: torch.Tensor,
    expected_n: int,
    names: str,
    verify_counts: bool,
    num_classes: int,
) -> None:
    if tuple(images.shape[1:]) != spec.image_shape:
        raise DatasetCorruptError(
            f"{names}: images have shape {tuple(images.shape[1:])}, "
            f"expected {spec.image_shape} for {spec.name}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DatasetCorruptError(f"{names}: {images.shape[0]} images but {labels.shape[0]} labels")
    if verify_counts and images.shape[0] != expected_n:
        raise DatasetCorruptError(
            f"{names}: {images.shape[0]} examples, the full {spec.name} split has {expected_n} "
            f"(pass verify_counts=False to load a partial copy on purpose)"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DatasetCorruptError(
            f"{names}: labels outside [0, {num_classes}): "
            f"min {int(labels.min())}, max {int(labels.max())}"
        )


def _load_idx_dataset(spec: _Spec, files: dict[str, Path], verify_counts: bool):
    splits = {}
    for split, expected_n in (("train", spec.n_train), ("test", spec.n_test)):
        img_path, lab_path = files[f"{split}_images"], files[f"{split}_labels"]
        images = _read_idx(img_path, 3).unsqueeze(1)
        labels = _read_idx(lab_path, 1)
        _check_split(
            spec,
            images,
            labels,
            expected_n,
            f"{img_path} / {lab_path}",
            verify_counts,
            len(spec.classes),
        )
        splits[split] = (images, labels)
    return splits, spec.classes


class _Latin1Encode:
    """``_codecs.encode`` restricted to latin-1 text: how Python 3 pickles ``bytes``
    at protocol 0-2. Stateless, with no ``__dict__`` or slots, so a pickle's
    BUILD opcode cannot alter it."""

    __slots__ = ()

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(
                f"_codecs.encode is allowed only for latin-1 text, got encoding {encoding!r}"
            )
        return text.encode("latin1")


class _FromBuffer:
    """numpy's ``_frombuffer`` (arrays pickled at protocol 5), as a stateless callable."""

    __slots__ = ()

    def __call__(self, buf: Any, dtype: Any, shape: Any, order: Any) -> Any:
        import numpy as np

        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError(f"_frombuffer needs a plain numpy dtype, got {dtype!r}")
        return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _cifar_pickle_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR-10 pickle may name: numpy's array reconstruction.

    The official ``cifar-10-batches-py`` files (Python 2, protocol 2) name
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and
    ``numpy.dtype``; files written by Python 3 name ``numpy._core.multiarray``
    (numpy >= 2), ``_codecs.encode`` (bytes at protocol <= 2) or
    ``numpy._core.numeric._frombuffer`` (protocol 5). Each maps to the object
    *this* numpy uses, without importing the module the file names.
    """
    import numpy as np

    reconstruct = np.zeros(1, dtype=np.uint8).__reduce__()[0]
    from_buffer = _FromBuffer()
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.numeric", "_frombuffer"): from_buffer,
        ("numpy._core.numeric", "_frombuffer"): from_buffer,
        ("_codecs", "encode"): _Latin1Encode(),
    }


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :func:`_cifar_pickle_globals`.

    ``pickle.load`` imports and calls whatever global a file names, so a
    crafted "batch" could run code; this one raises ``UnpicklingError``
    instead, before anything is imported.
    """

    def __init__(self, file: Any) -> None:
        super().__init__(file, encoding="latin1")  # torchvision's CIFAR10 reader does the same
        self._allowed = _cifar_pickle_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR-10 pickle "
                f"(only numpy array reconstruction is)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a CIFAR-10 pickle")


_MEMO_PUT_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_pickle_opcodes(raw: bytes) -> None:
    """Walk the opcodes (no objects built) and reject what the C unpickler would turn
    into a huge allocation: every length prefix must fit in the file (``genops``
    checks), and a memo index must be below the opcode count (real picklers number
    memo entries 0, 1, 2, ...). One damaged byte can otherwise turn ``BINPUT 3``
    into ``LONG_BINPUT 1449200179`` and make the unpickler zero-fill an 11 GB memo.
    """
    count = 0
    top = -1
    for opcode, arg, _ in pickletools.genops(raw):
        count += 1
        if opcode.name in _MEMO_PUT_OPCODES:
            top = max(top, arg)
    if top >= count:
        raise pickle.UnpicklingError(f"memo index {top} out of range for {count} opcodes")


def _unpickle(path: Path) -> Any:
    """Unpickle a CIFAR-10 file with :class:`_CifarUnpickler`.

    Raises only :class:`DatasetCorruptError` (naming ``path``): a damaged
    pickle can fail in many ways (EOFError, UnpicklingError, ValueError,
    TypeError, KeyError, MemoryError, OverflowError, UnicodeDecodeError ...).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetCorruptError(f"{path}: cannot read: {exc}") from exc
    try:
        _check_pickle_opcodes(raw)
        return _CifarUnpickler(io.BytesIO(raw)).load()
    except Exception as exc:  # any failure of a damaged or foreign pickle
        raise DatasetCorruptError(
            f"{path}: cannot unpickle a CIFAR-10 file: {type(exc).__name__}: {exc}"
        ) from exc


def _validate_cifar_batch(path: Path, entry: Any) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np

    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise DatasetCorruptError(f"{path}: not a CIFAR-10 batch (needs 'data' and 'labels' keys)")
    data, labels = entry["data"], entry["labels"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * 32 * 32
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetCorruptError(f"{path}: 'data' must be a uint8 array (n, 3072), got {got}")
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise DatasetCorruptError(f"{path}: 'labels' must be a list, got {type(labels).__name__}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or labels.dtype.kind not in "iu":
        raise DatasetCorruptError(
            f"{path}: 'labels' must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetCorruptError(
            f"{path}: labels outside [0, 10): min {labels.min()}, max {labels.max()}"
        )
    # Each row is 1024 red, 1024 green, 1024 blue values in row-major order: CHW.
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels.astype(np.int64))


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one ``data_batch_*``/``test_batch`` file; any defect is a DatasetCorruptError."""
    entry = _unpickle(path)
    try:
        return _validate_cifar_batch(path, entry)
    except DatasetCorruptError:
        raise
    except Exception as exc:  # a damaged object can fail any check in its own way
        raise DatasetCorruptError(
            f"{path}: not a valid CIFAR-10 batch: {type(exc).__name__}: {exc}"
        ) from exc


def _check_cifar_meta(spec: _Spec, path: Path) -> None:
    meta = _unpickle(path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    valid = (
        isinstance(names, (list, tuple))
        and all(isinstance(n, str) for n in names)
        and tuple(names) == spec.classes
    )
    if not valid:
        shown = repr(names)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        raise DatasetCorruptError(
            f"{path}: label_names must be CIFAR-10's 10 class names {spec.classes}, got {shown}"
        )


def _load_cifar(spec: _Spec, files: dict[str, Path], verify_counts: bool):
    classes = spec.classes
    if _CIFAR_META in files:
        _check_cifar_meta(spec, files[_CIFAR_META])
    splits = {}
    for split, batches, expected_n in (
        ("train", _CIFAR_TRAIN, spec.n_train),
        ("test", _CIFAR_TEST, spec.n_test),
    ):
        parts = [_read_cifar_batch(files[b]) for b in batches]
        images = torch.cat([p[0] for p in parts])
        labels = torch.cat([p[1] for p in parts])
        where = f"{files[batches[0]].parent}/{{{','.join(batches)}}}"
        _check_split(spec, images, labels, expected_n, where, verify_counts, len(classes))
        splits[split] = (images, labels)
    return splits, classes


def _check_identity(spec: _Spec, directory: Path, train_images: torch.Tensor) -> None:
    """Raise DatasetCorruptError unless the training images' per-channel mean is ``spec.mean``.

    MNIST and Fashion-MNIST share file names and format, so only the contents
    tell them apart. One pass over the uint8 images (numpy's buffered
    reduction, no float copy): ~0.02 s for MNIST, ~0.07 s for CIFAR-10.
    """
    import numpy as np

    array = train_images.numpy()
    n, channels = array.shape[:2]
    sums = np.add.reduce(array.reshape(n, channels, -1), axis=(0, 2), dtype=np.uint64)
    per_channel = array.size // channels
    measured = tuple(float(total) / per_channel / 255.0 for total in sums)

    def close(mean: tuple[float, ...]) -> bool:
        return len(mean) == len(measured) and all(
            abs(m - e) <= _IDENTITY_TOLERANCE for m, e in zip(measured, mean, strict=True)
        )

    if close(spec.mean):
        return
    lookalikes = [
        other.name
        for other in _SPECS.values()
        if other is not spec and other.image_shape == spec.image_shape and close(other.mean)
    ]
    cause = (
        f"these look like another dataset's files ({' or '.join(lookalikes)}: mean "
        f"{_fmt_mean(_SPECS[lookalikes[0]].mean)})"
        if lookalikes
        else "these look like another dataset's files (or modified/corrupt images)"
    )

    raise DatasetCorruptError(
        f"{directory}: these files are not {spec.name}: their training-pixel mean is "
        f"{_fmt_mean(measured)}, {spec.name}'s is {_fmt_mean(spec.mean)} "
        f"(tolerance ±{_IDENTITY_TOLERANCE}). Likely cause: {cause}. "
        f"MNIST and Fashion-MNIST use the same file names; point root= or $NETPROPS_DATA "
        f"at a copy of {spec.name}."
    )


def _fmt_mean(mean: tuple[float, ...]) -> str:
    return f"{mean[0]:.4f}" if len(mean) == 1 else "(" + ", ".join(f"{m:.4f}" for m in mean) + ")"


# ---------------------------------------------------------------------- download


def _online(url: str) -> bool:
    """True when ``url``'s host accepts a TCP connection within a few seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=_DOWNLOAD_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _download(spec: _Spec, root: Path) -> str | None:
    """Download with torchvision into ``root``; return None on success, else why not."""
    from torchvision import datasets

    cls = {"fashion-mnist": datasets.FashionMNIST, "mnist": datasets.MNIST}.get(spec.name)
    url = cls.mirrors[0] if cls is not None else datasets.CIFAR10.url
    if not _online(url):
        return f"download skipped: {urlparse(url).hostname} unreachable (offline?)"
    try:
        if cls is not None:
            cls(str(root), train=True, download=True)
        else:
            datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError...
        return f"download failed: {type(exc).__name__}: {exc}"
    return None


# ----------------------------------------------------------------------- public


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    allow_download: bool = False,
    verify_counts: bool = True,
) -> Data:
    """Load a real dataset as device-resident uint8 tensors.

    Parameters
    ----------
    name : {"fashion-mnist", "mnist", "cifar10"}
    root : path, optional
        Directory searched first (see the module docstring for the search
        order and the accepted layouts).
    device : str or torch.device
        Where the tensors live.
    allow_download : bool
        Let torchvision download the files into :func:`default_cache_dir`
        when no local copy is found (tried only after a quick reachability
        probe of the download host).
    verify_counts : bool
        Require the full split sizes (60000/10000 for the MNISTs,
        50000/10000 for CIFAR-10) and check the copy's identity: its mean
        training pixel must be within 0.02 of the dataset's known mean (per
        channel), which tells MNIST from Fashion-MNIST (same file names).
        Turn off only for deliberately partial copies; those skip the identity
        check too (a subset's mean need not match).

    Returns
    -------
    Data
        ``train``/``test`` splits with images ``uint8 (N, C, H, W)`` and
        labels ``int64 (N,)``.

    Raises
    ------
    ValueError
        for an unknown ``name`` (the message lists the valid ones).
    DatasetNotFoundError
        when no location holds a complete copy; the message lists every
        place tried and the command that fixes it.
    DatasetCorruptError
        when a file is truncated or inconsistent (bad magic number, wrong
        dimensions or counts, labels out of range, a damaged or foreign
        CIFAR-10 pickle); the message names the file. Also when a full copy's
        mean training pixel is not the dataset's (another dataset's files,
        e.g. Fashion-MNIST's loaded as ``"mnist"``); the message names the
        directory and both means.
    """
    check_choice("name", name, DATASET_NAMES)
    check_type("allow_download", allow_download, bool)
    check_type("verify_counts", verify_counts, bool)
    dev = resolve_device(device)
    spec = _SPECS[name]

    bases: list[tuple[str, Path]] = []
    if root is not None:
        bases.append(("root argument", Path(root)))
    env = os.environ.get("NETPROPS_DATA")
    if env:
        bases.append(("$NETPROPS_DATA", Path(env)))
    if name == "fashion-mnist":
        bases.append(("Debian dataset-fashion-mnist", DEBIAN_FASHION_MNIST))
    cache = default_cache_dir()
    bases.append(("netprops cache", cache))

    tried: list[str] = []

    def search(label: str, base: Path) -> tuple[Path, dict[str, Path]] | None:
        for directory in _candidate_dirs(spec, base):
            files = _complete_files(spec, directory)
            if files is not None:
                return directory, files
        tried.append(f"  {base}  ({label}; also {spec.name}/ and {spec.torchvision_dir}/ inside)")
        return None

    found = None
    for label, base in bases:
        found = search(label, base)
        if found is not None:
            break
    if found is None and allow_download:
        why = _download(spec, cache)
        if why is None:
            found = search("netprops cache, after download", cache)
        else:
            tried.append(f"  download into {cache}: {why}")
    elif found is None:
        tried.append("  download: not attempted (allow_download=False)")
    if found is None:
        if env is None:
            tried.append("  ($NETPROPS_DATA is not set)")
        raise DatasetNotFoundError(
            f"{spec.name} not found. Places tried:\n"
            + "\n".join(tried)
            + "\nTo fix, one of:\n"
            + _fix_command(spec)
        )

    directory, files = found
    loader = _load_cifar if name == "cifar10" else _load_idx_dataset
    splits, classes = loader(spec, files, verify_counts)
    if verify_counts:  # a partial copy's mean need not match the full set's
        _check_identity(spec, directory, splits["train"][0])
    log.debug("loaded %s from %s", name, directory)
    train = Split(*(t.to(dev) for t in splits["train"]), spec.mean, spec.std)
    test = Split(*(t.to(dev) for t in splits["test"]), spec.mean, spec.std)
    return Data(spec.name, tuple(classes), train, test, str(directory))


def synthetic_dataset(
    n_train: int = 1024,
    n_test: int = 256,
    image_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
    noise: float = 0.5,
) -> Data:
    """A learnable synthetic classification problem for offline tests.

    Each class has a random template image; an example is its class's
    template mixed with independent uniform noise (weight ``noise``), as
    ``uint8``. A linear model separates the classes, so short training must
    beat chance. Drawn on the CPU from ``seed``, so every device gets the
    same data. The name is ``synthetic-{K}c-{C}x{H}x{W}-seed{seed}``.

    Raises
    ------
    ValueError, TypeError
        for non-positive sizes, ``num_classes < 2``, a shape that is not
        three positive ints, or ``noise`` outside ``[0, 1)``.
    """
    n_train = check_positive_int("n_train", n_train)
    n_test = check_positive_int("n_test", n_test)
    num_classes = check_int("num_classes", num_classes, min_value=2)
    seed = check_int("seed", seed, min_value=0)
    noise = check_probability("noise", noise)
    check_type("image_shape", image_shape, (tuple, list))
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)!r}")
    shape = tuple(check_positive_int("image_shape[i]", s) for s in image_shape)
    dev = resolve_device(device)

    templates = torch.rand(
        (num_classes, *shape), generator=make_generator(derive_seed(seed, "templates"))
    )

    def draw(n: int, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = make_generator(derive_seed(seed, key))
        labels = torch.randint(num_classes, (n,), generator=g)
        mixed = (1 - noise) * templates[labels] + noise * torch.rand((n, *shape), generator=g)
        return (mixed * 255).round().clamp_(0, 255).to(torch.uint8), labels

    train_images, train_labels = draw(n_train, "train")
    test_images, test_labels = draw(n_test, "test")
    scaled = train_images.double() / 255
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(max(s, 1e-3) for s in scaled.std(dim=(0, 2, 3)).tolist())
    c, h, w = shape
    return Data(
        f"synthetic-{num_classes}c-{c}x{h}x{w}-seed{seed}",
        tuple(f"class{k}" for k in range(num_classes)),
        Split(train_images.to(dev), train_labels.to(dev), mean, std),
        Split(test_images.to(dev), test_labels.to(dev), mean, std),
        "synthetic",
    )
