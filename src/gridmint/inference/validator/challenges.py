"""What validators ask. Drawn at random each round, so miners cannot cache answers for a fixed list."""

from __future__ import annotations

import random

QUESTIONS = (
    "What is the capital of France?", "Name three primary colors.", "How many legs does a spider have?",
    "Explain what a computer is in one sentence.", "What is 12 plus 30?", "Write a short greeting for a friend.",
    "Why is the sky blue?", "Give one tip for staying healthy.", "What do bees make?",
    "Describe the ocean in one sentence.", "What is the opposite of hot?", "Name a fruit that is yellow.",
    "How many days are in a week?", "What language is spoken in Spain?", "What does a teacher do?",
    "Suggest a name for a cat.", "What is water made of?", "Tell me a fact about the moon.",
    "What season comes after winter?", "How do plants get energy?",
)

SENTENCES = (
    "the cat sat on the mat", "a kitten rested on the rug", "stock markets fell sharply today",
    "the recipe needs two cups of flour", "quantum computers use qubits", "she walked her dog in the park",
    "rain is expected tomorrow afternoon", "the library opens at nine", "solar panels convert sunlight",
    "the team won the championship game", "he fixed the bicycle chain", "fresh bread smells wonderful",
)


def draw_question(rng: random.Random) -> str:
    return rng.choice(QUESTIONS)


def draw_sentences(rng: random.Random, count: int = 4) -> list[str]:
    return rng.sample(SENTENCES, count)
