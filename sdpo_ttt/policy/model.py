"""The Policy: base model + two LoRA adapters (student, EMA teacher) in one peft model.

What the loop needs from a model: the prompt ids for a problem, batched sampling that keeps the
exact token ids, final hidden states of given completion tokens under a given context (student with
grad, teacher under no_grad) and the LoRA bookkeeping (train, save, load, sync, EMA).

Rules that keep student and teacher honest:
- Adapter switching goes through `using_adapter(name)`, which restores the previous adapter and re-asserts
  requires_grad (peft's set_adapter flips it): the student LoRA is always trainable, the teacher never.
- `hidden_states` runs in train mode (LoRA dropout, gradient checkpointing) iff autograd is enabled, and then
  leaves the model in train mode so that backward's recomputation matches; else in eval mode. Sampling and `token_logprobs` always run in eval mode.
- Sequences are laid out as [left-pad | prompt | completion | right-pad] with position ids from the
  attention mask, the same layout `generate` uses, so scoring reproduces sampling log-probs.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import Tensor

from sdpo_ttt.policy import threads
from sdpo_ttt.errors import ModelUnavailable
from sdpo_ttt.policy import adapters as lora
from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.policy.device import resolve_device, resolve_dtype, rng_devices
from sdpo_ttt.policy.catalog import resolve_model
from sdpo_ttt.policy.prefix import Prefix, checkpointing_keeps_cache, hf_prefix_kv, hf_rest_hidden, rest_layout
from sdpo_ttt.policy.prompting import chat_text, problem_messages
from sdpo_ttt.policy.sampling import choose_sampler
from sdpo_ttt.policy.sampling.base import Draw, Sampler
from sdpo_ttt.policy.stop import CodeStop

if TYPE_CHECKING:
    from peft import PeftModel

STUDENT = "student"
TEACHER = "teacher"


@dataclass
class Completion:
    """One sampled attempt, with its token ids exactly as sampled (EOS included if generated; nothing after the
    token that closed its code block: policy/stop.py)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str  # decoded completion, special tokens skipped
    finish_reason: str  # "code" (its code block closed) | "eos" | "length" (cut at the token limit, the code block open)
    logprobs: list[float] | None = None  # log p of each completion token under the sampling distribution (if asked)


@dataclass
class LoadInfo:
    label: str
    path: str
    load_s: float
    n_params: int
    n_trainable: int


