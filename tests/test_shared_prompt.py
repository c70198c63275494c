"""The shared prompt (policy/prefix.py, sdpo/shared.py): the batch's common prompt prefix run once gives the
unshared computation's hidden states, losses and gradients up to float32 rounding, on the tiny random model."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from sdpo_ttt.policy import model as model_module
from sdpo_ttt.policy.prefix import MIN_SHARED_TOKENS, common_prefix, shared_ids
from sdpo_ttt.sdpo import update as update_module
from sdpo_ttt.sdpo.microbatch import UpdateBatch
from sdpo_ttt.sdpo.reprompt import Contexts
from sdpo_ttt.sdpo.shared import SharedPrompts
from sdpo_ttt.sdpo.update import SDPOUpdater
from tests.fakes import assert_same_update, restored_adapters, load_policy, lora_state, tiny_config

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Print the sum of two integers read from stdin."}]


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path):
    """The tiny policy with both adapters moved off zero, so student, teacher and base model all differ."""
    pol = load_policy(tiny_config(tiny_model_dir))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if ".lora_" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return pol


@pytest.fixture()
def fresh(policy, tmp_path: Path):
    with restored_adapters(policy, tmp_path) as restore:
        yield restore


def _completions(policy, lengths: list[int], seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    vocab = policy.lm_head_weight.shape[0]
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def _contexts(policy) -> Contexts:
    return Contexts(policy.chat_ids, QUESTION, 4096)


def test_common_prefix_stops_at_the_first_difference_and_keeps_every_last_token() -> None:
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 4]]) == 3  # identical: all but the last token
    assert common_prefix([[1, 2, 3, 4], [1, 2, 9, 4, 5]]) == 2
    assert common_prefix([[1, 2], [1, 2, 3, 4]]) == 1  # the shortest prompt keeps its last token
    assert common_prefix([[7], [7]]) == 0 and common_prefix([]) == 0
    long = list(range(MIN_SHARED_TOKENS + 1))
    assert shared_ids([long, long]) == long[:-1]
    assert shared_ids([long]) is None  # one row: nothing to share
    assert shared_ids([long[: MIN_SHARED_TOKENS - 1] + [99, 98], long]) is None  # a common prefix under MIN_SHARED_TOKENS


@pytest.mark.parametrize("path", ["cpu decode loop", "transformers"])
@pytest.mark.parametrize("adapter", ["student", "teacher", None])
def test_teacher_prompts_share_the_question_without_grad(policy, monkeypatch, path: str, adapter: str | None) -> None:
    """The teacher contexts (x, f_i) differ only after the question; their common prefix run once changes nothing."""
    if path == "transformers":
        from sdpo_ttt.policy.sampling.generate import GenerateSampling

        monkeypatch.setattr(policy, "sampler", GenerateSampling(policy))  # no decode loop: Policy.hidden_states' transformers path
    ctx = _contexts(policy)
    prompts = [ctx.teacher(f"Test {i}: wrong answer, expected {i} got {i * 7 + 1}" * (i + 1)) for i in range(3)]
    prompts.append(ctx.student())  # an attempt without feedback: the plain question
    completions = _completions(policy, [5, 1, 9, 3])
    ids = shared_ids(prompts)
    assert ids is not None and len(ids) >= len(ctx.student()) - 12  # about the whole question
    with torch.no_grad():
        prefix = policy.prefix(ids, adapter=adapter)
        want, want_mask = policy.hidden_states(prompts, completions, adapter=adapter)
        got, mask = policy.hidden_states(prompts, completions, adapter=adapter, prefix=prefix)
    assert torch.equal(mask, want_mask) and not got.requires_grad
    torch.testing.assert_close(got[mask], want[mask], rtol=1e-4, atol=1e-5)


def test_a_prefix_that_does_not_start_every_prompt_is_refused(policy) -> None:
    prompt = _contexts(policy).student()
    with torch.no_grad():
        prefix = policy.prefix(prompt[:-1], adapter="student")
        with pytest.raises(ValueError, match="does not start every prompt"):
            policy.hidden_states([prompt, [5] + prompt], [[1], [2]], adapter="student", prefix=prefix)
        with pytest.raises(ValueError, match="does not start every prompt"):
            policy.hidden_states([prompt, prompt], [[1], [2]], adapter="teacher", prefix=prefix)


def test_student_prefix_with_grad_gives_the_unshared_gradient(policy, fresh) -> None:
    """The prefix is in the graph: its gradient, summed over two separate backwards (micro-batches), then pushed
    through the prefix once, equals the gradient of the rows computed whole."""
    prompt = _contexts(policy).student()
    prompts, completions = [prompt] * 3, _completions(policy, [6, 2, 11])
    w = torch.randn(policy.lm_head_weight.shape[1], generator=torch.Generator().manual_seed(1))
    params = policy.trainable_parameters()
    loss = lambda h, m: (h[m] @ w).pow(3).sum()  # noqa: E731  (not constant under the final RMSNorm)

    h, m = policy.hidden_states(prompts, completions, adapter="student")
    want = torch.autograd.grad(loss(h, m), params)

    prefix = policy.prefix(shared_ids(prompts), adapter="student")
    assert prefix is not None and prefix.graph
    for rows in ([0, 1], [2]):
        h, m = policy.hidden_states([prompts[i] for i in rows], [completions[i] for i in rows], adapter="student", prefix=prefix)
        loss(h, m).backward()
    before = [p.grad.clone() for p in params]  # the rows' own part only: the prefix's is still missing
    prefix.backward()
    got = [p.grad for p in params]
    assert any(not torch.allclose(a, b) for a, b in zip(before, got, strict=True))
    for g, ref in zip(got, want, strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-3 * ref.abs().max().item())
    for p in params:
        p.grad = None


def _batch(policy, student_prompts: list[list[int]] | None = None) -> UpdateBatch:
    ctx = _contexts(policy)
    lengths = [7, 3, 0, 11, 5]
    return UpdateBatch(
        student_prompts=student_prompts or [ctx.student() for _ in lengths],
        teacher_prompts=[ctx.teacher(f"Test {i + 1}: wrong answer.\nExpected {i}, got {i + 7}") for i in range(len(lengths))],
        completions=_completions(policy, lengths),
        rewards=[0.0, 0.5, 0.25, 0.75, 0.0],
        has_feedback=[True] * len(lengths),
        has_demo=[False] * len(lengths),
    )


def _update(policy, model_dir: Path, batch: UpdateBatch, monkeypatch, *, shared: bool, **overrides):
    monkeypatch.setattr(update_module, "SharedPrompts", functools.partial(SharedPrompts, enabled=shared))
    cfg = tiny_config(model_dir, **overrides)
    updater = SDPOUpdater(policy, cfg.sdpo, cfg.optim, _contexts(policy))
    calls: list[tuple] = []
    real = policy.prefix

    def spy(ids, *, adapter):
        calls.append((len(ids), adapter, torch.is_grad_enabled()))
        return real(ids, adapter=adapter)

    monkeypatch.setattr(policy, "prefix", spy)
    metrics = updater.update(batch)
    monkeypatch.setattr(policy, "prefix", real)
    grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
    return metrics, grads, lora_state(policy, "student"), calls


CASES = [
    {},  # defaults: ema teacher, 'logit' loss, one attempt per micro-batch
    {"micro_batch_size": 3},  # 3 + 1 of the 4 non-empty attempts
    {"micro_batch_size": 8, "teacher": "trust-region", "loss": "full", "kl_weight": 0.1, "grpo_weight": 0.3},
    {"micro_batch_size": 2, "teacher": "live", "steps_per_batch": 2},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_an_update_with_the_shared_prompt_equals_the_unshared_one(policy, fresh, tiny_model_dir: Path, monkeypatch,
                                                                   case: dict) -> None:
    batch = _batch(policy)
    fresh()
    m_ref, g_ref, s_ref, calls_ref = _update(policy, tiny_model_dir, batch, monkeypatch, shared=False, **case)
    fresh()
    metrics, grads, student, calls = _update(policy, tiny_model_dir, batch, monkeypatch, shared=True, **case)

    assert calls_ref == []
    steps = case.get("steps_per_batch", 1)
    # once per step: the student prefix with grad, the teacher's without (the trust-region teacher's two
    # adapters, the KL reference's base model on the student prompt)
    assert sum(1 for _, adapter, grad in calls if grad and adapter == "student") == steps
    assert len(calls) == steps * (2 + (case.get("teacher") == "trust-region") + (case.get("kl_weight", 0) > 0))
    assert_same_update(metrics, grads, student, m_ref, g_ref, s_ref)


def test_student_prompts_that_differ_share_only_their_common_part(policy, fresh, tiny_model_dir: Path, monkeypatch) -> None:
    """Per-attempt student prompts (as sdpo-evolve's): the prefix is what they have in common, and the update is
    still the unshared one; a single attempt shares nothing."""
    ctx = _contexts(policy)
    prompts = [ctx.teacher(f"Improve on attempt {i}: {'x' * i}") for i in range(5)]
    batch = _batch(policy, prompts)
    fresh()
    m_ref, g_ref, _, _ = _update(policy, tiny_model_dir, batch, monkeypatch, shared=False, micro_batch_size=2)
    fresh()
    metrics, grads, _, calls = _update(policy, tiny_model_dir, batch, monkeypatch, shared=True, micro_batch_size=2)
    assert (len(shared_ids([prompts[i] for i in batch.nonempty_rows()])), "student", True) in calls
    assert metrics["loss"] == pytest.approx(m_ref["loss"], rel=1e-4)
    for name, ref in g_ref.items():
        torch.testing.assert_close(grads[name], ref, rtol=1e-3, atol=1e-6, msg=name)

    one = UpdateBatch(prompts[:1], prompts[:1], [[5, 6, 7]], [0.0], [True], [False])
    fresh()
    *_, calls = _update(policy, tiny_model_dir, one, monkeypatch, shared=True)
    assert calls == []


def test_gradient_checkpointing_shares_the_prompt_too(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Checkpointing replays each layer in backward: the prefix's cache is only read, so the replay is exact and the
    update equals the unshared one; a transformers that drops a checkpointed layer's cache gets no prefix with grad."""
    pol = load_policy(tiny_config(tiny_model_dir, gradient_checkpointing=True))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if ".lora_" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    batch = _batch(pol)
    pol.save_adapter("student", tmp_path / "s")
    pol.save_adapter("teacher", tmp_path / "t")
    results = []
    for shared in (False, True):
        pol.load_adapter("student", tmp_path / "s")
        pol.load_adapter("teacher", tmp_path / "t")
        results.append(_update(pol, tiny_model_dir, batch, monkeypatch, shared=shared, micro_batch_size=3, gradient_checkpointing=True))
    (m_ref, g_ref, _, _), (metrics, grads, _, calls) = results
    assert (len(shared_ids([batch.student_prompts[0]] * 2)), "student", True) in calls
    assert metrics["loss"] == pytest.approx(m_ref["loss"], rel=1e-4)
    assert grads.keys() == g_ref.keys() and grads
    for name, ref in g_ref.items():
        torch.testing.assert_close(grads[name], ref, rtol=1e-3, atol=1e-6, msg=name)

    monkeypatch.setattr(model_module, "checkpointing_keeps_cache", lambda decoder: False)
    prompt = _contexts(pol).student()
    assert pol.prefix(prompt[:-1], adapter="student") is None
    with torch.no_grad():
        assert pol.prefix(prompt[:-1], adapter="student") is not None
