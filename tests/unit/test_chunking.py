"""Chunking with the real MiniLM tokenizer: structure, packing, overlap, and the hard limit that no
embedding text exceeds the model's max_seq_length, on the fixture corpus and adversarial inputs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ragops.chunking import ChunkingConfig, ChunkingError, chunk_document, chunk_documents
from ragops.documents import Block, Document
from ragops.sources import load_source

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


@pytest.fixture(scope="module")
def tokenizer(base_model_path):
    from ragops.embedding import load_tokenizer

    return load_tokenizer(base_model_path)


@pytest.fixture(scope="module")
def corpus():
    return load_source({"type": "folder", "path": str(FIXTURE_CORPUS), "name": "fixture"}, on_error="fail").documents


def model_tokens(tokenizer, text: str) -> int:
    """What the model sees, counted independently of the chunker: with [CLS]/[SEP], untruncated."""
    return len(tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])


def assert_within_limit(chunks, tokenizer, max_tokens):
    assert chunks
    for chunk in chunks:
        seen = model_tokens(tokenizer, chunk.embedding_text)
        assert seen <= max_tokens, (chunk.doc_id, chunk.position, seen)
        assert chunk.token_count == seen
        assert chunk.text.strip()


def doc(blocks, title="Adversarial", doc_id="adv.md") -> Document:
    return Document(doc_id=doc_id, source="t", title=title, blocks=blocks, format="markdown")


def sentences(n: int) -> str:
    words = itertools.cycle(["the", "write", "ahead", "log", "records", "every", "change", "before", "segment", "files", "are", "touched"])
    return " ".join(" ".join(next(words) for _ in range(9 + i % 7)).capitalize() + "." for i in range(n))


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "named"), [
    ({"strategy": "semantic"}, "strategy"),
    ({"chunk_size": 300, "max_tokens": 256}, "chunk_size"),
    ({"chunk_size": 0}, "chunk_size"),
    ({"chunk_size": 64, "chunk_overlap": 64}, "chunk_overlap"),
    ({"chunk_overlap": -1}, "chunk_overlap"),
    ({"max_tokens": 8, "chunk_size": 8}, "max_tokens"),
    ({"chunk_size": "128"}, "chunk_size"),
])
def test_config_validation_names_the_param(params, named):
    with pytest.raises(ChunkingError, match=named):
        ChunkingConfig(**params)


def test_config_from_params_rejects_unknown_keys():
    assert ChunkingConfig.from_params({"chunk_size": 100}).chunk_size == 100
    with pytest.raises(ChunkingError, match="chunk_sise"):
        ChunkingConfig.from_params({"chunk_sise": 100})


# -- the hard limit -------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    ChunkingConfig(),
    ChunkingConfig(chunk_size=64, chunk_overlap=16),
    ChunkingConfig(chunk_size=32, chunk_overlap=8, max_tokens=40),
    ChunkingConfig(strategy="fixed", chunk_size=256, chunk_overlap=64),
    ChunkingConfig(strategy="fixed", chunk_size=48, chunk_overlap=12, max_tokens=64),
], ids=lambda c: f"{c.strategy}-{c.chunk_size}-{c.chunk_overlap}-{c.max_tokens}")
def test_fixture_corpus_chunks_never_exceed_max_tokens(corpus, tokenizer, config):
    chunks = chunk_documents(corpus, config, tokenizer)
    assert_within_limit(chunks, tokenizer, config.max_tokens)
    assert {c.doc_id for c in chunks} == {d.doc_id for d in corpus}
    for doc_id, group in itertools.groupby(chunks, key=lambda c: c.doc_id):
        group = list(group)
        assert [c.position for c in group] == list(range(len(group)))
        source = next(d for d in corpus if d.doc_id == doc_id)
        assert all(c.doc_hash == source.content_hash and c.source == "fixture" for c in group)
    assert len({c.chunk_id for c in chunks}) == len(chunks)


ADVERSARIAL = {
    "huge paragraph": [Block("paragraph", sentences(400))],
    "huge sentence": [Block("paragraph", " ".join(["segment"] * 3000))],
    "huge code block": [Block("code", "\n".join(f"    SELECT col_{i}, count(*) FROM t_{i} GROUP BY 1;"
                                                for i in range(600)))],
    "code line without newlines": [Block("code", "x=" + "+".join(f"f{i}(a,b)" for i in range(2000)))],
    "no whitespace": [Block("paragraph", "a" * 20000)],
    "no whitespace, many tokens": [Block("paragraph", "ab1.cd2," * 3000)],
    "cjk": [Block("paragraph", "数据库索引提高查询速度" * 400)],
    "very long heading": [Block("heading", " ".join(["Configuration"] * 800), level=1),
                          Block("paragraph", sentences(30))],
    "deep headings": [b for i in range(1, 7) for b in (Block("heading", f"Level {i} " + "word " * 60, level=i),
                                                       Block("paragraph", sentences(3)))],
    "huge table": [Block("table", "\n".join(f"name_{i} | {i * 7} | a cell with several words" for i in range(500)))],
    "headings only": [Block("heading", "Only a heading", level=1), Block("heading", "And another", level=2)],
}


@pytest.mark.parametrize("strategy", ["structure", "fixed"])
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_adversarial_inputs_stay_within_the_limit(tokenizer, case, strategy):
    config = ChunkingConfig(strategy=strategy, chunk_size=128, chunk_overlap=24, max_tokens=256)
    long_title = case == "very long heading"
    document = doc(ADVERSARIAL[case], title=" ".join(["Title"] * 500) if long_title else "Adversarial")
    chunks = chunk_document(document, config, tokenizer)
    assert_within_limit(chunks, tokenizer, config.max_tokens)
    # no chunk is a giant string hiding behind a few [UNK] tokens
    assert max(len(c.text) for c in chunks) <= 128 * 16


def test_long_heading_path_keeps_its_most_specific_end(tokenizer):
    blocks = [Block("heading", " ".join(["Preamble"] * 300), level=1), Block("heading", "Checkpoints", level=2),
              Block("paragraph", "A checkpoint flushes dirty pages.")]
    (chunk,) = chunk_document(doc(blocks), ChunkingConfig(), tokenizer)
    assert chunk.heading_path.endswith("Preamble > Checkpoints")
    assert chunk.title == "Checkpoints"
    assert model_tokens(tokenizer, chunk.heading_path) <= 256 // 4 + 2


# -- structure ------------------------------------------------------------------------------------


def test_headings_start_chunks_and_build_the_heading_path(corpus, tokenizer):
    rst = next(d for d in corpus if d.doc_id == "fixture:guides/configuration.rst")
    chunks = chunk_document(rst, ChunkingConfig(chunk_size=200, chunk_overlap=0), tokenizer)
    assert [(c.title, c.heading_path) for c in chunks] == [
        ("Configuring Tern", "Configuring Tern"),
        ("Storage settings", "Configuring Tern > Storage settings"),
        ("Listening addresses", "Configuring Tern > Network settings > Listening addresses"),
        ("Timeouts", "Configuring Tern > Network settings > Timeouts"),
    ]
    # the doc title is not repeated when the first heading is the title
    assert chunks[0].embedding_text.startswith("Configuring Tern\nTern reads its settings")


def test_html_title_joins_the_heading_path(corpus, tokenizer):
    wal = next(d for d in corpus if d.doc_id == "fixture:reference/wal.html")
    chunks = chunk_document(wal, ChunkingConfig(), tokenizer)
    assert [c.heading_path for c in chunks] == ["Write-ahead log", "Write-ahead log > Checkpoints"]


def test_small_blocks_are_packed_and_code_stays_whole(corpus, tokenizer):
    faq = next(d for d in corpus if d.doc_id == "fixture:faq.txt")
    (chunk,) = chunk_document(faq, ChunkingConfig(chunk_size=200, chunk_overlap=0), tokenizer)
    assert chunk.text == "\n\n".join(b.text for b in faq.blocks[1:])
    cli = next(d for d in corpus if d.doc_id == "fixture:reference/cli.html")
    code = next(b.text for b in cli.blocks if b.kind == "code")
    chunks = chunk_document(cli, ChunkingConfig(chunk_size=64, chunk_overlap=0), tokenizer)
    assert sum(code in c.text for c in chunks) == 1
    assert any(c.title == "ternctl get" and code in c.text for c in chunks)


def test_without_overlap_every_word_lands_in_exactly_one_chunk(corpus, tokenizer):
    config = ChunkingConfig(chunk_size=48, chunk_overlap=0)
    for document in corpus:
        chunks = chunk_document(document, config, tokenizer)
        body = " ".join(b.text for b in document.blocks if b.kind != "heading")
        assert " ".join(c.text for c in chunks).split() == body.split(), document.doc_id


def test_oversized_paragraph_splits_at_sentences_with_overlap(tokenizer):
    text = sentences(60)
    config = ChunkingConfig(chunk_size=64, chunk_overlap=16)
    chunks = chunk_document(doc([Block("paragraph", text)]), config, tokenizer)
    assert len(chunks) > 3
    for previous, chunk in itertools.pairwise(chunks):
        # the next chunk starts with the tail of the previous one (whole words, <= overlap tokens)
        overlap = next(chunk.text[:k] for k in range(len(chunk.text), 0, -1)
                       if previous.text.endswith(chunk.text[:k]))
        assert overlap.strip()
        assert len(tokenizer(overlap, add_special_tokens=False)["input_ids"]) <= 16
    no_overlap = chunk_document(doc([Block("paragraph", text)]), ChunkingConfig(chunk_size=64, chunk_overlap=0),
                                tokenizer)
    assert all(c.text.endswith(".") for c in no_overlap)  # sentence boundaries
    assert " ".join(c.text for c in no_overlap) == text


def test_oversized_code_block_splits_at_lines(tokenizer):
    lines = [f"INSERT INTO weather VALUES ('city_{i}', {i}, {i + 10}, 0.{i % 10});" for i in range(80)]
    chunks = chunk_document(doc([Block("code", "\n".join(lines))]),
                            ChunkingConfig(chunk_size=96, chunk_overlap=0), tokenizer)
    assert len(chunks) > 2
    assert [line for c in chunks for line in c.text.split("\n")] == lines


# -- fixed windows --------------------------------------------------------------------------------


def test_fixed_windows_have_size_and_overlap(tokenizer):
    text = " ".join(f"word{i}" for i in range(600))
    chunks = chunk_document(doc([Block("paragraph", text)], title="Fixed"),
                            ChunkingConfig(strategy="fixed", chunk_size=64, chunk_overlap=16), tokenizer)
    assert all(c.heading_path == "Fixed" and c.title == "Fixed" for c in chunks)
    sizes = [len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in chunks]
    assert max(sizes) <= 64 and min(sizes[:-1]) >= 56  # windows end on word boundaries
    assert " ".join(chunks[0].text.split()[:3]) == "word0 word1 word2"
    assert chunks[-1].text.endswith("word599")
    for previous, chunk in itertools.pairwise(chunks):
        words = previous.text.split()
        shared = max(k for k in range(0, 20) if k == 0 or words[-k:] == chunk.text.split()[:k])
        overlap_tokens = len(tokenizer(" ".join(words[-shared:]), add_special_tokens=False)["input_ids"])
        assert 8 <= overlap_tokens <= 16  # up to 16 tokens of overlap, in whole words
        assert chunk.text.split()[shared] not in words  # and then new text


# -- determinism ----------------------------------------------------------------------------------


def test_chunking_is_deterministic(corpus, tokenizer):
    config = ChunkingConfig(chunk_size=64, chunk_overlap=16)
    first = [c.to_row() for c in chunk_documents(corpus, config, tokenizer)]
    again = [c.to_row() for c in chunk_documents(corpus, config, tokenizer)]
    assert first == again


def test_postgres_manual_pages_chunk_within_the_limit(tokenizer):
    from ragops.demo_corpus import DemoCorpusMissing, demo_source_spec

    try:
        spec = demo_source_spec(subset=40)
    except DemoCorpusMissing as exc:
        pytest.skip(f"the demo corpus is absent: {exc}")
    docs = load_source(spec, on_error="fail").documents
    chunks = chunk_documents(docs, ChunkingConfig(), tokenizer)
    assert_within_limit(chunks, tokenizer, 256)
    # DocBook section numbers become the heading path ("Chapter 8. Data Types > 8.1. Numeric Types")
    assert any(c.heading_path.startswith("8.1. Numeric Types > 8.1.1. Integer Types") for c in chunks)
