"""router: the canonical ticket, webhook intake, agents, routing rules and routing decisions."""
