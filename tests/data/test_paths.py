"""find_file: the one place a task looks for its data files, and what it says when one is missing."""
import pytest

from meprop_cli.data.paths import find_file
from meprop_cli.errors import DataError


def test_a_missing_treebank_file_names_the_fetch_command_that_gets_it(tmp_path):
    with pytest.raises(DataError, match=r"`meprop data fetch ewt --root "):
        find_file(tmp_path, "ud-english-ewt", ["en_ewt-ud-train.conllu"])


def test_a_folder_where_the_file_should_be_is_said_so(tmp_path):
    (tmp_path / "ud-english-ewt" / "en_ewt-ud-train.conllu").mkdir(parents=True)
    with pytest.raises(DataError, match="en_ewt-ud-train.conllu is not a file"):
        find_file(tmp_path, "ud-english-ewt", ["en_ewt-ud-train.conllu"])


def test_a_dataset_no_command_fetches_gets_no_fetch_hint(tmp_path):
    with pytest.raises(DataError) as error:
        find_file(tmp_path, "my-treebank", ["x-train.conllu"])
    assert "meprop data fetch" not in str(error.value) and "data_root" in str(error.value)
