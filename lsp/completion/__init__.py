"""Completions, from the request to the text inserted: :mod:`.flow` (debounce, supersession, cache),
:mod:`.pipeline` (context, budget, prompt, model, clean-up) and :mod:`.stopper` (when a reply is complete)."""
