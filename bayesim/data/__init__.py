"""Data: safe IDX reading, data-set discovery and fetching, Dirty-MNIST-style benchmarks."""

from bayesim.data.dirty import Benchmark, DataConfig, Subset, build_benchmark
from bayesim.data.idx import read_idx, read_images, read_labels, write_idx
from bayesim.data.sources import ImageSet, data_home, describe_sources, fetch, load_split, locate

__all__ = [
    "Benchmark", "DataConfig", "ImageSet", "Subset", "build_benchmark", "data_home",
    "describe_sources", "fetch", "load_split", "locate", "read_idx", "read_images", "read_labels",
    "write_idx",
]
