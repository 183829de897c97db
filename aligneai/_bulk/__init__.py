"""Bulk embedding: a whole corpus at the rate limit, in order, resumable (issue #11)."""
