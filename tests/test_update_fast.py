"""One SDPO update on the tiny random model (seconds, no download): what changes, what must not, and that
micro-batching changes neither the update nor what it logs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sdpo_ttt.policy.adapters import dense_update, get_factors, lora_layers
from sdpo_ttt.sdpo.reprompt import Contexts
from sdpo_ttt.policy.model import STUDENT
from sdpo_ttt.sdpo.chunked import sdpo_loss
from sdpo_ttt.sdpo.microbatch import UpdateBatch, micro_batches
from sdpo_ttt.sdpo.teacher import TEACHER_MODES, Teacher
from sdpo_ttt.sdpo.update import SDPOUpdater
from tests.fakes import assert_same_update, restored_adapters, base_state, load_policy, lora_state, tiny_config

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Print the sum of two integers."}]


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path):
    return load_policy(tiny_config(tiny_model_dir))


@pytest.fixture()
def fresh(policy, tmp_path: Path):
    """The policy as loaded (student ΔW = 0, teacher = student) before and after each test."""
    with restored_adapters(policy, tmp_path) as restore:
        yield restore


def _batch(policy, contexts: Contexts) -> UpdateBatch:
    """Five attempts of different lengths (one empty: nothing to learn from), each with its own feedback."""
    g = torch.Generator().manual_seed(0)
    vocab = policy.lm_head_weight.shape[0]
    lengths = [7, 3, 0, 11, 5]
    completions = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]
    feedbacks = [f"Test {i + 1} (public): wrong answer.\nExpected output:\n{i}\nYour output:\n{i + 7}" for i in range(len(lengths))]
    return UpdateBatch(
        student_prompts=[contexts.student() for _ in lengths],
        teacher_prompts=[contexts.teacher(fb) for fb in feedbacks],
        completions=completions,
        rewards=[0.0, 0.5, 0.25, 0.75, 0.0],
        has_feedback=[True] * len(lengths),
        has_demo=[False] * len(lengths),
    )


def _updater(policy, model_dir: Path, **overrides) -> SDPOUpdater:
    cfg = tiny_config(model_dir, **overrides)
    return SDPOUpdater(policy, cfg.sdpo, cfg.optim, Contexts(policy.chat_ids, QUESTION, cfg.sampling.max_prompt_tokens))


@pytest.mark.parametrize("teacher", TEACHER_MODES)
def test_one_update_changes_the_student_and_not_the_base(policy, fresh, tiny_model_dir: Path, teacher: str) -> None:
    updater = _updater(policy, tiny_model_dir, teacher=teacher, teacher_rate=0.25)
    base0, student0, teacher0 = base_state(policy), lora_state(policy, "student"), lora_state(policy, "teacher")
    metrics = updater.update(_batch(policy, updater.contexts))

    assert math.isfinite(metrics["loss"]) and metrics["loss"] > 0 and metrics["grad_norm"] > 0
    base1, student1 = base_state(policy), lora_state(policy, "student")
    assert base1.keys() == base0.keys() and all(torch.equal(base1[k], base0[k]) for k in base0)
    assert any(not torch.equal(student1[k], student0[k]) for k in student0)
    layers = lora_layers(policy.model)
    assert any(dense_update(get_factors(m, "student")).abs().max() > 0 for _, m in layers)  # ΔW_S moved off 0
    if teacher == "ema":  # θ' ← (1−ρ)·θ' + ρ·θ with θ' = 0 before: exactly ρ·ΔW_S
        assert "teacher/ema_truncation_error" in metrics
        for _, m in layers:
            torch.testing.assert_close(dense_update(get_factors(m, "teacher")), 0.25 * dense_update(get_factors(m, "student")))
    else:  # the other modes keep no teacher state
        teacher1 = lora_state(policy, "teacher")
        assert all(torch.equal(teacher1[k], teacher0[k]) for k in teacher0)
        assert "teacher/ema_truncation_error" not in metrics


def _perturb(policy, adapter: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if f".{adapter}." in name and ".lora_" in name:
                p.add_(0.5 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize(("mode", "weights"), [("ema", "teacher"), ("trust-region", "student"), ("frozen", None), ("live", "student")])
def test_each_teacher_mode_scores_with_its_own_weights(policy, fresh, mode: str, weights: str | None) -> None:
    teacher = Teacher(policy, mode, 0.5)
    _perturb(policy, "student", 1)  # three different models: base, student, teacher adapter
    _perturb(policy, "teacher", 2)
    contexts = Contexts(policy.chat_ids, QUESTION, 512)
    prompts, completions = [contexts.teacher("wrong answer")] * 2, [[5, 6, 7], [8, 9]]
    scores = teacher.score(prompts, completions)
    with torch.no_grad():
        want = {w: policy.hidden_states(prompts, completions, adapter=w)[0] for w in ("student", "teacher", None)}
    assert not torch.equal(want["student"], want[None]) and not torch.equal(want["teacher"], want[None])
    assert not scores.hidden.requires_grad and torch.equal(scores.hidden, want[weights])
    if mode == "trust-region":  # plus the base model on the same prompt, for the mix
        assert torch.equal(scores.base_hidden, want[None])
    else:
        assert scores.base_hidden is None


CASES = [
    {},  # the defaults: ema teacher, 'logit' loss
    {"teacher": "trust-region", "loss": "full", "alpha": 0.5, "grpo_weight": 0.3, "kl_weight": 0.1, "steps_per_batch": 2},
    {"teacher": "live", "loss": "sequence", "adv_clip": 2.0, "temperature": 0.7},
    {"aggregation": "attempt-mean", "loss": "token", "adv_clip": 0.5, "steps_per_batch": 2},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_micro_batching_gives_the_same_update_and_stats(policy, fresh, tiny_model_dir: Path, case: dict) -> None:
    results = []
    for size in (8, 1, 3):  # one pass; one attempt at a time; an uneven split (3 + 1 of the 4 non-empty attempts)
        fresh()
        updater = _updater(policy, tiny_model_dir, micro_batch_size=size, **case)
        metrics = updater.update(_batch(policy, updater.contexts))
        grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
        # the teacher by its dense update ΔW' = B'A': the EMA re-factorises it at rank r, and those factors are
        # not unique (after two steps they differ by ~1e-5 between splits while ΔW' agrees to ~1e-9)
        teacher = {n: dense_update(get_factors(m, "teacher")) for n, m in lora_layers(policy.model)}
        results.append((metrics, grads, lora_state(policy, "student"), teacher))

    (m_ref, g_ref, s_ref, t_ref) = results[0]
    assert m_ref["sdpo/tokens"] == 26 and m_ref["sdpo/sequences"] == 4 and m_ref["sdpo/empty_targets"] == 1
    # the non-empty attempts' scores (0, 0.5, 0.75, 0) differ: the gap-score rank correlation is logged, and is the
    # same for every split (compared with the other metrics below)
    assert -1.0 <= m_ref["sdpo/gap_score_corr"] <= 1.0
    for metrics, grads, student, teacher in results[1:]:
        assert metrics.keys() == m_ref.keys()
        assert_same_update(metrics, grads, student, m_ref, g_ref, s_ref)
        for name, ref in t_ref.items():
            torch.testing.assert_close(teacher[name], ref, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_jacobian_chunks_give_the_update_of_the_checkpointed_chunks(policy, fresh, tiny_model_dir: Path, case: dict,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss's chunks with each term's gradient formed in the forward (three vocabulary products a chunk, issue 23)
    update the student as the checkpointed chunks that recompute the logits in the backward did."""
    from torch.utils.checkpoint import checkpoint

    from sdpo_ttt.sdpo import chunked

    assert not policy.lm_head_weight.requires_grad  # so the update takes `_ChunkTerms`
    results = []
    for checkpointed in (False, True):
        fresh()
        if checkpointed:
            monkeypatch.setattr(chunked, "_chunk_terms_from_jacobians",
                                lambda *args: checkpoint(chunked._chunk_terms, *args, use_reentrant=False))
        updater = _updater(policy, tiny_model_dir, micro_batch_size=2, **case)
        metrics = updater.update(_batch(policy, updater.contexts))
        results.append((metrics, _grads(policy), lora_state(policy, "student")))
    (metrics, grads, student), (m_ref, g_ref, s_ref) = results
    assert_same_update(metrics, grads, student, m_ref, g_ref, s_ref)


