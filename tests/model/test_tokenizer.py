"""Tiny tokenizer: deterministic, special tokens atomic, qwen_1_5 template; build_tokenizer reload."""

from ross3d_model.inputs.tokenizer import (
    COORD_TOKEN,
    GROUND_TOKEN,
    IMAGE_TOKEN,
    build_tiny_tokenizer,
    build_tokenizer,
    embedding_rows,
    special_token_ids,
)
from transformers import PreTrainedTokenizerFast


def test_tiny_tokenizer_is_deterministic_and_round_trips(tmp_path):
    a, b = build_tiny_tokenizer(tmp_path / "a"), build_tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab() and len(a) <= 512
    text = "What color is the chair? <coord> , brown<|im_end|>"
    ids = a(text, add_special_tokens=False).input_ids
    assert a.decode(ids) == text
    for token in (IMAGE_TOKEN, COORD_TOKEN, GROUND_TOKEN, "<|im_start|>", "<|im_end|>"):
        assert len(a(token, add_special_tokens=False).input_ids) == 1, token
    reloaded = build_tokenizer(tmp_path / "a")
    assert reloaded.get_vocab() == a.get_vocab()
    assert special_token_ids(reloaded) == special_token_ids(a)


def test_qwen_1_5_chat_template():
    tok = build_tiny_tokenizer()
    text = tok.apply_chat_template(
        [{"role": "user", "content": "<image>\nhi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<image>\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_build_tokenizer_adds_missing_specials_and_template(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    raw = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(tmp_path)
    tok = build_tokenizer(tmp_path)
    ids = special_token_ids(tok)
    assert len({ids["image"], ids["coord"], ids["ground"], ids["im_end"]}) == 4
    assert tok.pad_token == "<|im_end|>" and tok.chat_template


def test_build_tokenizer_adds_ground_then_coord_as_the_reference(tmp_path):
    """train_3d.py 1663-1679: add_tokens(["<ground>"]) then add_tokens(["<coord>"]); the model's
    rows = len(tokenizer) (151,649 at 7B). `<image>` (never embedded) comes after those rows."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "chair": 2, "<|endoftext|>": 3, "<|im_start|>": 4}
    vocab["<|im_end|>"] = 5
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(tmp_path)
    tok = build_tokenizer(tmp_path)
    ids = special_token_ids(tok)
    assert (ids["ground"], ids["coord"], ids["image"]) == (6, 7, 8)
    assert embedding_rows(tok) == 8 == len(tok) - 1
    assert not tok.added_tokens_decoder[6].special and not tok.added_tokens_decoder[7].special
    assert tok("hello <ground> chair <coord>", add_special_tokens=False).input_ids == [1, 6, 2, 7]


def test_tiny_tokenizer_rows_cover_every_token():
    tok = build_tiny_tokenizer()
    assert embedding_rows(tok) == len(tok)
