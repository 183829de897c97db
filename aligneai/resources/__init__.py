"""The API's resources (``client.embeddings``, ``client.models``), sync and async."""