def test_several_steps_per_batch_log_first_and_last_loss(policy, fresh, tiny_model_dir: Path) -> None:
    """Without the importance ratio (whose weights ρ_t change the logged objective from step to step) three
    steps on the same batch descend."""
    updater = _updater(policy, tiny_model_dir, steps_per_batch=3, lr=5e-2, ratio_clip=0)
    metrics = updater.update(_batch(policy, updater.contexts))
    assert metrics["loss"] < metrics["loss_first"]


def test_steps_after_the_first_weigh_tokens_by_the_importance_ratio(policy, fresh, tiny_model_dir: Path) -> None:
    """Step 1 is on-policy (ρ = 1 exactly); step 2 weighs each token by min(π_θ(y_t)/π_old(y_t), 2) with π_old the
    step-1 student, which changes the update; one step per batch never sees a ratio other than 1."""
    results = {}
    for ratio_clip in (2.0, 0):
        fresh()
        updater = _updater(policy, tiny_model_dir, steps_per_batch=2, lr=5e-2, ratio_clip=ratio_clip)
        metrics = updater.update(_batch(policy, updater.contexts))
        results[ratio_clip] = (metrics, lora_state(policy, "student"))
    (with_ratio, student), (without, student_off) = results[2.0], results[0]
    assert without["sdpo/importance_ratio_mean"] == 1.0
    assert abs(with_ratio["sdpo/importance_ratio_mean"] - 1.0) > 1e-3  # (1 + mean ρ of step 2) / 2
    assert with_ratio["loss_first"] == pytest.approx(without["loss_first"], rel=1e-6)  # the same first step
    assert any(not torch.allclose(student[k], student_off[k], rtol=1e-4, atol=1e-6) for k in student)
    fresh()
    updater = _updater(policy, tiny_model_dir)
    assert updater.update(_batch(policy, updater.contexts))["sdpo/importance_ratio_mean"] == 1.0


