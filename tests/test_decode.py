"""The lean CPU decode loop (sdpo_ttt/policy/decode.py) against `generate` and the float32 scoring pass.

Tiny random model (fast). Reference points: greedy token ids equal `generate`'s (no randomness involved);
sampled log-probs equal the training model's re-scoring (`Policy.token_logprobs`); the sampler's draw is
checked against a brute-force inverse CDF; the top-p/temperature warp against transformers' own warpers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.policy.decode import Decoder, _warp, bf16_available, inverse_cdf
from sdpo_ttt.policy.model import Policy
from sdpo_ttt.policy.stop import CodeStop

PROMPTS = [[1, 2, 3, 4, 5], [7, 8, 9], [1, 2, 3, 4, 5], [100, 200, 300, 400, 500, 600, 700]]  # ragged, one repeated


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path) -> Policy:
    pol = Policy.load(PolicyConfig(model=str(tiny_model_dir), lora_rank=4, lora_alpha=8, sampler_dtype="float32"), seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a student far from zero, so that sampling without it would show
        for p in pol.trainable_parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    assert isinstance(pol.decoder(), Decoder)
    return pol


def _with_generate(pol: Policy, **kw) -> list:
    """The same call through transformers' generate (the path GPUs and other architectures take)."""
    from sdpo_ttt.policy.sampling.generate import GenerateSampling

    chosen, pol.sampler = pol.sampler, GenerateSampling(pol)
    try:
        return pol.sample(PROMPTS, **kw)
    finally:
        pol.sampler = chosen


@pytest.mark.parametrize("adapter", ["student", None, "teacher"])
def test_greedy_ids_and_logprobs_equal_generate(policy: Policy, adapter: str | None) -> None:
    kw = dict(temperature=0.0, max_new_tokens=12, seed=0, adapter=adapter, return_logprobs=True)
    fast, ref = policy.sample(PROMPTS, **kw), _with_generate(policy, **kw)
    assert [c.completion_ids for c in fast] == [c.completion_ids for c in ref]
    for f, r in zip(fast, ref, strict=True):
        assert f.finish_reason == r.finish_reason == "length"
        assert f.logprobs == pytest.approx(r.logprobs, abs=5e-4)
    assert fast[0].completion_ids == fast[2].completion_ids  # the repeated prompt


def test_student_lora_changes_what_is_sampled(policy: Policy) -> None:
    kw = dict(temperature=0.0, max_new_tokens=8, seed=0)
    with_lora = [c.completion_ids for c in policy.sample(PROMPTS, adapter="student", **kw)]
    base = [c.completion_ids for c in policy.sample(PROMPTS, adapter=None, **kw)]
    assert with_lora != base


def test_an_update_of_the_student_shows_at_the_next_call(policy: Policy) -> None:
    kw = dict(temperature=0.0, max_new_tokens=8, seed=0, adapter="student")
    before = [c.completion_ids for c in policy.sample(PROMPTS, **kw)]
    saved = [p.detach().clone() for p in policy.trainable_parameters()]
    g = torch.Generator().manual_seed(9)
    try:
        with torch.no_grad():  # in place, as the optimizer does
            for p in policy.trainable_parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=g))
        after = [c.completion_ids for c in policy.sample(PROMPTS, **kw)]
        assert after != before
        assert after == [c.completion_ids for c in _with_generate(policy, **kw)]
    finally:
        with torch.no_grad():
            for p, v in zip(policy.trainable_parameters(), saved, strict=True):
                p.copy_(v)


@pytest.mark.parametrize("adapter", ["student", None])
def test_sampled_logprobs_equal_float32_rescoring(policy: Policy, adapter: str | None) -> None:
    comps = policy.sample(PROMPTS, temperature=1.0, max_new_tokens=16, seed=5, adapter=adapter, return_logprobs=True)
    rescored = policy.token_logprobs(PROMPTS, [c.completion_ids for c in comps], adapter=adapter)
    for c, r in zip(comps, rescored, strict=True):
        assert len(c.logprobs) == len(c.completion_ids) == 16
        # packed weights hold W + s·B·A (LoRA merged): float32 rounding differs from the unmerged scoring pass
        assert torch.tensor(c.logprobs) == pytest.approx(r, abs=5e-4)


