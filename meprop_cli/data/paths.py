"""The one data-root setting: config key `data_root`, environment variable MEPROP_DATA."""
from __future__ import annotations

from pathlib import Path

from meprop_cli.errors import DataError

SETTING = "data_root=PATH (or the environment variable MEPROP_DATA)"


def find_file(root: str | Path, dataset: str, names: list[str]) -> Path:
    """The first of `names` present in root/dataset, or a DataError that says how to get it."""
    from meprop_cli.data.fetch import FOLDERS  # here: fetch imports this module (through idx)

    folder = Path(root).expanduser() / dataset
    for name in names:
        if (folder / name).is_file():
            return folder / name
        if (folder / name).exists():
            raise DataError(f"{folder / name} is not a file (a folder?); put the {dataset} file {name} there")
    fetch = {folder_name: key for key, folder_name in FOLDERS.items()}.get(dataset)
    how = f", or download it with `meprop data fetch {fetch} --root {Path(root)}`" if fetch else ""
    raise DataError(f"{dataset} file {names[0]} not found in {folder.resolve()}: set {SETTING} to the folder "
                    f"holding {dataset}/{how}")
