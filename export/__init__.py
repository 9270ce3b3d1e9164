"""Packaging the feed-forward stylizer for TF Serving and Keras pipelines (see the export issue)."""