def test_eos_stops_a_row_and_the_others_continue_unchanged(policy: Policy) -> None:
    """Rows that stop leave the batch; the others must go on exactly as if nobody had stopped."""
    kw = dict(temperature=1.0, max_new_tokens=12, seed=7, return_logprobs=True)
    free = policy.sample(PROMPTS, **kw)
    stops = {free[0].completion_ids[2], free[3].completion_ids[6]}
    eos_before = policy.eos_ids
    policy.eos_ids = [*eos_before, *stops]
    try:
        cut = policy.sample(PROMPTS, **kw)
        progress: list[int] = []
        policy.sample(PROMPTS, **kw, progress=progress.append)
    finally:
        policy.eos_ids = eos_before
    assert len(cut[0].completion_ids) <= 3 and len(cut[3].completion_ids) <= 7
    for f, c in zip(free, cut, strict=True):
        first = next((i for i, x in enumerate(f.completion_ids) if x in stops), None)
        n = len(f.completion_ids) if first is None else first + 1
        assert c.completion_ids == f.completion_ids[:n]
        assert c.logprobs == pytest.approx(f.logprobs[:n], abs=1e-5)
        assert (c.finish_reason == "length") == (first is None)
    assert sum(progress) == sum(len(c.completion_ids) for c in cut)


def test_eos_and_finish_reason_agree_with_generate(policy: Policy) -> None:
    kw = dict(temperature=0.0, max_new_tokens=10, seed=0)
    free = policy.sample(PROMPTS, **kw)
    eos_before = policy.eos_ids
    policy.eos_ids = [*eos_before, free[1].completion_ids[3]]
    try:
        fast, ref = policy.sample(PROMPTS, **kw), _with_generate(policy, **kw)
    finally:
        policy.eos_ids = eos_before
    assert [(c.completion_ids, c.finish_reason, c.text) for c in fast] == [(c.completion_ids, c.finish_reason, c.text) for c in ref]
    assert len(fast[1].completion_ids) <= 4 and fast[1].finish_reason != "length"


@pytest.mark.parametrize("adapter", ["student", "teacher", None])
def test_no_grad_hidden_states_equal_the_training_forward(policy: Policy, adapter: str | None) -> None:
    """Scoring without autograd (teacher, token_logprobs) runs on the decoder; with autograd on transformers."""
    completions = [[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15]]  # ragged: right padding too
    with torch.no_grad():
        fast, mask = policy.hidden_states(PROMPTS, completions, adapter=adapter)
    with torch.enable_grad():
        ref, ref_mask = policy.hidden_states(PROMPTS, completions, adapter=adapter)
    assert torch.equal(mask, ref_mask) and fast.shape == ref.shape
    torch.testing.assert_close(fast[mask], ref.detach()[mask], rtol=0, atol=1e-4)


def test_packed_and_plain_weights_agree(policy: Policy) -> None:
    rows = []
    for pack in (False, True):
        dec = Decoder(policy.model, pack=pack)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            rows.append(dec.generate(PROMPTS, max_new_tokens=8, temperature=0.0, top_p=1.0, eos_ids=policy.eos_ids,
                                     pad_id=policy.pad_id, adapter="student")[0])
    assert rows[0] == rows[1]


