"""Unit tests: token costs (image rules, text estimate) and the evidence plan.

No server: the real-server checks of the same rules (through vLLM's own
Pixtral tokenizer) are in tests/test_ask_vllm.py.
"""

import json

import pytest

from plugin.answer import budget as B
from plugin.answer.plan import Candidate, Limits, make_plan
from plugin.errors import AnswerError

# The observed costs on vLLM serving Pixtral's tokenizer
OBSERVED_PIXTRAL = {(1024, 1024): 4160, (768, 432): 1323, (512, 512): 1056}
OBSERVED_PIXTRAL[(256, 256)] = 272

# Token counts of these texts by Pixtral's real tokenizer (mistral_common
# 1.13.1, tekken_240911.json), measured in the vLLM test venv.
TEKKEN_COUNTS = {
    "The quick brown fox jumps over the lazy dog while the narrator explains "
    "how the cat sits on the mat and the airplane takes off. " * 10: 261,
    "1234567890 2024-11-30 00:35:12 " * 20: 620,
    json.dumps('He said "hello" \\ and \n left. ' * 20): 221,
    "Die Katze sitzt auf der Matte und der Lastwagen fährt vorbei. "
    "Übermäßige Größe. " * 10: 221,
    "一只猫坐在垫子上，然后一辆卡车开过去。" * 20: 380,
    "🙂🚗🐱 " * 50: 552,
    "def f(x):\n    return {k: v for k, v in x.items() if v}\n" * 10: 210,
}


def test_pixtral_rule_matches_the_observed_costs():
    for (w, h), tokens in OBSERVED_PIXTRAL.items():
        assert B.PIXTRAL.tokens(w, h) == tokens, (w, h)
    # scaled into 1024 x 1024 first: 2048x1152 -> 1024x576 -> 64 x 36 + 36
    assert B.PIXTRAL.tokens(2048, 1152) == B.PIXTRAL.tokens(1024, 576) == 2340
    assert B.PIXTRAL.tokens(17, 1) == 2 + 1  # partial patches count whole
    assert B.PIXTRAL.exact


def test_rules_by_model_name():
    assert B.image_rule("mistralai/Pixtral-12B-2409") is B.PIXTRAL
    assert B.image_rule("vrag-tiny-pixtral") is B.PIXTRAL
    assert B.image_rule("Qwen/Qwen2.5-VL-7B-Instruct").family == "qwen-vl"
    assert B.image_rule("google/gemma-3-4b-it").tokens(4000, 10) == 260
    generic = B.image_rule("some/other-vlm")
    assert generic is B.GENERIC and not generic.exact
    # the generic estimate errs high next to the exact rules it stands for
    assert generic.tokens(768, 432) > B.PIXTRAL.tokens(768, 432)
    assert generic.tokens(768, 432) > B.image_rule("qwen2-vl").tokens(768, 432)


def test_text_estimate_errs_high_but_not_wildly():
    for text, tokens in TEKKEN_COUNTS.items():
        estimate = B.estimate_text_tokens(text)
        assert tokens <= estimate <= 2 * tokens, (text[:30], tokens, estimate)
    assert B.text_counter("some/other-vlm") is B.ESTIMATE


def test_downscaled_never_upscales():
    assert B.downscaled((1280, 720), 768) == (768, 432)
    assert B.downscaled((288, 288), 768) == (288, 288)


# -- the plan -------------------------------------------------------------------


def _frames(n, size=(1280, 720), text=60):
    return [Candidate(i, text, size) for i in range(1, n + 1)]


def _limits(context=32768, max_images=4, long_side=768, max_tokens=300):
    return Limits(context, max_tokens, max_images, long_side)


def _plan(candidates, context=32768, fixed=400, **limits):
    return make_plan(candidates, fixed, _limits(context, **limits), B.PIXTRAL)


def test_six_frames_with_a_limit_of_four():
    plan = _plan(_frames(6))
    assert plan.numbers("image") == [1, 2, 3, 4]
    assert plan.numbers("text") == [5, 6]
    assert all(plan.size_of(n) == (768, 432) for n in (1, 2, 3, 4))
    assert plan.image_tokens == 4 * 1323
    (notice,) = plan.notices()
    assert notice.startswith("[5], [6] sent as text only: at most 4 images")


def test_forty_items_are_packed_into_the_budget():
    """A context that text and images compete for: the images take >= 80 %
    of the room the text leaves them; nothing exceeds the budget."""
    plan = _plan(_frames(40, text=75), context=8192)
    print(f"\n40 items in 8192: {plan.summary()} fill {plan.image_fill:.1%}")
    assert plan.total_tokens <= plan.limits.prompt_budget
    assert len(plan.numbers("image")) == 4
    assert plan.image_budget < plan.wanted_image_tokens  # the budget binds
    assert plan.image_fill >= 0.8
    assert plan.numbers("dropped") == []


def test_a_tiny_context_sends_fewer_and_smaller_images():
    roomy, tiny = _plan(_frames(4)), _plan(_frames(4), context=2048)
    assert roomy.numbers("image") == [1, 2, 3, 4]
    assert tiny.total_tokens <= tiny.limits.prompt_budget
    sent = tiny.numbers("image")
    assert 1 <= len(sent) <= 4
    assert all(max(tiny.size_of(n)) < 768 for n in sent)
    assert any("smaller than 768 px" in n for n in tiny.notices())


def test_items_that_do_not_fit_are_dropped_least_relevant_first():
    plan = _plan(_frames(30, text=200), context=4096)
    dropped = plan.numbers("dropped")
    assert dropped and dropped == list(range(dropped[0], 31))
    assert plan.numbers("image") == [1, 2, 3, 4]
    assert plan.total_tokens <= plan.limits.prompt_budget


def test_never_over_budget_whatever_the_context():
    for context in range(1200, 40000, 700):
        candidates = _frames(12, size=(1920, 1080), text=90)
        candidates[3] = Candidate(4, 90, None, "a transcript line (no frame)")
        plan = _plan(candidates, context=context, max_tokens=200)
        assert plan.total_tokens <= plan.limits.prompt_budget, context
        assert len(plan.numbers("image")) <= 4
        assert 4 not in plan.numbers("image")


def test_the_question_alone_too_long():
    with pytest.raises(AnswerError) as info:
        _plan(_frames(2), context=1000, fixed=900)
    assert info.value.kind == "too_long"


def test_earlier_turns_newest_first_and_earlier_images_only_with_room():
    current = _frames(2)
    earlier = [Candidate(n, 0, (1280, 720), earlier=True) for n in (7, 8, 9)]
    limits = _limits(32768)
    plan = make_plan(current + earlier, 400, limits, B.PIXTRAL, [500, 600])
    assert (plan.history_turns, plan.history_tokens) == (2, 1100)
    assert plan.numbers("image", earlier=True) == [7, 8]  # 2 slots left
    tight = make_plan(current + earlier, 400, _limits(4096), B.PIXTRAL, [2000, 600])
    assert (tight.history_turns, tight.history_dropped) == (1, 1)
    assert tight.total_tokens <= tight.limits.prompt_budget
