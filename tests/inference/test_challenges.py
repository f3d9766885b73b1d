"""Challenges cannot be precomputed: many distinct prompts and lengths, drawn from the validator's own randomness."""

from __future__ import annotations

import random

from gridmint.inference.validator.challenges import TEMPLATES, draw_messages, draw_question, draw_sentences
from gridmint.inference.validator.loop import Validator
from tests.inference.test_validator import ConstantScorer
from tests.support.chain import key


def test_questions_are_rarely_repeated_and_use_every_template() -> None:
    rng = random.Random(1)
    questions = [draw_question(rng) for _ in range(500)]
    assert len(set(questions)) > 480  # a table of earlier probes answers almost none of the next ones
    openings = {template.split("{")[0] for template in TEMPLATES}
    assert all(any(question.startswith(opening) for question in questions) for opening in openings)


def test_a_system_line_comes_with_about_a_third_of_the_questions() -> None:
    rng = random.Random(2)
    draws = [draw_messages(rng) for _ in range(300)]
    with_system = sum(messages[0]["role"] == "system" for messages in draws)
    assert 60 < with_system < 140
    assert all(messages[-1]["role"] == "user" for messages in draws)


def test_sentences_to_embed_are_distinct_and_repeatable_from_a_seed() -> None:
    first = draw_sentences(random.Random(3), count=6)
    assert len(set(first)) == 6
    assert draw_sentences(random.Random(3), count=6) == first


def test_a_validator_without_a_seed_draws_from_the_operating_system() -> None:
    unseeded = [Validator(key("validator"), 1, "http://127.0.0.1:9", ConstantScorer(), timeout_s=1) for _ in range(2)]
    assert all(isinstance(validator.rng, random.SystemRandom) for validator in unseeded)
    assert [draw_question(unseeded[0].rng) for _ in range(5)] != [draw_question(unseeded[1].rng) for _ in range(5)]
    seeded = [Validator(key("validator"), 1, "http://127.0.0.1:9", ConstantScorer(), timeout_s=1, seed=4)
              for _ in range(2)]
    assert draw_question(seeded[0].rng) == draw_question(seeded[1].rng)  # tests can replay a round
    for validator in unseeded + seeded:
        validator.close()
