"""Service goals: SMART goals over sla's own view of tickets and survey answers (issue 11)."""
