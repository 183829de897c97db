"""Embed three texts and print their cosine similarities.

Run it against any AligneAI server: ``ALIGNEAI_BASE_URL`` and ``ALIGNEAI_API_KEY`` select it.
"""

from __future__ import annotations

import math

from aligneai import AligneAI

TEXTS = [
    "The new coffee blend from BeanWorks is robust and flavorful",
    "BeanWorks released a bold, flavorful new coffee blend",
    "Looking for a budget-friendly beach vacation spot in July",
]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main() -> None:
    with AligneAI() as client:
        response = client.embeddings.create(inputs=TEXTS)
    vectors = [item.embedding for item in response.data]
    print(
        f"model {response.model}, {len(vectors[0])} dimensions, "
        f"{response.usage.total_tokens} tokens"
    )
    for i in range(len(TEXTS)):
        for j in range(i + 1, len(TEXTS)):
            print(f"  {cosine(vectors[i], vectors[j]):+.3f}  {TEXTS[i][:40]!r} ~ {TEXTS[j][:40]!r}")


if __name__ == "__main__":
    main()
