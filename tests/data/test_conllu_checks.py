"""The CoNLL-U reader on files a user gets wrong: encoding, folders, permissions, empty files, odd lines."""
from __future__ import annotations

import pytest

from meprop_cli.data.conllu import read_conllu, read_split
from meprop_cli.errors import DataError

WORD = "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_"


def write(tmp_path, text: str | bytes, name="x.conllu"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_latin1_bytes_name_the_line_and_say_to_save_as_utf8(tmp_path):
    text = f"# sent_id = 1\n{WORD}\n2\tcaf\u00e9\tcaf\u00e9\tNOUN\tNN\t_\t1\tdep\t_\t_\n\n"
    path = write(tmp_path, text.encode("latin-1"))
    with pytest.raises(DataError, match=r"x\.conllu:3: is not UTF-8 \(byte 0xe9\); save the file as UTF-8"):
        read_conllu(path)


def test_gzip_and_utf16_files_say_what_they_are(tmp_path):
    import gzip

    with pytest.raises(DataError, match=r"x\.conllu is gzip-compressed; decompress it"):
        read_conllu(write(tmp_path, gzip.compress(WORD.encode())))
    with pytest.raises(DataError, match=r"y\.conllu:1: is not UTF-8 \(byte 0xff\); .*iconv -f utf-16 -t utf-8"):
        read_conllu(write(tmp_path, (WORD + "\n").encode("utf-16"), "y.conllu"))


def test_a_byte_order_mark_windows_line_ends_and_blank_lines_of_spaces_are_read(tmp_path):
    text = "\ufeff# sent_id = 1\r\n" + WORD + "\r\n \t \r\n" + WORD + "\r\n"
    sentences = read_conllu(write(tmp_path, text))
    assert [len(s) for s in sentences] == [1, 1] and sentences[0].comments == ["# sent_id = 1"]
    assert sentences[1].tokens[0].misc == "_"


def test_token_lines_are_kept_for_messages_and_are_not_part_of_the_value(tmp_path):
    text = f"# c\n{WORD}\n2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n2\tdo\tdo\tAUX\tVB\t_\t1\taux\t_\t_\n\n{WORD}\n"
    first, second = read_conllu(write(tmp_path, text))
    assert first.lines == [2, 4] and second.lines == [6]
    assert second == type(second)(second.tokens, second.comments)  # equality ignores where a sentence was read


def test_a_folder_is_not_a_conllu_file(tmp_path):
    with pytest.raises(DataError, match="is a folder, not a CoNLL-U file"):
        read_conllu(tmp_path)


def test_an_unreadable_file_is_one_sentence(tmp_path, monkeypatch):
    path = write(tmp_path, WORD + "\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("meprop_cli.data.conllu.open", refuse, raising=False)  # as root, chmod 000 does not stop a read
    with pytest.raises(DataError, match=r"x\.conllu cannot be read \(Permission denied\); check its permissions"):
        read_conllu(path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n\n"])
def test_a_split_without_sentences_names_the_setting(tmp_path, text):
    path = write(tmp_path, text)
    assert read_conllu(path) == []  # a file to tag may be empty
    with pytest.raises(DataError, match=r"x\.conllu holds no sentence; point task\.dev_file at a CoNLL-U file"):
        read_split(path, "task.dev_file")


@pytest.mark.parametrize("bad_line, message", [
    (WORD.replace("\t_\t_", "\t_\t_\textra", 1), "expected 10 tab-separated CoNLL-U columns, found 11; separate"),
    (WORD.replace("\t", " "), "found 1; separate ID FORM LEMMA"),
    ("1.x\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_", "ID '1.x' is not a word number"),
    ("-1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_", "ID '-1' is not a word number"),
    ("1\tHi\thi\tINTJ\tUH\t_\t-1\troot\t_\t_", "HEAD '-1' is not a word number; give the ID of the word's head"),
    ("1\tHi\thi\tINTJ\tUH\t_\t0:root\troot\t_\t_", "HEAD '0:root' is not a word number"),
    ("2\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_", "word ID 2 out of sequence \\(expected 1\\); number the words"),
])
def test_a_malformed_word_line_names_file_line_and_fix(tmp_path, bad_line, message):
    path = write(tmp_path, f"# c\n{bad_line}\n\n")
    with pytest.raises(DataError, match=message) as error:
        read_conllu(path)
    assert str(error.value).startswith(f"{path}:2: ")