@pytest.mark.skipif(not bf16_available(), reason="no avx512_bf16 on this CPU: the bfloat16 copy falls back to float32")
def test_the_bfloat16_copy_samples_close_to_the_float32_model(policy: Policy) -> None:
    """Weights read as bfloat16 (half the bytes a decode step reads): the sampled log-probs move off the float32
    model's by bf16 rounding only (the real model's gap: benchmarks/sampling_throughput.py --sampler-dtype bfloat16)."""
    rows = {}
    for bf16 in (False, True):
        dec = Decoder(policy.model, pack=True, bf16=bf16)
        assert dec.low == (torch.bfloat16 if bf16 else None)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            rows[bf16] = dec.generate(PROMPTS, max_new_tokens=8, temperature=1.0, top_p=1.0, eos_ids=[-1], pad_id=policy.pad_id,
                                      adapter="student", return_logprobs=True)
    assert dec.layers[0].groups[0].packed.compute == torch.bfloat16
    ids, lps = rows[True]
    want = policy.token_logprobs(PROMPTS, ids, adapter="student")
    gaps = torch.cat([torch.tensor(lp) - w for lp, w in zip(lps, want, strict=True)]).abs()
    float32_gaps = torch.cat([torch.tensor(lp) - w for lp, w in zip(rows[False][1], policy.token_logprobs(PROMPTS, rows[False][0],
                                                                                                         adapter="student"), strict=True)]).abs()
    stats = f"bf16 mean {gaps.mean():.2e} max {gaps.max():.2e}; float32 mean {float32_gaps.mean():.2e} max {float32_gaps.max():.2e}"
    assert float32_gaps.max() < 1e-3 and gaps.mean() > 10 * float32_gaps.mean(), stats  # the bf16 copy is really read
    assert gaps.mean() < 0.15 and gaps.max() < 1.5, stats  # the tiny model's wide random weights: ~0.06 / 0.7 nats


def test_bfloat16_falls_back_to_float32_without_the_instructions(policy: Policy, monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    dec = Decoder(policy.model, pack=True, bf16=True)
    assert dec.low is None and dec.lm_head.compute is None


def test_unsupported_models_say_why(tiny_model_dir: Path) -> None:
    pol = Policy.load(PolicyConfig(model=str(tiny_model_dir), dtype="bfloat16", device="cpu"), seed=0)
    assert "bfloat16" in (Decoder.supports(pol.model) or "")
    assert pol.decoder() is None and pol.sampler.name == "generate"
    assert len(pol.sample([[1, 2, 3]], max_new_tokens=3, seed=0)[0].completion_ids) == 3  # generate serves it


# ------------------------------------------------------------------ pure parts
def _brute_inverse_cdf(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    cdf = p.double().cumsum(-1)
    target = u.double()[:, None] * cdf[:, -1:]
    return (cdf <= target).sum(-1)  # the first index whose cdf exceeds the target


def test_inverse_cdf_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    for v, block in [(5000, 1024), (1000, 7), (64, 1024)]:
        p = torch.softmax(3 * torch.randn(300, v, generator=g), -1)
        p[p < 1e-4] = 0  # holes, as top-p leaves them
        u = torch.rand(300, generator=g, dtype=torch.float64)
        got, want = inverse_cdf(p, u, block=block), _brute_inverse_cdf(p, u)
        cdf = p.double().cumsum(-1)
        for i in (got != want).nonzero().flatten().tolist():  # allowed only at a float tie on a boundary
            assert abs(cdf[i, min(got[i], want[i])].item() - u[i].item() * cdf[i, -1].item()) < 1e-9
        assert (p.gather(1, got[:, None]) > 0).all()


def test_inverse_cdf_ends_never_pick_an_empty_token() -> None:
    p = torch.tensor([[0.0, 0.3, 0.0, 0.7, 0.0, 0.0]] * 2)
    got = inverse_cdf(p, torch.tensor([0.0, 1 - 2**-53], dtype=torch.float64), block=4)
    assert got.tolist() == [1, 3]


def test_inverse_cdf_frequencies_follow_the_probabilities() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(1, 50, generator=g), -1)
    draws = inverse_cdf(p.expand(20000, 50), torch.rand(20000, generator=g, dtype=torch.float64), block=16)
    freq = torch.bincount(draws, minlength=50).double() / 20000
    assert (freq - p[0].double()).abs().max() < 0.01


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.0, 0.9), (0.5, 0.3)])
def test_warp_matches_transformers_processors(temperature: float, top_p: float) -> None:
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    scores = 4 * torch.randn(6, 300, generator=torch.Generator().manual_seed(2))
    want = scores.clone()
    if temperature != 1.0:
        want = TemperatureLogitsWarper(temperature)(None, want)
    if top_p < 1.0:
        want = TopPLogitsWarper(top_p)(None, want)
    assert torch.equal(_warp(scores, temperature, top_p), want)


