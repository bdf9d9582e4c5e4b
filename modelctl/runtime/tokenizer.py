"""Tokenizers built from a GGUF vocabulary, token for token what llama.cpp produces.

Two families, chosen by ``tokenizer.ggml.model``:

- ``llama``: SentencePiece BPE.  Spaces become ``▁`` (U+2581), a space is put in front
  of the text (``tokenizer.ggml.add_space_prefix``), then the adjacent pair whose
  concatenation is the best-scoring token is merged until none is left; characters
  that never became a token fall back to byte tokens ``<0xNN>``.  Gemma 3 uses this.
- ``gpt2`` (and ``gemma4``): byte-level BPE.  A pre-tokenizer chosen by
  ``tokenizer.ggml.pre`` splits the text into words (``pretokenize``), each word's
  UTF-8 bytes become GPT-2's printable byte characters, then the pair with the lowest
  rank in ``tokenizer.ggml.merges`` is merged until none is left.

Special tokens (control, user-defined, unknown) are cut out of the text first,
longest first, as in llama.cpp's ``tokenizer_st_partition``: user-defined tokens
always, control tokens only with ``parse_special=True``.  ``encode(text,
add_special, parse_special)`` follows ``llama_tokenize``; ``decode`` follows
``llama_detokenize``; ``token_piece`` follows ``llama_token_to_piece``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from modelctl.core.errors import GGUFError, RuntimeModelError
from modelctl.runtime import pretokenize
from modelctl.runtime.detokenize import StreamDecoder, clean_spaces, gpt2_decode
from modelctl.runtime.segment import merge_pairs, wpm_words
from modelctl.runtime.token_tables import (
    A_BYTE, A_CONTROL, A_LSTRIP, A_NORMAL, A_RSTRIP, A_UNDEFINED, A_UNKNOWN, A_UNUSED, A_USER_DEFINED,
    ALWAYS_RENDERED, EOG_TEXTS, EOM_TEXTS, EOT_TEXTS, FIM_TEXTS, FLAG_DEFAULTS, MODEL_DEFAULTS, SPACE_MARK,
    SPECIAL_ID_KEYS, SPECIAL_SLOTS, TOKEN_TYPE_ATTR,
)

_ASCII_SPACE = " \t\n\v\f\r"
_WORD_CACHE_MAX = 1 << 16


def _meta_bool(md: dict, key: str, default: bool) -> bool:
    v = md.get(key)
    return bool(v) if isinstance(v, (bool, int)) else default


class Tokenizer:
    """A GGUF vocabulary with llama.cpp's tokenize / detokenize behaviour."""

    def __init__(self, *, model: str, pre: str, tokens: list[str], scores: Sequence[float] | None,
                 token_types: Sequence[int] | None, merges: Sequence[str] | None, metadata: dict,
                 where: str = "?"):
        self.model = model
        self.where = where
        self._read_vocab(tokens, scores, token_types)
        ids = self._configure(model, pre or "default", merges, metadata)
        self._find_special_tokens(ids)
        self.bos_id: int | None = ids["bos"]
        self.eos_id: int | None = ids["eos"]
        self.eot_id: int | None = ids["eot"]
        self.unk_id: int | None = ids["unk"]
        self.sep_id: int | None = ids["sep"]
        self._index_special_tokens()
        self._pieces: list[bytes | None] = [None] * self.n_vocab   # filled on first use
        self._piece_attrs = list(self._attrs)                       # pieces use the attributes as of now
        self._model_name_attributes(str(metadata.get("general.name") or "").lower())
        if self.kind == "spm" or (self.kind == "bpe" and not self._byte_encode):
            self._space_joiners = self._chars_before_space_mark()
        self._max_token_chars = max(map(len, self._texts))
        self._cache: dict[str, tuple[int, ...]] = {}

    def _read_vocab(self, tokens: list[str], scores: Sequence[float] | None,
                    token_types: Sequence[int] | None) -> None:
        n = len(tokens)
        if n == 0:
            raise GGUFError("the vocabulary (tokenizer.ggml.tokens) is empty", where=self.where)
        self.n_vocab = n
        self._texts = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        self._to_id: dict[str, int] = dict(zip(self._texts, range(n)))   # later duplicates win, as in llama.cpp
        self._scores = list(scores) if scores is not None else [0.0] * n
        if len(self._scores) < n:
            raise GGUFError(f"tokenizer.ggml.scores has {len(self._scores)} entries for {n} tokens",
                            where=self.where)
        self._attrs = [A_NORMAL] * n
        if token_types is not None:
            if len(token_types) < n:
                raise GGUFError(f"tokenizer.ggml.token_type has {len(token_types)} entries for {n} tokens",
                                where=self.where)
            self._attrs = [TOKEN_TYPE_ATTR.get(t, A_UNDEFINED) for t in token_types[:n]]

    def _configure(self, model: str, pre: str, merges: Sequence[str] | None, metadata: dict) -> dict:
        """Flags and special ids: the family's defaults, the pre-tokenizer's, then the metadata's."""
        if model not in MODEL_DEFAULTS:
            raise RuntimeModelError(f"tokenizer model {model!r} is not supported (tokenizer.ggml.model)",
                                    where=self.where, hint="modelctl tokenizes 'llama' (SentencePiece), 'gpt2' "
                                    "and 'gemma4' (BPE) and 'bert' (WordPiece) vocabularies")
        self.kind, default_ids, flags = MODEL_DEFAULTS[model]
        ids = dict.fromkeys(SPECIAL_SLOTS)
        ids.update(default_ids)
        for k, v in {**FLAG_DEFAULTS, **flags}.items():
            setattr(self, k, v)
        self.pre = "gemma4" if model == "gemma4" else pre
        self._regexes: tuple[str, ...] = ()
        self._byte_encode = True
        self._ranks: dict[str, int] = {}
        if self.kind == "bpe":
            if merges is None:
                raise GGUFError("the BPE vocabulary has no tokenizer.ggml.merges", where=self.where)
            if self.pre not in pretokenize.PRE_TOKENIZERS:
                raise RuntimeModelError(f"unknown pre-tokenizer {self.pre!r} (tokenizer.ggml.pre)", where=self.where,
                                        hint="modelctl supports the pre-tokenizers llama.cpp implements with regexes")
            regex_set, pre_flags = pretokenize.PRE_TOKENIZERS[self.pre]
            self._regexes, self._byte_encode = pretokenize.REGEX_SETS[regex_set]
            for k, v in pre_flags.items():
                if k == "bos_null":
                    ids["bos"] = None
                else:
                    setattr(self, k, v)
            # merge ranks keyed by the merge text "left right"; the first occurrence wins
            self._ranks = dict(zip(reversed(merges), range(len(merges) - 1, -1, -1)))
        self.add_space_prefix = _meta_bool(metadata, "tokenizer.ggml.add_space_prefix", self.add_space_prefix)

        # special ids: defaults out of range are dropped, metadata overrides when in range
        n = self.n_vocab
        for slot, v in ids.items():
            if v is not None and v >= n:
                ids[slot] = None
        for suffix, slot in SPECIAL_ID_KEYS:
            v = metadata.get("tokenizer.ggml." + suffix)
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n:
                ids[slot] = v
        self.add_bos = _meta_bool(metadata, "tokenizer.ggml.add_bos_token", self.add_bos)
        self.add_eos = _meta_bool(metadata, "tokenizer.ggml.add_eos_token", self.add_eos)
        self.add_sep = _meta_bool(metadata, "tokenizer.ggml.add_sep_token", self.add_sep)
        self.lowercase = _meta_bool(metadata, "tokenizer.ggml.normalizer.lowercase", True)
        self.strip_accents = _meta_bool(metadata, "tokenizer.ggml.normalizer.strip_accents", self.lowercase)
        if self.kind == "bpe" and self.pre == "gemma4":
            self.add_bos = True     # llama.cpp forces BOS for Gemma 4
        return ids

    def _index_special_tokens(self) -> None:
        """The tokens cut out of the text before tokenizing (control, user-defined, unknown), longest
        first, and grouped by their first three characters to skip quickly the thousands absent from a text."""
        texts, attrs = self._texts, self._attrs
        special = [i for i in range(self.n_vocab) if attrs[i] & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN)]
        special.sort(key=lambda i: -len(texts[i].encode("utf-8", "surrogateescape")))
        self._special_order = special
        self._special_groups: dict[str, list[int]] = {}
        for rank, i in enumerate(special):
            self._special_groups.setdefault(texts[i][:3], []).append(rank)

    def _model_name_attributes(self, name: str) -> None:
        """Per-model attributes llama.cpp sets by name: Phi-3 strips spaces after its special tokens."""
        if "phi-3" in name or "phi3" in name:
            attrs, to_id = self._attrs, self._to_id
            for i in self._special_order:
                attrs[i] |= A_RSTRIP
            if "</s>" in to_id:
                attrs[to_id["</s>"]] |= A_RSTRIP
            for t in ("<unk>", "<s>", "<|endoftext|>"):
                if t in to_id:
                    attrs[to_id[t]] &= ~A_RSTRIP

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_header(cls, header) -> "Tokenizer":
        """Build the tokenizer from a parsed GGUF header (``modelctl.gguf_reader.GGUFHeader``)."""
        md = header.metadata
        where = getattr(header, "source", "?")
        model = md.get("tokenizer.ggml.model")
        if not isinstance(model, str):
            raise GGUFError("the file has no tokenizer (tokenizer.ggml.model is missing)", where=where)
        tokens = md.get("tokenizer.ggml.tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise GGUFError("tokenizer.ggml.tokens is missing or not a string array", where=where)
        pre = md.get("tokenizer.ggml.pre")
        scores = md.get("tokenizer.ggml.scores")
        types = md.get("tokenizer.ggml.token_type")
        merges = md.get("tokenizer.ggml.merges")
        if scores is not None and not (isinstance(scores, list) and all(isinstance(s, (int, float)) for s in scores)):
            raise GGUFError("tokenizer.ggml.scores is not a number array", where=where)
        if types is not None and not (isinstance(types, list) and all(isinstance(t, int) for t in types)):
            raise GGUFError("tokenizer.ggml.token_type is not an integer array", where=where)
        if merges is not None and not (isinstance(merges, list) and all(isinstance(m, str) for m in merges)):
            raise GGUFError("tokenizer.ggml.merges is not a string array", where=where)
        return cls(model=model, pre=pre if isinstance(pre, str) else "", tokens=tokens, scores=scores,
                   token_types=types, merges=merges, metadata=md, where=where)

    @classmethod
    def from_file(cls, path) -> "Tokenizer":
        """Read the header of a GGUF file (a full model or a vocab-only file) and build its tokenizer."""
        from modelctl.gguf.reader import read_header
        return cls.from_header(read_header(path))

    def _find_special_tokens(self, ids: dict) -> None:
        """llama.cpp's text-based detection of EOT/EOM/FIM tokens and the end-of-generation set."""
        to_id, attrs, texts = self._to_id, self._attrs, self._texts

        def mark_control(i: int) -> None:
            attrs[i] |= A_CONTROL

        # llama.cpp walks a hash map here, so when several candidates exist the winner is up to the
        # hash order; we take the first in list order (which agrees with llama.cpp on the test vocabularies).
        slots = [("eot", EOT_TEXTS), ("eom", EOM_TEXTS)] + list(FIM_TEXTS.items())
        for slot, names in slots:
            found = [to_id[t] for t in names if t in to_id]
            if ids[slot] is None and found:
                ids[slot] = found[0]
                mark_control(found[0])
        # control tokens named "unused..." are unused
        for t, i in to_id.items():
            if attrs[i] & A_CONTROL and "unused" in t:
                attrs[i] |= A_UNUSED

        eog = set()
        for slot in ("fim_pad", "fim_rep", "fim_sep"):
            if ids[slot] is not None:
                eog.add(ids[slot])
        for t in EOG_TEXTS:
            i = to_id.get(t)
            if i is not None:
                eog.add(i)
                mark_control(i)
        for t in ALWAYS_RENDERED:
            i = to_id.get(t)
            if i is not None:
                attrs[i] = A_USER_DEFINED
        for slot in ("eos", "eot", "eom"):
            if ids[slot] is not None:
                eog.add(ids[slot])
        eog_texts = {texts[i]: i for i in eog}
        # o200k_harmony / solar-open: <|end|> is not the end of generation there
        if "<|end|>" in eog_texts and (("<|return|>" in eog_texts and ("<|call|>" in eog_texts or "<|calls|>" in eog_texts))
                                       or (("<|call|>" in eog_texts or "<|calls|>" in eog_texts) and "<|flush|>" in eog_texts)):
            end = eog_texts["<|end|>"]
            eog.discard(end)
            attrs[end] = A_USER_DEFINED
        # Gemma 4 and PLaMo have an ordinary </s>
        if "</s>" in eog_texts and ("<|tool_response>" in eog_texts or "<|plamo:eos|>" in eog_texts):
            s = eog_texts["</s>"]
            eog.discard(s)
            attrs[s] = A_NORMAL
        self.eog_ids: frozenset[int] = frozenset(eog)

    def _chars_before_space_mark(self) -> frozenset[str]:
        """Characters ``c`` such that some token contains ``c▁``: the text may not be cut before
        a ``▁`` that follows one of them (a merge could cross the cut)."""
        out = set()
        if self.kind == "spm":
            pieces: Iterable[str] = self._texts
        else:
            pieces = (m[:p] + m[p + 1:] for m in self._ranks for p in [m.find(" ", 1)] if p > 0)
        for t in pieces:
            i = t.find(SPACE_MARK, 1)
            while i > 0:
                out.add(t[i - 1])
                i = t.find(SPACE_MARK, i + 1)
        return frozenset(out)

    # -- encode ----------------------------------------------------------------------

    def encode(self, text: str, add_special: bool = False, parse_special: bool = False) -> list[int]:
        """Token ids for ``text`` (``llama_tokenize(text, add_special, parse_special)``)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        out: list[int] = []
        frags = self._partition(text, parse_special) if text else []
        if self.kind == "spm":
            prev_special = True
            if add_special and self.add_bos:
                out.append(self._require(self.bos_id, "BOS"))
            for f in frags:
                if isinstance(f, int):
                    out.append(f)
                    prev_special = True
                    continue
                if self.add_space_prefix and prev_special:
                    f = " " + f
                self._encode_spm(f.replace(" ", SPACE_MARK), out)
                prev_special = False
            if add_special and self.add_eos:
                out.append(self._require(self.eos_id, "EOS"))
        elif self.kind == "wpm":
            if add_special:
                out.append(self._require(self.bos_id, "BOS"))
            for f in frags:
                if isinstance(f, int):
                    out.append(f)
                else:
                    self._encode_wpm(f, out)
            if add_special:
                out.append(self._require(self.sep_id, "SEP"))
        else:
            if add_special and self.add_bos:
                out.append(self._require(self.bos_id, "BOS"))
            for f in frags:
                if isinstance(f, int):
                    out.append(f)
                    continue
                if self.escape_whitespaces:
                    f = f.replace(" ", SPACE_MARK)
                self._encode_bpe(f, out)
            if add_special and self.add_eos:
                out.append(self._require(self.eos_id, "EOS"))
        return out

    def _require(self, tid: int | None, what: str) -> int:
        if tid is None:
            raise GGUFError(f"the vocabulary asks for a {what} token but defines none", where=self.where)
        return tid

    def _partition(self, text: str, parse_special: bool) -> list:
        """Cut special tokens out of ``text``: a list of raw-text strings and token ids."""
        frags: list = [text]
        order, texts = self._special_order, self._texts
        present = sorted(rank for prefix, ranks in self._special_groups.items() if prefix in text
                         for rank in ranks if texts[order[rank]] in text)
        for tid in (order[rank] for rank in present):
            attr = self._attrs[tid]
            if not parse_special and attr & (A_CONTROL | A_UNKNOWN):
                continue
            st = texts[tid]
            lstrip, rstrip = attr & A_LSTRIP, attr & A_RSTRIP
            new: list = []
            for f in frags:
                if isinstance(f, int) or st not in f:
                    new.append(f)
                    continue
                start, end = 0, len(f)
                while True:
                    m = f.find(st, start, end)
                    if m < 0:
                        break
                    left = m
                    if lstrip:
                        while left > start and f[left - 1] in _ASCII_SPACE:
                            left -= 1
                    if left > start:
                        new.append(f[start:left])
                    new.append(tid)
                    start = m + len(st)
                    if rstrip:
                        while start < end and f[start] in _ASCII_SPACE:
                            start += 1
                    if start >= end:
                        break
                if start < end:
                    new.append(f[start:end])
            frags = new
        return frags

    # SentencePiece BPE ----------------------------------------------------------------

    def _encode_spm(self, text: str, out: list[int]) -> None:
        cache = self._cache
        for chunk in self._chunks(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = tuple(self._spm_chunk(chunk))
                if len(cache) >= _WORD_CACHE_MAX:
                    cache.clear()
                cache[chunk] = ids
            out.extend(ids)

    def _chunks(self, text: str) -> Iterable[str]:
        """Cut before each ▁ that no token could join to the character before it."""
        joiners = self._space_joiners
        start = 0
        i = text.find(SPACE_MARK, 1)
        while i > 0:
            if text[i - 1] not in joiners:
                yield text[start:i]
                start = i
            i = text.find(SPACE_MARK, i + 1)
        yield text[start:]

    def _spm_chunk(self, text: str) -> list[int]:
        to_id, scores = self._to_id, self._scores

        def best_score_first(a: str, b: str):
            tid = to_id.get(a + b)
            return None if tid is None else -scores[tid]

        out: list[int] = []
        for s in merge_pairs(list(text), best_score_first):
            tid = to_id.get(s)
            if tid is not None:
                out.append(tid)
            else:
                for byte in s.encode("utf-8", "surrogatepass"):
                    out.append(self._byte_token(byte))
        return out

    def _byte_token(self, byte: int) -> int:
        tid = self._to_id.get(f"<0x{byte:02X}>")
        if tid is None:
            tid = self._to_id.get(chr(byte) if byte < 0x80 else chr(0xDC00 + byte))
        if tid is None:
            tid = self._require(self.unk_id, f"byte <0x{byte:02X}> (or UNK)")
        return tid

    # byte-level BPE -------------------------------------------------------------------

    def _encode_bpe(self, text: str, out: list[int]) -> None:
        cache = self._cache
        for word in pretokenize.split(text, self._regexes):
            if self._byte_encode:
                word = pretokenize.byte_encode(word)
                parts: Iterable[str] = (word,)
            else:
                parts = self._chunks(word)
            for part in parts:
                ids = cache.get(part)
                if ids is None:
                    ids = tuple(self._bpe_word(part))
                    if len(cache) >= _WORD_CACHE_MAX:
                        cache.clear()
                    cache[part] = ids
                out.extend(ids)

    def _bpe_word(self, word: str) -> list[int]:
        to_id, ranks = self._to_id, self._ranks
        if self.ignore_merges and word in to_id:
            return [to_id[word]]
        if self.pre == "gemma4" and word.strip("\n") == "" and word in to_id:
            return [to_id[word]]
        out: list[int] = []
        for s in merge_pairs(list(word), lambda a, b: ranks.get(a + " " + b)):
            tid = to_id.get(s)
            if tid is not None:
                out.append(tid)
            else:
                # llama.cpp looks up each byte of the symbol alone and drops what it cannot find
                for byte in s.encode("utf-8", "surrogatepass"):
                    if self._byte_encode:
                        key = chr(byte) if byte < 0x80 else chr(0xDC00 + byte)
                    else:
                        key = f"<0x{byte:02X}>"
                    bt = to_id.get(key)
                    if bt is not None:
                        out.append(bt)
        return out

    # WordPiece (BERT) -----------------------------------------------------------------

    def _encode_wpm(self, text: str, out: list[int]) -> None:
        to_id, longest = self._to_id, self._max_token_chars
        for word in wpm_words(text, self.lowercase, self.strip_accents):
            w = SPACE_MARK + word
            n = len(w)
            start = len(out)
            i = 0
            while i < n:
                for j in range(min(n, i + longest + 1), i, -1):
                    tid = to_id.get(w[i:j])
                    if tid is not None:
                        out.append(tid)
                        i = j
                        break
                else:                       # no token starts here: the whole word is unknown
                    del out[start:]
                    break
            if len(out) == start:
                out.append(self._require(self.unk_id, "UNK"))

    # -- decode ----------------------------------------------------------------------

    def _piece_uncached(self, tid: int) -> bytes:
        """``llama_token_to_piece(special=True)``: the bytes a token stands for."""
        attr, text = self._piece_attrs[tid], self._texts[tid]
        raw = text.encode("utf-8", "surrogateescape")
        if attr & (A_CONTROL | A_UNKNOWN | A_USER_DEFINED):
            return raw
        if attr & A_NORMAL:
            if self.kind != "bpe" or self.escape_whitespaces:
                return text.replace(SPACE_MARK, " ").encode("utf-8", "surrogateescape")
            return gpt2_decode(text)
        if attr & A_BYTE:
            try:
                return bytes([int(text[3:5], 16)])
            except ValueError:
                return b""
        return b""

    def token_piece(self, tid: int, special: bool = True) -> bytes:
        """The bytes of one token (``llama_token_to_piece``); control tokens give b"" unless ``special``."""
        if not 0 <= tid < self.n_vocab:
            raise IndexError(f"token id {tid} is outside the vocabulary (0..{self.n_vocab - 1})")
        if not special and self._attrs[tid] & (A_CONTROL | A_UNKNOWN):
            return b""
        piece = self._pieces[tid]
        if piece is None:
            piece = self._pieces[tid] = self._piece_uncached(tid)
        return piece

    def token_text(self, tid: int) -> str:
        """The token as stored in the vocabulary (e.g. ``▁the``, ``Ġthe``, ``<0x0A>``)."""
        return self._texts[tid]

    def token_id(self, text: str) -> int | None:
        """The id of the token whose vocabulary text is exactly ``text`` (e.g. ``<|im_end|>``), else None."""
        return self._to_id.get(text)

    def is_eog(self, tid: int) -> bool:
        return tid in self.eog_ids

    def decode_bytes(self, ids: Sequence[int], special: bool = False, remove_special: bool = False) -> bytes:
        """``llama_detokenize``: pieces joined, first space of SentencePiece text dropped, spaces cleaned."""
        ids = list(ids)
        remove_space = self.add_space_prefix
        if remove_special and self.add_bos and ids and ids[0] == self.bos_id:
            remove_space = False
            ids = ids[1:]
        if remove_special and self.add_eos and ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        parts = []
        for tid in ids:
            piece = self.token_piece(tid, special)
            if remove_space and piece[:1] == b" ":
                piece = piece[1:]
            remove_space = False
            parts.append(piece)
        text = b"".join(parts)
        if self.clean_spaces and text:
            text = clean_spaces(text)
        return text

    def decode(self, ids: Sequence[int], special: bool = False, remove_special: bool = False) -> str:
        """Text for ``ids`` (invalid UTF-8 from partial byte tokens becomes U+FFFD)."""
        return self.decode_bytes(ids, special, remove_special).decode("utf-8", "replace")

    def stream(self, special: bool = False) -> "StreamDecoder":
        return StreamDecoder(self, special=special)


