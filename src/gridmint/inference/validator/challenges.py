"""What validators ask, composed afresh for every round so that miners cannot precompute the answers.

A fixed list of questions lets a miner cache the reference model's answer to each one and serve every probe from a
table. Here a question is a template filled from word lists and numbers (over a million distinct prompts), sometimes
preceded by a system line, and the answer length varies too; all of it comes from the ``rng`` the validator hands
in, which draws on the operating system's randomness unless a test fixes a seed (see the validator loop).
"""

from __future__ import annotations

import random

NOUNS = (
    "cat", "river", "bicycle", "library", "volcano", "garden", "teacher", "robot", "bridge", "island", "piano",
    "forest", "train", "market", "lighthouse", "kitchen", "comet", "farmer", "castle", "desert", "whale", "clock",
    "mountain", "village", "storm", "rocket", "bakery", "museum", "penguin", "violin",
)
ADJECTIVES = (
    "quiet", "ancient", "tiny", "busy", "bright", "cold", "friendly", "strange", "golden", "broken", "famous",
    "hidden", "noisy", "gentle", "modern", "lonely",
)
TOPICS = (
    "the moon", "rain", "bees", "volcanoes", "the ocean", "sleep", "bread", "electricity", "winter", "music",
    "chess", "rainbows", "trees", "the heart", "maps", "salt", "glass", "wind", "coffee", "stars",
)
LANGUAGES = ("French", "Spanish", "German", "Italian")
SYSTEM_LINES = (
    "You are a helpful assistant.", "Answer briefly.", "You are a friendly tutor.", "Reply in plain English.",
)

# Every template has slots worth thousands of fillings, so no template is a short list a miner could tabulate.
TEMPLATES = (
    "What is {a} plus {b}?",
    "What is {a} minus {c}?",
    "Write one sentence about a {adjective} {noun} and a {other}.",
    "Describe a {adjective} {noun} in {w} words.",
    "Tell me a fact about {topic} that a {noun} might find {adjective}.",
    "Why would a {adjective} {noun} like {topic}?",
    "Give {k} tips about {topic} for someone who owns a {noun}.",
    "Name {k} things you might find in a {adjective} {noun}.",
    "Write a short story title about a {adjective} {noun} and {topic}.",
    "How would you explain {topic} to a child who has a {noun}? Use {w} words.",
    "Translate 'the {adjective} {noun}' into {language}.",
    "Is a {noun} bigger than a {other}? Answer in {w} words.",
    "Continue this sentence: The {adjective} {noun} near the {other}",
)


def draw_question(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    a, b = rng.randrange(2, 1000), rng.randrange(2, 1000)
    noun, other = rng.sample(NOUNS, 2)
    return template.format(a=a, b=b, c=rng.randrange(1, a), k=rng.randrange(2, 6), w=rng.randrange(5, 40),
                           noun=noun, other=other, adjective=rng.choice(ADJECTIVES), topic=rng.choice(TOPICS),
                           language=rng.choice(LANGUAGES))


def draw_messages(rng: random.Random) -> list[dict[str, str]]:
    """One user question, preceded by a system line in about a third of the draws."""
    messages = [{"role": "user", "content": draw_question(rng)}]
    if rng.random() < 1 / 3:
        messages.insert(0, {"role": "system", "content": rng.choice(SYSTEM_LINES)})
    return messages


SENTENCE_TEMPLATES = (
    "the {adjective} {noun} is next to the {other}", "a {noun} and a {other} were seen near the river",
    "people talked about {topic} all evening", "the {noun} was more {adjective} than expected",
    "nobody knew why the {other} needed {topic}",
)


def draw_sentences(rng: random.Random, count: int = 4) -> list[str]:
    """Distinct short sentences to embed."""
    sentences: list[str] = []
    while len(sentences) < count:
        noun, other = rng.sample(NOUNS, 2)
        sentence = rng.choice(SENTENCE_TEMPLATES).format(noun=noun, other=other, adjective=rng.choice(ADJECTIVES),
                                                         topic=rng.choice(TOPICS))
        if sentence not in sentences:
            sentences.append(sentence)
    return sentences