# ------------------------------------------------------------------ the answer ends at its closing fence (issue 26)
def _fence_stop(free: list) -> CodeStop:
    """A CodeStop over a stand-in vocabulary: token X reads "\\n```python\\nx = 1\\n", token Y "\\n```", any other
    "a"; X and Y are taken from row 0 of `free` (X first), so row 0 closes a code block at its first Y after X."""
    row = free[0].completion_ids
    x = row[1]
    y = next(t for t in row[3:] if t not in (x, row[0]))
    words = {x: "\n```python\nx = 1\n", y: "\n```"}
    return CodeStop(lambda ids: "".join(words.get(i, "a") for i in ids))


@pytest.mark.parametrize("backend", ["decode loop", "generate"])
def test_a_row_ends_on_the_token_that_closes_its_code_block(policy: Policy, backend: str) -> None:
    """Each row is the free-running row cut after the token that closed its block (no EOS added), with the same
    log-probs; the other rows go on unchanged; only the kept tokens are generated. Without the stop the rows
    run to the limit as before."""
    kw = dict(temperature=1.0, max_new_tokens=12, seed=11, return_logprobs=True)
    sample = policy.sample if backend == "decode loop" else lambda prompts, **k: _with_generate(policy, **k)
    raw = sample(PROMPTS, **kw)  # random tokens close no block
    assert all(c.finish_reason == "length" for c in raw)
    fake = _fence_stop(raw)
    ends = [fake.through_code(c.completion_ids) for c in raw]
    assert ends[0] is not None and ends[0] < 12
    saved, policy.code_stop = policy.code_stop, fake
    try:
        stopped, after = [], []
        cut = sample(PROMPTS, **kw, progress=stopped.append)
        late = sample(PROMPTS, **kw, progress=after.append, stop_at_code=False)
    finally:
        policy.code_stop = saved
    for c, r, n in zip(cut, raw, ends, strict=True):
        keep = len(r.completion_ids) if n is None else n
        assert c.completion_ids == r.completion_ids[:keep] and c.finish_reason == ("length" if n is None else "code")
        assert c.logprobs == pytest.approx(r.logprobs[:keep], abs=1e-5)
    assert [c.completion_ids for c in late] == [c.completion_ids for c in raw]
    assert sum(stopped) == sum(len(c.completion_ids) for c in cut) < sum(after) == sum(len(c.completion_ids) for c in raw)


@pytest.mark.parametrize("setting", ["auto", "bfloat16", "float32"])
def test_sampler_dtype_auto_is_bfloat16_where_native_and_float32_stays_exact(tiny_model_dir: Path, setting: str) -> None:
    """The default `auto` reads bfloat16 weights where the CPU has avx512_bf16 (the same pass rate at 1.7x the tokens/s,
    docs/performance.md), float32 elsewhere; `float32` keeps the exact float32 sampler on every CPU."""
    pol = Policy.load(PolicyConfig(model=str(tiny_model_dir), device="cpu", sampler_dtype=setting), seed=0)
    want = torch.bfloat16 if setting != "float32" and bf16_available() else None
    assert pol.decoder().low == want
    assert PolicyConfig().sampler_dtype == "auto"
