"""The Policy's mechanics on the tiny random model (tests/conftest.py `tiny_model_dir`, seconds): sampling, scoring,
adapters, EMA. The two tests that need a real model's behaviour (where it ends its answer) run on SmolLM2-135M
(marked `model`)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from sdpo_ttt.errors import ModelUnavailable
from sdpo_ttt.policy import catalog as registry
from sdpo_ttt.policy.adapters import dense_update, get_factors, lora_layers
from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.policy.extract import code_closed, code_end, extract_code

MODEL = registry.TEST_MODEL


@pytest.fixture(scope="module")
def one_thread():
    # One intra-op thread: on a small shared CI box, 2 OpenMP threads per process under contention are
    # several times slower than 1 (measured: 5 vs 40 tok/s). Restored after the module.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path, one_thread):
    from sdpo_ttt.policy.model import Policy

    return Policy.load(PolicyConfig(model=str(tiny_model_dir), lora_rank=4, lora_alpha=8, sampler_dtype="float32"), seed=0)


@pytest.fixture(scope="module")
def real_policy(one_thread):
    from sdpo_ttt.policy.model import Policy

    if not registry.is_prepared(MODEL) and not registry.packages_installed(registry.BUILTINS[MODEL]):
        pytest.skip(f"{MODEL} is not installed: {registry.BUILTINS[MODEL].pip_install}")
    return Policy.load(PolicyConfig(model=MODEL, lora_rank=4, lora_alpha=8, sampler_dtype="float32"), seed=0)


@pytest.fixture(scope="module")
def prompt(policy) -> list[int]:
    return policy.chat_ids([{"role": "user", "content": "Write a Python one-liner that prints the sum of 2 and 3."}])


@pytest.fixture(scope="module")
def short_prompt(policy) -> list[int]:
    return policy.chat_ids([{"role": "user", "content": "Name one colour. Answer with one word."}])


def _perturb_student(policy, seed: int, scale: float = 0.05) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.fixture()
def restore_adapters(policy, tmp_path: Path):
    policy.save_adapter("student", tmp_path / "s0")
    policy.save_adapter("teacher", tmp_path / "t0")
    yield
    policy.load_adapter("student", tmp_path / "s0")
    policy.load_adapter("teacher", tmp_path / "t0")


def test_load_state(policy) -> None:
    assert policy.device.type == "cpu" and policy.dtype == torch.float32
    params = policy.trainable_parameters()
    assert params and all(p.requires_grad for p in params)
    trainable = {id(p) for p in params}
    assert all(not p.requires_grad for p in policy.model.parameters() if id(p) not in trainable)
    assert policy.model.active_adapter == "student"
    assert policy.eos_ids and policy.lm_head_weight.shape[0] == policy.model.get_base_model().config.vocab_size


def test_sampling_is_reproducible_for_a_seed(policy, prompt) -> None:
    a = policy.sample([prompt] * 3, max_new_tokens=16, seed=7)
    b = policy.sample([prompt] * 3, max_new_tokens=16, seed=7)
    c = policy.sample([prompt] * 3, max_new_tokens=16, seed=8)
    assert [x.completion_ids for x in a] == [x.completion_ids for x in b]
    assert [x.completion_ids for x in a] != [x.completion_ids for x in c]
    for x in a:
        assert x.prompt_ids == prompt
        assert x.finish_reason in ("eos", "length", "code")
        if x.finish_reason == "eos":
            assert x.completion_ids[-1] in policy.eos_ids
        elif x.finish_reason == "code":
            assert code_closed(x.text) and len(x.completion_ids) <= 16
        else:
            assert len(x.completion_ids) == 16
    # the global RNG is not consumed by sampling
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    policy.sample([prompt], max_new_tokens=4, seed=1)
    assert torch.equal(torch.rand(1), before)


@pytest.mark.model
def test_the_answer_ends_on_the_token_that_closes_its_code(real_policy) -> None:
    """Issue 26 on the real model: greedy, the stopped answer is the free-running one cut at its closing fence."""
    policy = real_policy
    prompt = policy.chat_ids([{"role": "user", "content": "Write a Python one-liner that prints the sum of 2 and 3."}])
    kw = dict(max_new_tokens=96, seed=0, temperature=0.0, return_logprobs=True)
    free = policy.sample([prompt], stop_at_code=False, **kw)[0]
    stopped = policy.sample([prompt], **kw)[0]
    assert code_closed(free.text) and free.text[code_end(free.text):].strip()  # the model explains after its code
    assert stopped.finish_reason == "code" and free.text.startswith(stopped.text) and code_closed(stopped.text)
    assert stopped.completion_ids == free.completion_ids[: len(stopped.completion_ids)] and stopped.completion_ids[-1] not in policy.eos_ids
    assert len(stopped.logprobs) == len(stopped.completion_ids)
    assert stopped.text.rstrip().endswith("```") and extract_code(stopped.text) == extract_code(free.text[: code_end(free.text)])


def test_scoring_reproduces_sampling_logprobs(policy, prompt, short_prompt) -> None:
    # mixed prompt lengths: both left padding (sampling) and the scoring layout are exercised
    comps = policy.sample([prompt, short_prompt, prompt], max_new_tokens=24, seed=3, return_logprobs=True)
    scored = policy.token_logprobs([c.prompt_ids for c in comps], [c.completion_ids for c in comps], adapter="student")
    for c, lp in zip(comps, scored, strict=True):
        assert lp.shape == (len(c.completion_ids),)
        torch.testing.assert_close(lp, torch.tensor(c.logprobs), rtol=0, atol=2e-4)


def test_batched_scoring_matches_single(policy, prompt, short_prompt) -> None:
    comps = policy.sample([prompt, short_prompt], max_new_tokens=20, seed=4)
    both = policy.token_logprobs([c.prompt_ids for c in comps], [c.completion_ids for c in comps], adapter=None)
    for c, lp in zip(comps, both, strict=True):
        alone = policy.token_logprobs([c.prompt_ids], [c.completion_ids], adapter=None)[0]
        torch.testing.assert_close(lp, alone, rtol=0, atol=2e-4)


@pytest.mark.model
def test_batch_and_single_sampling_lengths_agree(real_policy) -> None:
    """Rows that stop early (EOS) in a batch stop where they would alone: needs a model that says EOS (the random one
    rarely does)."""
    policy = real_policy
    short_prompt = policy.chat_ids([{"role": "user", "content": "Name one colour. Answer with one word."}])
    n = 12
    batched = [len(c.completion_ids) for c in policy.sample([short_prompt] * n, max_new_tokens=24, seed=11)]
    single = [len(c.completion_ids) for i in range(n) for c in policy.sample([short_prompt], max_new_tokens=24, seed=100 + i)]
    se = ((statistics.pvariance(batched) + statistics.pvariance(single)) / n) ** 0.5
    assert abs(statistics.mean(batched) - statistics.mean(single)) <= 3 * se + 1.0, (batched, single)


def test_hidden_states_layout_and_grads(policy, prompt, short_prompt, restore_adapters) -> None:
    _perturb_student(policy, 1)
    prompts = [prompt, short_prompt]
    completions = [[policy.eos_ids[0]], policy.tokenizer("print(5)", add_special_tokens=False)["input_ids"]]
    h, mask = policy.hidden_states(prompts, completions, adapter="student")
    T = max(len(c) for c in completions)
    assert h.shape == (2, T, policy.model.get_base_model().config.hidden_size) and h.requires_grad
    assert mask.tolist() == [[t < len(c) for t in range(T)] for c in completions]
    assert torch.isfinite(h[mask]).all()
    (h[mask].float() @ policy.lm_head_weight.float().T).logsumexp(-1).sum().backward()
    grads = [p.grad for p in policy.trainable_parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    teacher = [p for n, p in policy.model.named_parameters() if ".teacher." in n]
    assert teacher and all(p.grad is None and not p.requires_grad for p in teacher)
    policy.model.zero_grad(set_to_none=True)
    with torch.no_grad():
        h2, _ = policy.hidden_states(prompts, completions, adapter="teacher")
    assert not h2.requires_grad
    # switching to the teacher never freezes the student
    assert all(p.requires_grad for p in policy.trainable_parameters())
    assert policy.model.active_adapter == "student"


def test_adapters_switch_without_reloading(policy, prompt, restore_adapters) -> None:
    comp = [policy.sample([prompt], max_new_tokens=8, seed=5, adapter=None)[0].completion_ids]
    base = policy.token_logprobs([prompt], comp, adapter=None)[0]
    student0 = policy.token_logprobs([prompt], comp, adapter="student")[0]
    torch.testing.assert_close(student0, base, rtol=0, atol=1e-5)  # peft default init: B = 0 -> ΔW = 0
    _perturb_student(policy, 2)
    student = policy.token_logprobs([prompt], comp, adapter="student")[0]
    teacher = policy.token_logprobs([prompt], comp, adapter="teacher")[0]
    assert (student - base).abs().max() > 1e-3
    torch.testing.assert_close(teacher, base, rtol=0, atol=1e-5)  # teacher still = old student = base
    torch.testing.assert_close(policy.token_logprobs([prompt], comp, adapter=None)[0], base, rtol=0, atol=0)
    policy.sync_teacher()
    torch.testing.assert_close(policy.token_logprobs([prompt], comp, adapter="teacher")[0], student, rtol=0, atol=1e-5)


def test_adapter_save_load_is_bit_exact(policy, tmp_path: Path, restore_adapters) -> None:
    _perturb_student(policy, 3)
    policy.save_adapter("student", tmp_path / "a")
    saved = {n: p.detach().clone() for n, p in policy.model.named_parameters() if ".student." in n}
    _perturb_student(policy, 4)
    policy.load_adapter("student", tmp_path / "a")
    for n, p in policy.model.named_parameters():
        if n in saved:
            assert torch.equal(p, saved[n]), n
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file() and (tmp_path / "a" / "adapter_config.json").is_file()
    assert all(p.requires_grad for p in policy.trainable_parameters())
    with pytest.raises(ValueError, match=r"saved shape \(.*\) != model shape"):  # rank mismatch: a rank-4 student file, a rank-8 teacher
        policy.load_adapter("teacher", tmp_path / "a")
    with pytest.raises(ModelUnavailable, match="missing/adapter_model.safetensors: no saved adapter there"):
        policy.load_adapter("student", tmp_path / "missing")


def test_ema_on_the_model_matches_dense_reference(policy, restore_adapters) -> None:
    _perturb_student(policy, 5)
    policy.sync_teacher()
    layers = lora_layers(policy.model)
    old_t = [dense_update(get_factors(m, "teacher")) for _, m in layers]
    _perturb_student(policy, 6)
    new_s = [dense_update(get_factors(m, "student")) for _, m in layers]
    disc = policy.ema_update_teacher(0.25)
    assert disc < 1e-5  # rank r + r fits the rank-2r teacher: exact
    for (_, m), t0, s1 in zip(layers, old_t, new_s, strict=True):
        ref = 0.75 * t0 + 0.25 * s1
        got = dense_update(get_factors(m, "teacher"))
        assert float((got - ref).norm() / ref.norm()) < 1e-5
    assert all(p.requires_grad for p in policy.trainable_parameters())


def test_cuda_request_without_gpu_is_a_clear_error() -> None:
    from sdpo_ttt.policy.device import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelUnavailable, match="no CUDA GPU"):
        resolve_device("cuda")
