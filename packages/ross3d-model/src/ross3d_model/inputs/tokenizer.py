"""Tokenizers: the real Qwen2 one (hub id / folder) and a deterministic tiny one for tests/demos.

Both carry the special tokens the model needs (`<image>`, `<coord>`, `<ground>`, the qwen_1_5 chat
markers and a pad token) and the qwen_1_5 chat template.

Vocabulary as the public code (train_3d.py lines 1663-1679): `<ground>` then `<coord>` are added
with `add_tokens`, and the model's embedding has `len(tokenizer)` rows (151,649 at 7B; the new
rows start as the mean of the others: `LLMConfig.added_token_rows`). The public code never
tokenises `<image>` (it splices id -200); we add it last, as a special token past the embedding
rows: its position is replaced by the frames before the embedding lookup, so it needs no row
(`embedding_rows`).
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

IMAGE_TOKEN = "<image>"
COORD_TOKEN = "<coord>"
GROUND_TOKEN = "<ground>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
MODEL_SPECIAL_TOKENS = (IMAGE_TOKEN, COORD_TOKEN, GROUND_TOKEN)

# qwen_1_5 conversation format (LLaVA-NeXT conv_qwen): system turn, then user/assistant turns.
QWEN_1_5_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_TINY_CORPUS = """
What is in the right corner of the room? What color is the chair? Where is the table located?
How many chairs are there? Is the door open or closed? Which side of the bed is the lamp on?
Can I sit on the couch? What is under the desk? What is on top of the cabinet? Others.
The chair is brown. The table is white. There is a black monitor on the desk near the window.
This is a wooden chair. It is placed to the left of the table, facing the bed.
It is a tall bookshelf next to the door. The trash can is in the corner of the room.
red orange yellow green blue purple pink brown black white gray grey beige tan silver gold
chair table desk bed couch sofa door window cabinet shelf bookshelf lamp monitor tv television
toilet sink bathtub shower curtain mirror picture counter kitchen refrigerator stove oven
microwave trash can box bag backpack pillow blanket towel nightstand dresser wardrobe closet
armchair stool ottoman rug carpet floor wall ceiling radiator heater fan plant laptop keyboard
computer printer phone clock book books bottle cup plate bowl basket bin suitcase piano guitar
left right front back behind above below under over next to near far between beside middle
corner center top bottom side inside outside on in at of the a an is are was there it this that
one two three four five six seven eight nine ten zero yes no small large big tall short long
round square rectangular wooden metal plastic leather open closed empty full
Describe the object at the given location. Locate the object described. Find all objects.
the object the objects the room scene video frame view camera
"""


def _special_tokens_map() -> dict:
    return {
        "pad_token": PAD_TOKEN,
        "eos_token": IM_END,
        "additional_special_tokens": [IM_START, IM_END, *MODEL_SPECIAL_TOKENS],
    }


def build_tiny_tokenizer(out_dir: str | Path | None = None, vocab_size: int = 512):
    """Train a byte-level BPE on a fixed built-in corpus (deterministic) and wrap it.

    Saves it to `out_dir` when given (so `build_tokenizer(out_dir)` reloads it).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [PAD_TOKEN, IM_START, IM_END, *MODEL_SPECIAL_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _TINY_CORPUS.strip().splitlines() if line.strip()]
    tok.train_from_iterator(lines, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, **_special_tokens_map())
    wrapped.chat_template = QWEN_1_5_TEMPLATE
    if out_dir is not None:
        wrapped.save_pretrained(str(out_dir))
    return wrapped


def build_tokenizer(path_or_hub_id: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer (e.g. lmms-lab/LLaVA-Video-7B-Qwen2 or a saved tiny one) and make sure it
    has the model's tokens (module docstring: `<ground>`, `<coord>` by `add_tokens` in that
    order, then the chat markers and `<image>` as special tokens), a pad token and the qwen_1_5
    chat template. Tokens it already has keep their ids."""
    tok = AutoTokenizer.from_pretrained(str(path_or_hub_id))
    for token in (GROUND_TOKEN, COORD_TOKEN):
        if token not in tok.get_vocab():
            tok.add_tokens([token])
    missing = [t for t in (IM_START, IM_END, IMAGE_TOKEN) if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": missing})
    if tok.pad_token is None:
        tok.pad_token = PAD_TOKEN if PAD_TOKEN in tok.get_vocab() else IM_END
    if not tok.chat_template:
        tok.chat_template = QWEN_1_5_TEMPLATE
    return tok


def special_token_ids(tok: PreTrainedTokenizerBase) -> dict[str, int]:
    """Ids of the model's special tokens; a clear error if the tokenizer lacks one."""
    vocab = tok.get_vocab()
    out = {}
    for name, token in (("image", IMAGE_TOKEN), ("coord", COORD_TOKEN), ("ground", GROUND_TOKEN)):
        if token not in vocab:
            raise ValueError(f"tokenizer lacks the special token {token}: use build_tokenizer()")
        out[name] = vocab[token]
    out["im_end"] = vocab[IM_END]
    out["pad"] = tok.pad_token_id
    return out


def embedding_rows(tok: PreTrainedTokenizerBase) -> int:
    """Embedding rows the tokenizer needs: 1 + the largest id of any token but `<image>` (never
    embedded). With the public vocabulary this is `len(tokenizer)` of the reference (151,649)."""
    return 1 + max(i for t, i in tok.get_vocab().items() if t != IMAGE_TOKEN)
