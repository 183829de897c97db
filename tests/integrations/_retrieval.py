"""A small corpus for the retrieval tests: one query, the one passage it must find."""

from __future__ import annotations

PASSAGES = [
    "Sourdough bread rises with a starter of wild yeast and lactic bacteria.",
    "Glacier ice forms when snow is compacted over many winters into dense ice.",
    "A violin has four strings tuned in fifths and is played with a bow.",
    "Harbour cranes unload shipping containers from cargo vessels at the port.",
    "Tax forms are due in April; keep receipts for every deduction you claim.",
]
QUERY = "how does snow turn into glacier ice"
ANSWER = PASSAGES[1]
