"""The shared CoNLL-U reader on the cases a tagger meets: multiword tokens, empty nodes, comments, bad lines."""
from __future__ import annotations

import pytest

from meprop_cli.data.conllu import read_conllu, write_conllu
from meprop_cli.errors import DataError

TEXT = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tsaid\tsay\tVERB\tVBD\t_\t_\t_\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tYes\tyes\tINTJ\tUH\t_\t_\t_\t_\t_

"""


def write(tmp_path, text, name="x.conllu"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reader_keeps_syntactic_words_only_and_comments_apart(tmp_path):
    sentences = read_conllu(write(tmp_path, TEXT))
    assert [[t.form for t in s.tokens] for s in sentences] == [["I", "do", "n't", "know", "."], ["Yes"]]
    assert [t.xpos for t in sentences[0].tokens] == ["PRP", "VBP", "RB", "VB", "."]
    assert sentences[0].comments == ["# sent_id = 1", "# text = I don't know."]
    assert sentences[1].tokens[0].head == -1  # `_` head: no tree


def test_reader_reads_a_last_sentence_without_blank_line(tmp_path):
    sentences = read_conllu(write(tmp_path, TEXT.rstrip("\n")))
    assert len(sentences) == 2


@pytest.mark.parametrize("bad_line, message", [
    ("2\tgo\tgo\tVERB\tVB\t_\t0\troot\t_", "expected 10"),
    ("two\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_", "ID .two. is not a word number"),
    ("3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_", "out of sequence"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    text = "# c\n1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n" + bad_line + "\n\n"
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as error:
        read_conllu(path)
    assert f"{path}:3" in str(error.value)


def test_write_then_read_gives_the_same_sentences(tmp_path):
    sentences = read_conllu(write(tmp_path, TEXT))
    out = tmp_path / "out.conllu"
    write_conllu(out, sentences)
    assert read_conllu(out) == sentences