def _grads(policy) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}


def test_the_default_update_weighs_every_token_of_the_batch_the_same(policy, fresh, tiny_model_dir: Path) -> None:
    """token-mean (the reference's aggregation, the default): the update's gradient is Σ_i (T_i/N)·∇L_i, L_i the
    mean loss over attempt i's T_i tokens and N = 26 the batch's tokens, computed here attempt by attempt; the
    per-attempt mean (--aggregation attempt-mean) gives another gradient."""
    updater = _updater(policy, tiny_model_dir, micro_batch_size=3)
    batch = _batch(policy, updater.contexts)
    n = sum(len(c) for c in batch.completions)
    policy.model.zero_grad(set_to_none=True)
    for mb in micro_batches(batch, 1):
        teacher = updater.teacher.score(mb.teacher_prompts, mb.completions)
        hidden, mask = policy.hidden_states(mb.student_prompts, mb.completions, adapter=STUDENT)
        out = sdpo_loss(hidden, teacher.hidden, policy.lm_head_weight, mb.target_ids(mask), mask, updater.loss_cfg)
        (out.loss * len(mb.completions[0]) / n).backward()
    want = _grads(policy)
    updater.update(batch)
    got = _grads(policy)
    assert got.keys() == want.keys() and want
    for name, ref in want.items():
        torch.testing.assert_close(got[name], ref, rtol=1e-3, atol=1e-7, msg=name)
    fresh()
    _updater(policy, tiny_model_dir, aggregation="attempt-mean").update(batch)
    other = _grads(policy)
    assert any(not torch.allclose(other[k], want[k], rtol=1e-2, atol=1e-6) for k in want)


def test_adamw_decays_the_lora_weights_by_the_reference_rate(policy, fresh, tiny_model_dir: Path) -> None:
    """Weight decay 0.01 by default (lasgroup/SDPO's optim.weight_decay), an option; AdamW's decoupled decay
    shrinks each trainable weight by lr·wd on top of the gradient step, so two updates with decay 0.01 and 0 differ
    by about lr·0.01·θ."""
    assert _updater(policy, tiny_model_dir).optimizer.param_groups[0]["weight_decay"] == 0.01
    states = {}
    for wd in (0.01, 0.0):
        fresh()
        before = lora_state(policy, "student")
        updater = _updater(policy, tiny_model_dir, weight_decay=wd, lr=1.0)
        assert updater.optimizer.param_groups[0]["weight_decay"] == wd
        updater.update(_batch(policy, updater.contexts))
        states[wd] = lora_state(policy, "student")
    for k, theta in before.items():
        torch.testing.assert_close(states[0.01][k] - states[0.0][k], -1.0 * 0.01 * theta, rtol=1e-3, atol=1e-6, msg=k)


def test_a_batch_without_tokens_takes_no_step(policy, fresh, tiny_model_dir: Path) -> None:
    updater = _updater(policy, tiny_model_dir)
    student0 = lora_state(policy, "student")
    prompt = updater.contexts.student()
    metrics = updater.update(UpdateBatch([prompt] * 2, [prompt] * 2, [[], []], [0.0, 0.0], [True, True], [False, False]))
    assert metrics["loss"] == 0.0 and metrics["grad_norm"] == 0.0 and metrics["sdpo/empty_targets"] == 2
    assert all(torch.equal(p, student0[n]) for n, p in lora_state(policy, "student").items())


def test_lora_dropout_with_gradient_checkpointing_keeps_train_mode_through_backward(tiny_model_dir: Path) -> None:
    """Checkpointing recomputes the student forward inside backward; with LoRA dropout that recomputation must run
    in train mode too, else torch raises CheckpointError (the forward and its recomputation save different tensors)."""
    cfg = tiny_config(tiny_model_dir, lora_dropout=0.1, gradient_checkpointing=True)
    policy = load_policy(cfg)
    updater = SDPOUpdater(policy, cfg.sdpo, cfg.optim, Contexts(policy.chat_ids, QUESTION, cfg.sampling.max_prompt_tokens))
    metrics = updater.update(_batch(policy, updater.contexts))
    assert math.isfinite(metrics["sdpo/loss"])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in updater.params)