class Policy:
    """Base model + peft LoRA adapters "student" (trainable) and "teacher" (EMA, never trained)."""

    def __init__(self, cfg: PolicyConfig, tokenizer: Any, model: "PeftModel", device: torch.device, dtype: torch.dtype, info: LoadInfo) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.dtype = dtype
        self.info = info
        gen = model.get_base_model().generation_config
        eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
        self.eos_ids: list[int] = [int(x) for x in eos if x is not None]
        self.pad_id: int = int(gen.pad_token_id if gen.pad_token_id is not None else self.eos_ids[0])
        self._decoder: Any = None  # policy/decode.Decoder, made on first use when the decode loop is the sampler
        self.code_stop = CodeStop(self.decode)  # where every attempt ends: the closing fence of its code block
        self.sampler: Sampler = choose_sampler(self)  # chosen once: the decode loop (CPU), generate, or vLLM

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, cfg: PolicyConfig, *, seed: int = 0) -> "Policy":
        """Load the base model, add the student LoRA (peft default init: B = 0, so ΔW = 0) and the teacher (= student)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, device)
        if cfg.backend == "vllm":  # refuse what vLLM cannot do before loading anything
            from sdpo_ttt.policy.vllm_backend import vllm_max_lora_rank

            if device.type != "cuda":
                raise ModelUnavailable("the vLLM backend needs a CUDA GPU", "use --backend hf on this machine")
            vllm_max_lora_rank(cfg.lora_rank)
        where = resolve_model(cfg.model, hf_folder=cfg.backend == "vllm")  # vLLM serves a folder with config.json
        t0 = time.perf_counter()
        kw: dict[str, Any] = {"local_files_only": where.local_only}
        if where.gguf_file:
            kw["gguf_file"] = where.gguf_file
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no per-tensor "Loading weights" bar on every start
        try:
            tok = AutoTokenizer.from_pretrained(where.path, **kw)
            base = AutoModelForCausalLM.from_pretrained(where.path, dtype=dtype, attn_implementation="sdpa", **kw)
        except (OSError, ValueError) as e:
            hint = "check the name/path; HF ids need internet the first time" if not where.local_only else "run `sdpo-ttt models prepare` again"
            raise ModelUnavailable(f"cannot load model {cfg.model!r}: {str(e).splitlines()[0]}", hint) from None
        return cls.from_base(cfg, tok, base, device=device, dtype=dtype, label=where.label, path=where.path, seed=seed, t0=t0)

    @classmethod
    def from_base(cls, cfg: PolicyConfig, tok: Any, base: Any, *, device: torch.device, dtype: torch.dtype, label: str, path: str,
                  seed: int = 0, t0: float | None = None) -> "Policy":
        """The Policy over an already-built transformers model and its tokenizer: Policy.load's second half.

        Also used by random_model.random_policy, which builds a 1.5B-8B shape directly on the GPU (nothing written).
        """
        from peft import LoraConfig, get_peft_model
        from transformers import GenerationConfig

        t0 = time.perf_counter() if t0 is None else t0
        base.to(device)
        base.eval()
        tok.padding_side = "left"
        eos = _eos_ids(tok, base)
        if tok.pad_token_id is None:
            tok.pad_token = tok.convert_ids_to_tokens(eos[0])
        # A clean generation config: no sampling defaults (top_k, repetition penalty...) inherited from the hub.
        base.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=tok.pad_token_id)
        if cfg.checkpointing_on(device.type == "cuda"):
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.config.use_cache = False

        common = dict(lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_targets), bias="none", task_type="CAUSAL_LM")
        rt = cfg.effective_teacher_rank
        with torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(seed)
            try:
                with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5 (is_gradient_checkpointing)
                    warnings.simplefilter("ignore", FutureWarning)
                    model = get_peft_model(base, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, **common), adapter_name=STUDENT)
            except ValueError as e:
                raise ModelUnavailable(f"LoRA targets {cfg.lora_targets} do not fit model {cfg.model!r}: {e}",
                                       "pass --lora-targets with module names of this model") from None
            # Same scaling s = alpha/r for the teacher so that copying the student is exact.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                model.add_adapter(TEACHER, LoraConfig(r=rt, lora_alpha=cfg.lora_alpha * rt / cfg.lora_rank, **common))
        model.set_adapter(STUDENT)
        model.eval()
        n_params = sum(p.numel() for p in model.parameters())
        info = LoadInfo(label, path, time.perf_counter() - t0, n_params, 0)
        policy = cls(cfg, tok, model, device, dtype, info)
        policy._fix_grads()
        policy.sync_teacher()
        info.n_trainable = sum(p.numel() for p in policy.trainable_parameters())
        return policy

    # ---------------------------------------------------------------- adapters
    def _fix_grads(self) -> None:
        for name, p in self.model.named_parameters():
            if ".lora_" in name:
                p.requires_grad_(f".{STUDENT}." in name)

    @contextmanager
    def using_adapter(self, name: str | None) -> Iterator[None]:
        """Run the body with adapter `name` active (None: adapters disabled = base model); restore afterwards."""
        if name is None:
            with self.model.disable_adapter():
                yield
            return
        if name not in self.model.peft_config:
            raise ValueError(f"unknown adapter {name!r}; have {list(self.model.peft_config)}")
        previous = self.model.active_adapter
        if previous != name:
            self.model.set_adapter(name)
            self._fix_grads()
        try:
            yield
        finally:
            if previous != name:
                self.model.set_adapter(previous)
                self._fix_grads()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The student LoRA's parameters (A and B of every targeted projection)."""
        return [p for n, p in self.model.named_parameters() if ".lora_" in n and f".{STUDENT}." in n]

    def sync_teacher(self) -> None:
        """teacher := student (as an effective update ΔW; the teacher's extra rank is zeroed)."""
        lora.sync(self.model, TEACHER, STUDENT)

    def ema_update_teacher(self, rate: float) -> float:
        """teacher := (1 − rate)·teacher + rate·student on ΔW = s·B·A (see adapters.py). Returns the truncation error."""
        return lora.ema_update(self.model, TEACHER, STUDENT, rate)

    def save_adapter(self, name: str, directory: Path) -> None:
        lora.save_adapter(self.model, name, Path(directory))

    def load_adapter(self, name: str, directory: Path) -> None:
        lora.load_adapter(self.model, name, Path(directory))

    # ---------------------------------------------------------------- prompts
    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the messages through the chat template, ending with the assistant generation prompt."""
        text = chat_text(self.tokenizer, messages, thinking=self.cfg.thinking)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def problem_messages(self, problem: Any) -> list[dict[str, str]]:
        return problem_messages(problem, self.cfg.system_prompt, self.cfg.user_template)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---------------------------------------------------------------- sampling
    def left_pad(self, seqs: list[list[int]]) -> tuple[Tensor, Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def sample(
        self,
        prompts: list[list[int]],
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        seed: int,
        adapter: str | None = STUDENT,
        batch_size: int | None = None,
        return_logprobs: bool = False,
        progress: Callable[[int], None] | None = None,
        stop_at_code: bool = True,
    ) -> list[Completion]:
        """One completion per prompt (repeat a prompt B times for B samples).

        By the sampler chosen when the policy was built (policy/sampling/), under the given adapter. Reproducible for a
        seed (the global RNG state is forked, not consumed). temperature 0 = greedy. batch_size splits the
        prompts into chunks (chunk i uses seed + i). return_logprobs keeps the processed scores of every step
        (memory B·T·V floats: for tests and short runs) and returns log p of each sampled token under the
        sampling distribution (temperature and top-p applied). progress, if given, is called with the number of
        tokens generated since its last call (summed over the still-unfinished sequences), as decoding goes;
        every sampler here must call it so that the calls of one `sample` add up to its completion tokens.
        stop_at_code (the default): a row ends on the token that closes its code block (policy/stop.py). Off,
        rows run to EOS or the limit as before issue 26 (to measure what the stop saves:
        benchmarks/answer_is_code.py); the update still trains only on the tokens through the fence.
        """
        if not prompts:
            return []
        if any(not p for p in prompts):
            raise ValueError("empty prompt")
        if return_logprobs and self.sampler.name == "vllm":
            raise ValueError("return_logprobs is only supported by the hf backend")
        draw = Draw(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, adapter=adapter,
                    return_logprobs=return_logprobs, progress=progress, stop=self.code_stop if stop_at_code else None)
        drawn = self.sampler.sample(prompts, draw, batch_size)
        return self._completions(drawn.prompts, drawn.rows, drawn.logprobs, stop_at_code)

    def close(self) -> None:
        """Shut down the sampler's engine (vLLM: its process and GPU memory) so the next model gets them (idempotent)."""
        self.sampler.close()

    def decoder(self) -> Any:
        """The CPU decode loop's engine for this model (its packed weights built on first use), or None where it does not
        apply (GPU, vLLM, other architectures, or a sampler other than the decode loop was chosen). The no-grad scoring
        passes (teacher, token_logprobs) run on it too."""
        if self.sampler.name != "decode-loop":
            return None
        if self._decoder is None:
            from sdpo_ttt.policy.decode import Decoder, pack_weights

            self._decoder = Decoder(self.model, pack=pack_weights(self._base), bf16=self.cfg.sampler_dtype != "float32")
        return self._decoder

    def _completions(self, prompts: list[list[int]], new: list[list[int]], lp_steps: list[list[float]] | None,
                     at_code: bool = True) -> list[Completion]:
        """Completions from the new token rows and their per-step log-probs: each row cut (at_code) after the token
        that closed its code block ("code"; whatever a sampler left after it, such as generate's padding, is
        dropped), else after its first EOS ("eos"), else kept whole ("length")."""
        eos = set(self.eos_ids)
        comps: list[Completion] = []
        for b, row in enumerate(new):
            cut = next((t for t, x in enumerate(row) if x in eos), None)
            ids_b = row[: cut + 1] if cut is not None else row
            code = self.code_stop.through_code(ids_b) if at_code else None
            if code is not None:
                ids_b = ids_b[:code]
            comps.append(Completion(
                prompt_ids=list(prompts[b]),
                completion_ids=ids_b,
                text=self.decode(ids_b),
                finish_reason="code" if code is not None else "eos" if cut is not None else "length",
                logprobs=lp_steps[b][: len(ids_b)] if lp_steps is not None else None,
            ))
        return comps

    # ---------------------------------------------------------------- scoring
    @property
    def _base(self) -> torch.nn.Module:
        return self.model.get_base_model()

    @property
    def lm_head_weight(self) -> Tensor:
        """[V, H] output embedding (tied or not): logits = hidden @ W.T (no bias, no softcapping in supported models)."""
        return self._base.get_output_embeddings().weight

    def prefix(self, ids: list[int], *, adapter: str | None) -> Prefix | None:
        """The K, V of a prompt prefix that several rows share, for `hidden_states(..., prefix=)` (policy/prefix.py).

        Autograd iff torch.is_grad_enabled(). Gradient checkpointing works with it (the cache is only read, so a
        layer's replay in backward is exact), except on a transformers without `_can_checkpoint_with_cache`, which
        drops a checkpointed layer's cache: then None with autograd, and the caller runs the rows unshared.
        """
        grad = torch.is_grad_enabled()
        fast = None if grad else self.decoder()
        if fast is not None:
            threads.adapt()
            return Prefix.of(ids, adapter, fast.prefix_kv(ids, adapter))
        decoder = self._base.get_decoder()
        if grad and any(getattr(m, "gradient_checkpointing", False) for m in decoder.layers) and not checkpointing_keeps_cache(decoder):
            return None
        with self._mode(train=grad), self.using_adapter(adapter):
            kv = hf_prefix_kv(decoder, self._base.config, ids, self.device)
        return Prefix.of(ids, adapter, kv)

    @contextmanager
    def _mode(self, *, train: bool) -> Iterator[None]:
        """Train mode for a forward with autograd, left on (backward may replay it: see `hidden_states`); eval mode
        for one without, restored afterwards."""
        was_training = self.model.training
        self.model.train(train)
        try:
            yield
        finally:
            if not train:
                self.model.train(was_training)

    def hidden_states(self, prompts: list[list[int]], completions: list[list[int]], *, adapter: str | None,
                      prefix: Prefix | None = None) -> tuple[Tensor, Tensor]:
        """Final (post-norm) hidden states that predict each completion token under its prompt.

        Returns (h [B, T, H] in the model dtype, mask [B, T] bool), T = longest completion; h[b, t]
        predicts completions[b][t]. Autograd iff torch.is_grad_enabled() (then the model runs in train
        mode: LoRA dropout and gradient checkpointing apply). adapter None = base model. prefix (from
        `Policy.prefix` under the same adapter and grad mode, every prompt starting with its ids): the shared part
        is read from its K, V instead of being recomputed per row; the same hidden states up to float rounding.
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        B = len(prompts)
        T = max((len(c) for c in completions), default=0)
        H = self._base.config.get_text_config().hidden_size
        mask = torch.zeros((B, T), dtype=torch.bool, device=self.device)
        for b, c in enumerate(completions):
            mask[b, : len(c)] = True
        if B == 0 or T == 0:
            return torch.zeros((B, T, H), dtype=self.dtype, device=self.device), mask
        if any(not p for p in prompts):
            raise ValueError("empty prompt")
        if prefix is not None and not prefix.fits(prompts, adapter):
            raise ValueError(f"the prefix ({len(prefix.ids)} tokens, adapter {prefix.adapter!r}) does not start every "
                             f"prompt under adapter {adapter!r}")
        fast = None if torch.is_grad_enabled() else self.decoder()
        if fast is not None:  # no autograd (teacher, scoring) on CPU: the sampler's forward (oneDNN, LoRA unmerged)
            threads.adapt()
            return fast.hidden_states(prompts, completions, adapter, self.pad_id, prefix=prefix)
        if prefix is not None:
            rest = rest_layout(prompts, completions, len(prefix.ids), self.pad_id, self.device)
            with self._mode(train=torch.is_grad_enabled()), self.using_adapter(adapter):
                return hf_rest_hidden(self._base.get_decoder(), self._base.config, prefix, rest), mask
        P = max(len(p) for p in prompts)
        L = P + T - 1  # the last completion token is predicted, never fed
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        att = torch.zeros((B, L), dtype=torch.long)
        for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            seq = list(p) + list(c[:-1]) if c else list(p)
            ids[b, P - len(p): P - len(p) + len(seq)] = torch.tensor(seq, dtype=torch.long)
            att[b, P - len(p): P - len(p) + len(seq)] = 1
        ids, att = ids.to(self.device), att.to(self.device)
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        decoder = self._base.get_decoder()
        if torch.is_grad_enabled():
            # Train mode stays on until the caller's backward has run: gradient checkpointing recomputes this forward
            # during backward, and with LoRA dropout an eval-mode recomputation differs (CheckpointError). Every
            # no-grad path (sampling, scoring) sets eval mode itself.
            self.model.train(True)
            with self.using_adapter(adapter):
                h = decoder(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=False).last_hidden_state
            return h[:, P - 1: P - 1 + T], mask
        was_training = self.model.training
        self.model.train(False)
        try:
            with self.using_adapter(adapter):
                h = decoder(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=False).last_hidden_state
        finally:
            self.model.train(was_training)
        return h[:, P - 1: P - 1 + T], mask

    @torch.no_grad()
    def token_logprobs(self, prompts: list[list[int]], completions: list[list[int]], *, adapter: str | None, chunk: int = 256) -> list[Tensor]:
        """log p(completion token | prompt, earlier tokens) for each completion (fp32, no grad, temperature 1)."""
        h, mask = self.hidden_states(prompts, completions, adapter=adapter)
        W = self.lm_head_weight.float()
        out: list[Tensor] = []
        for b, c in enumerate(completions):
            n = len(c)
            tgt = torch.tensor(c, dtype=torch.long, device=self.device)
            parts = []
            for s in range(0, n, chunk):
                logits = h[b, s: s + chunk].float() @ W.T
                parts.append(torch.log_softmax(logits, dim=-1).gather(1, tgt[s: s + chunk, None]).squeeze(1))
            out.append(torch.cat(parts) if parts else torch.zeros(0, device=self.device))
        return out


def _eos_ids(tok: Any, base: Any) -> list[int]:
    """The model's generation EOS ids plus the tokenizer's EOS (end of the assistant turn)."""
    ids: list[int] = []
    gen_eos = getattr(base.generation_config, "eos_token_id", None)
    for x in [*(gen_eos if isinstance(gen_eos, list) else [gen_eos]), tok.eos_token_id]:
        if isinstance(x, int) and x not in ids:
            ids.append(x)
    if not ids:
        raise ModelUnavailable("the model has no end-of-sequence token", "use an instruct/chat model")
    return ids
