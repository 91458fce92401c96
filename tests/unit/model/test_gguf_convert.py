"""posttrain convert gguf: bad files give one line naming the file and what is missing or
unsupported; the stop tokens of a converted model include the end-of-turn token. The conversion
of a real GGUF file is tested in tests/real_model/."""

import numpy as np
import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.model.gguf_convert import check_gguf, stop_token_ids

gguf = pytest.importorskip("gguf")


def write_gguf(path, arch="llama", chat_template="{{ messages }}", int8_tensor=False):
    writer = gguf.GGUFWriter(str(path), arch)
    if chat_template is not None:
        writer.add_string("tokenizer.chat_template", chat_template)
    writer.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32))
    if int8_tensor:
        writer.add_tensor("blk.0.attn_q.weight", np.ones((4, 8), dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_supported_file_passes_the_checks(tmp_path):
    facts = check_gguf(write_gguf(tmp_path / "ok.gguf"))
    assert facts == {"architecture": "llama", "tensor_types": ["F32"]}


def test_unsupported_architecture_is_named(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", arch="notamodel")
    with pytest.raises(UserError, match=r"m\.gguf.*architecture 'notamodel' is not supported"):
        check_gguf(path)


def test_tensor_type_that_cannot_be_dequantised_is_named(tmp_path):
    path = write_gguf(tmp_path / "q.gguf", int8_tensor=True)
    with pytest.raises(UserError, match=r"q\.gguf.*tensor type\(s\) I8 cannot be dequantised"):
        check_gguf(path)


def test_missing_chat_template_is_named(tmp_path):
    path = write_gguf(tmp_path / "base.gguf", chat_template=None)
    with pytest.raises(UserError, match=r"base\.gguf.*no chat template"):
        check_gguf(path)


def test_truncated_file_is_named(tmp_path):
    whole = write_gguf(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match=r"cut\.gguf.*truncated or not a GGUF file"):
        check_gguf(cut)


def test_not_a_gguf_file_is_named(tmp_path):
    other = tmp_path / "weights.gguf"
    other.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(UserError, match=r"weights\.gguf.*truncated or not a GGUF file"):
        check_gguf(other)


def test_cli_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    path = write_gguf(tmp_path / "base.gguf", chat_template=None)
    assert main(["convert", "gguf", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "base.gguf" in err and "chat template" in err
    assert not (tmp_path / "out").exists()


def test_cli_missing_file(tmp_path, capsys):
    assert main(["convert", "gguf", str(tmp_path / "none.gguf"), "--out", str(tmp_path / "o")]) == 2
    assert "none.gguf" in capsys.readouterr().err


def test_stop_tokens_are_eos_then_end_of_turn(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    vocab = tok.get_vocab()
    # the tiny tokenizer has Llama-3's names: eos <|end_of_text|>, end of turn <|eot_id|>
    assert stop_token_ids(tok) == [vocab["<|end_of_text|>"], vocab["<|eot_id|>"]]


def test_a_gguf_model_path_is_checked_before_converting(tmp_path, monkeypatch):
    """`model: FILE.gguf` goes through the conversion; a bad file fails with the file named."""
    from posttrain.model.load import load_tokenizer

    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    path = write_gguf(tmp_path / "nochat.gguf", chat_template=None)
    with pytest.raises(UserError, match=r"nochat\.gguf.*no chat template"):
        load_tokenizer(str(path))
    with pytest.raises(UserError, match=r"missing\.gguf' does not exist"):
        load_tokenizer(str(tmp_path / "missing.gguf"))
    assert not (tmp_path / "cache" / "gguf").exists() or not any((tmp_path / "cache" / "gguf").iterdir())
