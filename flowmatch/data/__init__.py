"""Data sources: 2-D toy distributions, array files, standardization and the Dataset interface."""

from flowmatch.data.dataset import DATASETS, ArrayDataset, Dataset, ToyDataset, get_dataset
from flowmatch.data.files import SUPPORTED_EXTENSIONS, load_array
from flowmatch.data.quantization import Quantization
from flowmatch.data.standardize import Standardizer
from flowmatch.data.toy import TOY_DATASETS, sample_toy

__all__ = [
    "DATASETS",
    "SUPPORTED_EXTENSIONS",
    "TOY_DATASETS",
    "ArrayDataset",
    "Dataset",
    "Quantization",
    "Standardizer",
    "ToyDataset",
    "get_dataset",
    "load_array",
    "sample_toy",
]
