"""``boxqp``: a tiny third-party bilevelbench family (the contract tests install it as a plugin)."""
