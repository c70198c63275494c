"""The SDPO loss is distilled at the SAMPLING temperature τ (issue #16): logits / τ for student AND teacher, as the
reference does (lasgroup/SDPO dp_actor: `logits.div_(temperature)` on both forward passes, with the rollout τ)."""

from __future__ import annotations

import pytest
import torch

from sdpo_ttt.sdpo.chunked import sdpo_loss
from sdpo_ttt.config.sdpo import LossConfig


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    B, T, H, V = 2, 5, 8, 23
    s = torch.randn(B, T, H, generator=g, dtype=torch.float64)
    t = s + 0.7 * torch.randn(B, T, H, generator=g, dtype=torch.float64)
    w = torch.randn(V, H, generator=g, dtype=torch.float64)
    y = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 3:] = False
    return s, t, w, y, mask


@pytest.mark.parametrize("mode", ["logit", "full", "token", "sequence"])
@pytest.mark.parametrize("tau", [0.5, 0.8, 1.3])
def test_chunked_loss_divides_both_sides_by_tau(mode: str, tau: float) -> None:
    """Logits are linear in the hidden states, so loss(h_s, h_t; τ) = loss(h_s/τ, h_t/τ; 1) exactly when BOTH
    logits are divided by τ; scaling only one side (or neither) breaks the identity."""
    s, t, w, y, mask = _batch()
    cfg = lambda temp: LossConfig(mode=mode, topk=6, chunk_tokens=3, temperature=temp)  # noqa: E731
    at_tau = sdpo_loss(s, t, w, y, mask, cfg(tau))
    scaled = sdpo_loss(s / tau, t / tau, w, y, mask, cfg(1.0))
    torch.testing.assert_close(at_tau.loss, scaled.loss)
    gap = "sdpo/teacher_student_logprob_gap"
    assert at_tau.stats[gap] == pytest.approx(scaled.stats[gap], rel=1e-9, abs=1e-12)
    only_student = sdpo_loss(s / tau, t, w, y, mask, cfg(1.0))
    assert abs(float(only_student.loss) - float(at_tau.loss)) > 1e-6
    assert abs(float(sdpo_loss(s, t, w, y, mask, cfg(1.0)).loss) - float(at_tau.loss)) > 1e-6


# ------------------------------------------------------------------ the updater passes the sampling temperature
QUESTION = [{"role": "user", "content": "Print the sum of two integers."}]


@pytest.mark.parametrize("tau", [0.6, 1.0])
def test_updater_distils_at_the_sampling_temperature(tiny_model_dir, tmp_path, tau: float) -> None:
    """SDPOUpdater's loss uses the run's sampling temperature: its logged loss and teacher-student gap equal
    the chunked loss at τ on the same hidden states (and not the loss at τ = 1 when τ ≠ 1)."""
    from tests.fakes import load_policy, tiny_config

    from sdpo_ttt.sdpo.reprompt import Contexts
    from sdpo_ttt.sdpo.microbatch import UpdateBatch
    from sdpo_ttt.sdpo.update import SDPOUpdater

    cfg = tiny_config(tiny_model_dir, temperature=tau, loss="full")
    policy = load_policy(cfg)
    contexts = Contexts(policy.chat_ids, QUESTION, cfg.sampling.max_prompt_tokens)
    g = torch.Generator().manual_seed(0)
    vocab = policy.lm_head_weight.shape[0]
    comps = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in (6, 9)]
    students = [contexts.student()] * 2
    teachers = [contexts.teacher(f"Test 1 (public): wrong answer.\nExpected output:\n{i}\nYour output:\n7") for i in (3, 4)]

    def direct(temp: float):
        with torch.no_grad():
            s_h, mask = policy.hidden_states(students, comps, adapter="student")
            t_h, _ = policy.hidden_states(teachers, comps, adapter="teacher")
            y = torch.zeros(mask.shape, dtype=torch.long)
            for i, c in enumerate(comps):
                y[i, : len(c)] = torch.tensor(c)
            return sdpo_loss(s_h, t_h, policy.lm_head_weight, y, mask, LossConfig(mode="full", temperature=temp))

    want, at_one = direct(tau), direct(1.0)
    updater = SDPOUpdater(policy, cfg.sdpo, cfg.optim, contexts)
    metrics = updater.update(UpdateBatch(students, teachers, comps, [0.0, 0.0], [True, True], [False, False]))
    gap = "sdpo/teacher_student_logprob_gap"
    assert metrics["loss"] == pytest.approx(float(want.loss), rel=1e-4)
    assert metrics[gap] == pytest.approx(want.stats[gap], rel=1e-4, abs=1e-7)
    if tau != 1.0:
        assert abs(metrics["loss"] - float(at_one.loss)) > 1e-3 * float(at_one.loss)
