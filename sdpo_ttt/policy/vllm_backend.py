"""Optional vLLM sampling backend (GPU only; `pip install sdpo-ttt[vllm]`), colocated with the training model.

vLLM serves the policy's base weights from the model folder on the same GPU with LoRA enabled and a capped
share of GPU memory. vLLM 0.33 runs its engine core in a separate process (VLLM_ENABLE_V1_MULTIPROCESSING, on by
default), started with `spawn` because CUDA is already initialised here (the training model is on the GPU); it
inherits this process's environment and file descriptors at start. That is how it is pointed at the training
GPU (CUDA_VISIBLE_DEVICES) and how its logs are kept off stdout (VLLM_LOGGING_STREAM, and its stdout descriptor
pointed at stderr), so that `solve --json` still prints one JSON object. A spawned child re-imports the parent's
main module, so vLLM is driven from a real program (the `sdpo-ttt` CLI), never from `python - <<EOF`.
`close()` shuts the engine down explicitly; nothing waits for the garbage collector to free its GPU memory.

An attempt ends at the closing fence of its code block (policy/stop.py). vLLM cannot be asked that directly:
its stop strings match anywhere, the opening fence included. So a row stops at every fence string ("```",
"~~~"), and `sample_until_code` continues the rows whose code block is still open from where they stopped
(prompt + tokens so far, the remaining token budget; prefix caching makes the re-read cheap), until the block
closes, an EOS, or the limit. The tokens are still exactly the sampled ones.

The trained adapter reaches vLLM by hot-swap, never by merging weights or restarting: after each update the
adapter is saved (safetensors, peft format) into a fresh versioned folder and served under a NEW LoRA
request id, so vLLM cannot reuse the stale cached weights of an older id. Whether the adapter changed is
decided by a cheap fingerprint of its parameters, so sampling twice without an update does not reload it.

This module never imports the Policy (model.py imports it lazily): the sampler holds no reference to the
policy, and the policy is passed to `sample` as the source of the adapter. Only `VLLMSampler` touches vLLM;
the rest (rank, dtype, device, versions, fingerprints, output conversion) is plain code tested without it.
benchmarks/gpu_smoke.sh checks the rest on a GPU machine.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, Iterator, NamedTuple, Protocol

import torch

from sdpo_ttt.errors import ConfigError, ModelUnavailable

# vllm/config/lora.py: `MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]`
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

_VLLM_DTYPES = {torch.bfloat16: "bfloat16", torch.float16: "float16"}  # its LoRA kernels take no float32


def vllm_max_lora_rank(r: int) -> int:
    """The smallest max_lora_rank vLLM accepts that serves a rank-r adapter (only the student's r is served)."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= r:
            return allowed
    raise ConfigError(
        f"--lora-rank {r} is above {VLLM_LORA_RANKS[-1]}, the largest LoRA rank vLLM can serve",
        f"pass --lora-rank {VLLM_LORA_RANKS[-1]} or less, or sample with --backend hf",
    )


def vllm_dtype(dtype: torch.dtype) -> str:
    """vLLM's name for the training dtype: the sampler runs the weights in the dtype the policy trains in."""
    try:
        return _VLLM_DTYPES[dtype]
    except KeyError:
        raise ModelUnavailable(f"vLLM cannot sample with LoRA in {dtype}", "use --dtype bfloat16 (or float16), or --backend hf") from None


def engine_visible_devices(device: torch.device, visible: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for the spawned engine so that its GPU 0 is the policy's `device`.

    vLLM places a single-GPU engine on its first visible GPU and ignores a device index, so `cuda:N` is
    honoured by showing the engine only GPU N, counted in this process's own visible list when one is set.
    """
    index = device.index if device.index is not None else (torch.cuda.current_device() if torch.cuda.is_initialized() else 0)
    ids = [x.strip() for x in visible.split(",") if x.strip()] if visible else None
    if ids is None:
        return str(index)
    if index >= len(ids):
        raise ModelUnavailable(f"device cuda:{index}: CUDA_VISIBLE_DEVICES={visible!r} shows only {len(ids)} GPU(s)", "pick a lower index")
    return ids[index]


def check_model_folder(path: str) -> None:
    """vLLM reads config.json from the folder it serves (a .gguf's folder has none: serve the converted one)."""
    p = Path(path)
    if p.exists() and not (p / "config.json").is_file():
        raise ModelUnavailable(
            f"{p} has no config.json, so vLLM cannot serve it",
            "pass a Hugging Face model folder, an HF id or a built-in name (a .gguf is converted to a folder for --backend vllm)",
        )


@contextlib.contextmanager
def engine_environment(device: torch.device) -> Iterator[None]:
    """While the engine starts: it sees only the training GPU, logs to stderr, and its stdout is our stderr.

    The spawned engine process inherits the environment and file descriptors of this moment; both are
    restored afterwards, so nothing else in this process changes.
    """
    saved = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "VLLM_LOGGING_STREAM")}
    os.environ["CUDA_VISIBLE_DEVICES"] = engine_visible_devices(device, saved["CUDA_VISIBLE_DEVICES"])
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    sys.stdout.flush()
    stdout_copy = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Python-level prints too, whatever sys.stdout is
            yield
    finally:
        sys.stdout.flush()
        os.dup2(stdout_copy, 1)
        os.close(stdout_copy)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class AdapterSource(Protocol):
    """What the publisher needs from a policy: its parameters and a way to save one adapter."""

    @property
    def model(self) -> Any: ...

    def save_adapter(self, name: str, directory: Path) -> None: ...


@dataclass(frozen=True)
class LoraRef:
    """One published adapter version: what a vLLM LoRARequest needs."""

    name: str
    id: int  # >= 1, unique per published version
    path: Path


def fingerprint(params: list[torch.Tensor]) -> tuple[float, ...]:
    """Cheap identity of an adapter's current values (sum and norm of every tensor, float64)."""
    with torch.no_grad():
        return tuple(float(x) for p in params for x in (p.double().sum(), p.double().norm()))


@dataclass
class AdapterPublisher:
    """Saves an adapter into root/<adapter>-v<N>/ whenever it changed and hands out a new request id."""

    root: Path
    keep: int = 2  # versions kept on disk (the one being served and the previous one)
    _next_id: int = 1
    _last: dict[str, tuple[tuple[float, ...], LoraRef]] = field(default_factory=dict)
    _published: list[LoraRef] = field(default_factory=list)

    def publish(self, source: AdapterSource, adapter: str) -> LoraRef:
        params = [p for n, p in source.model.named_parameters() if ".lora_" in n and f".{adapter}." in n]
        fp = fingerprint(params)
        last = self._last.get(adapter)
        if last is not None and last[0] == fp:
            return last[1]
        ref = LoraRef(name=f"{adapter}-v{self._next_id}", id=self._next_id, path=Path(self.root) / f"{adapter}-v{self._next_id:05d}")
        self._next_id += 1
        source.save_adapter(adapter, ref.path)
        self._last[adapter] = (fp, ref)
        self._published.append(ref)
        self._prune()
        return ref

    def _prune(self) -> None:
        live = {ref.id for _, ref in self._last.values()}
        while len(self._published) > self.keep + len(live):
            old = self._published.pop(0)
            if old.id not in live:
                shutil.rmtree(old.path, ignore_errors=True)
            else:
                self._published.append(old)
                break


class Sampled(NamedTuple):
    """One vLLM attempt in the fields of the policy's Completion (model.py builds the Completion)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str  # vLLM's text (empty from sample_until_code: the policy decodes the ids itself)
    finish_reason: str  # "eos" | "length" | "code" (its code block closed)


FENCES = ["```", "~~~"]  # the stop strings: where a code block may close (or open)


class Round(NamedTuple):
    """What one vLLM call gave a row: its new tokens, finish_reason and stop_reason (vLLM's CompletionOutput)."""

    token_ids: list[int]
    finish_reason: str | None
    stop_reason: Any


def sample_until_code(generate: Callable[[list[int], list[list[int]], list[int], int], list[Round]], prompts: list[list[int]],
                      max_new_tokens: int, closed: Callable[[list[int]], bool] | None, eos_ids: list[int]) -> list[Sampled]:
    """Sample each prompt until its code block closes (closed(tokens so far)), an EOS or max_new_tokens.

    generate(rows, prompts, max_tokens per prompt, round) runs one vLLM call (rows: which of `prompts` each is)
    that stops a row at a fence string (with closed None: at EOS or the limit only). A row stopped at a fence
    whose block is still open goes on in the next round from prompt + its tokens so far."""
    tokens: list[list[int]] = [[] for _ in prompts]
    result: list[Sampled | None] = [None] * len(prompts)
    pending = list(range(len(prompts)))
    rnd = 0
    while pending:
        outs = generate(pending, [prompts[i] + tokens[i] for i in pending], [max_new_tokens - len(tokens[i]) for i in pending], rnd)
        going = []
        for i, o in zip(pending, outs, strict=True):
            tokens[i] += list(o.token_ids)
            at_fence = o.finish_reason == "stop" and isinstance(o.stop_reason, str)
            if closed is not None and at_fence and closed(tokens[i]):
                result[i] = Sampled(list(prompts[i]), tokens[i], "", "code")
            elif at_fence and len(tokens[i]) < max_new_tokens:
                going.append(i)
            else:
                reason = "length" if at_fence else o.finish_reason
                result[i] = to_sampled(prompts[i], tokens[i], reason, None if at_fence else o.stop_reason, eos_ids, "")
        pending, rnd = going, rnd + 1
    return [r for r in result if r is not None]


def to_sampled(prompt: list[int], token_ids: list[int], finish_reason: str | None, stop_reason: Any,
               eos_ids: list[int], text: str) -> Sampled:
    """A vLLM CompletionOutput as our attempt: ids exactly as sampled, EOS kept when it ended the attempt."""
    ids = list(token_ids)
    if finish_reason == "stop":
        if not ids or ids[-1] not in eos_ids:
            ids.append(stop_reason if isinstance(stop_reason, int) else eos_ids[0])
        return Sampled(list(prompt), ids, text, "eos")
    return Sampled(list(prompt), ids, text, "length")


class VLLMSampler:
    """A vLLM engine over the policy's base weights, sampling with the policy's current LoRA adapters."""

    def __init__(self, model_path: str, *, device: torch.device, dtype: torch.dtype, lora_rank: int, eos_ids: list[int],
                 work_dir: Path, gpu_memory: float = 0.4, max_model_len: int | None = None, seed: int = 0) -> None:
        if device.type != "cuda":
            raise ModelUnavailable("the vLLM backend needs a CUDA GPU", "use --backend hf on this machine")
        max_rank = vllm_max_lora_rank(lora_rank)  # errors before anything starts
        dtype_name = vllm_dtype(dtype)
        check_model_folder(model_path)
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0" and engine_visible_devices(device, None) != "0":
            raise ModelUnavailable(f"vLLM in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0) cannot use {device}",
                                   "unset VLLM_ENABLE_V1_MULTIPROCESSING, or start with CUDA_VISIBLE_DEVICES=<gpu> --device cuda")
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # read when vllm is first imported
        try:
            from vllm import LLM
        except ImportError:
            raise ModelUnavailable("vLLM is not installed", "pip install 'sdpo-ttt[vllm]' (GPU machines only)") from None
        self.eos_ids = list(eos_ids)
        self.publisher = AdapterPublisher(Path(work_dir))
        self.work_dir = Path(work_dir)
        with engine_environment(device):
            self.llm: Any = LLM(
                model=model_path, tokenizer=model_path, dtype=dtype_name,
                enable_lora=True, max_lora_rank=max_rank, max_loras=2, gpu_memory_utilization=gpu_memory,
                max_model_len=max_model_len, enable_prefix_caching=True, seed=seed,
            )

    def sample(self, source: AdapterSource, prompts: list[list[int]], *, temperature: float, top_p: float, max_new_tokens: int,
               seed: int, adapter: str | None, closed: Callable[[list[int]], bool] | None = None) -> list[Sampled]:
        """One attempt per prompt with adapter `adapter` of `source` (published when it changed); None = base weights.
        closed(tokens so far): whether the attempt's code block closed, where it ends (None: run to EOS or the limit)."""
        if self.llm is None:
            raise RuntimeError("this vLLM sampler was closed")
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        lora = None
        if adapter is not None:
            ref = self.publisher.publish(source, adapter)
            lora = LoRARequest(ref.name, ref.id, str(ref.path))
        stop = FENCES if closed is not None else None

        def generate(rows: list[int], batch: list[list[int]], max_tokens: list[int], rnd: int) -> list[Round]:
            params = [SamplingParams(temperature=temperature, top_p=top_p, max_tokens=m, seed=seed * 100_003 + r + rnd * 7_919,
                                     stop_token_ids=list(self.eos_ids), skip_special_tokens=True, stop=stop,
                                     include_stop_str_in_output=True)
                      for r, m in zip(rows, max_tokens, strict=True)]
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in batch], params, lora_request=lora, use_tqdm=False)
            return [Round(list(o.outputs[0].token_ids), o.outputs[0].finish_reason, o.outputs[0].stop_reason) for o in outs]

        return sample_until_code(generate, prompts, max_new_tokens, closed, self.eos_ids)

    def close(self) -> None:
        """Shut the engine process down and free its GPU memory now (idempotent)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        shutdown = getattr(llm, "shutdown", None)
        if callable(shutdown):
            shutdown()
        else:
            llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        shutil.rmtree(self.work_dir, ignore_errors=True)
