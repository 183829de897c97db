"""The sans-IO protocol core of the AligneAI client: pure functions and value objects."""
